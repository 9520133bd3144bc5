-- pgml_flow.real_digits(real): real::numeric::double precision, the double of a real's
-- six significant digits (8.7, not 8.699999809265137): how analytics.predictions
-- (200_serving.sql) returns every prediction, score and probability.
--
-- Why a function of its own: the cast through numeric prints the real, parses it into a
-- numeric, prints that and parses it again, about 0.5 us per value on every row of every
-- BI read (a tenth of a row's time for the text models). Where the native scorer is
-- installed (and pgml.native_scoring is not off, as in 030_serving.sql), it is the C
-- function pgml_native_real_digits, which prints and parses once, exactly as the cast
-- does (ext/pgml_native/pgml_native.c); the SQL definition below, which the planner
-- inlines, serves everywhere else. CREATE OR REPLACE keeps the function when the language
-- changes.
SELECT pgml_flow.define_native_or_sql(
    'pgml_flow.real_digits(value real)', 'double precision', 'IMMUTABLE STRICT PARALLEL SAFE',
    'pgml_native_real_digits', $$SELECT value::numeric::double precision$$,
    'convert predictions');
COMMENT ON FUNCTION pgml_flow.real_digits(real) IS
    'real::numeric::double precision: the double of a real''s six significant digits';
