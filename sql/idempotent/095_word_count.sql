-- pgml_flow.word_count(text): the number of white-space separated fields of a text,
-- as regexp_split_to_array(btrim(t), '\s+') counts them (0 for NULL or a blank text):
-- the built-in complexity feature description_words (100_features.sql).
--
-- Why a function of its own: the feature views are evaluated on every BI read, and
-- PostgreSQL's regex engine takes ~70 us to split a 400-character description, more
-- than all the rest of a prediction (the view used it twice per row, for the column and
-- for the features array). Where the native scorer is installed (and
-- pgml.native_scoring is not off, as in 030_serving.sql), it is the C function
-- pgml_native_word_count: one pass over the text, the regex itself for a text with a
-- character some collation's \s may match beyond the six ASCII ones (Unicode's white
-- space, U+001C..U+001F: ext/pgml_native/pgml_native.c says why), so the value never
-- differs from the SQL definition below, which serves everywhere else and which the
-- planner inlines.
-- CREATE OR REPLACE keeps the function (and the views on it) when the language changes.
SELECT pgml_flow.define_native_or_sql(
    'pgml_flow.word_count(t text)', 'integer', 'IMMUTABLE PARALLEL SAFE',
    'pgml_native_word_count',
    $$SELECT CASE WHEN coalesce(btrim(t), '') = '' THEN 0
                  ELSE array_length(regexp_split_to_array(btrim(t), '\s+'), 1) END$$,
    'compute description_words');
COMMENT ON FUNCTION pgml_flow.word_count(text) IS
    'Fields of regexp_split_to_array(btrim(t), ''\s+''), 0 for NULL or blank: description_words';
