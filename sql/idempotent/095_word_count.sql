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
DO $do$
DECLARE
    native_on boolean := coalesce(current_setting('pgml.native_scoring', true), 'on') <> 'off';
BEGIN
    IF native_on AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgml_native') THEN
        BEGIN
            CREATE OR REPLACE FUNCTION pgml_flow.word_count(t text)
            RETURNS integer AS '$libdir/pgml_native', 'pgml_native_word_count'
            LANGUAGE C IMMUTABLE PARALLEL SAFE;
            RETURN;
        EXCEPTION WHEN undefined_function THEN
            -- a pgml_native built before word_count: the SQL definition below
            RAISE NOTICE 'pgml_native has no word_count; rebuild it (./dev setup) to compute '
                         'description_words in C';
        END;
    END IF;
    CREATE OR REPLACE FUNCTION pgml_flow.word_count(t text)
    RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        SELECT CASE WHEN coalesce(btrim(t), '') = '' THEN 0
                    ELSE array_length(regexp_split_to_array(btrim(t), '\s+'), 1) END
    $$;
END
$do$;
COMMENT ON FUNCTION pgml_flow.word_count(text) IS
    'Fields of regexp_split_to_array(btrim(t), ''\s+''), 0 for NULL or blank: description_words';
