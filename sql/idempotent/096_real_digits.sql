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
DO $do$
DECLARE
    native_on boolean := coalesce(current_setting('pgml.native_scoring', true), 'on') <> 'off';
BEGIN
    IF native_on AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgml_native') THEN
        BEGIN
            CREATE OR REPLACE FUNCTION pgml_flow.real_digits(value real)
            RETURNS double precision AS '$libdir/pgml_native', 'pgml_native_real_digits'
            LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
            RETURN;
        EXCEPTION WHEN undefined_function THEN
            -- a pgml_native built before real_digits: the SQL definition below
            RAISE NOTICE 'pgml_native has no real_digits; rebuild it (./dev setup) to '
                         'convert predictions in C';
        END;
    END IF;
    CREATE OR REPLACE FUNCTION pgml_flow.real_digits(value real)
    RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT value::numeric::double precision $$;
END
$do$;
COMMENT ON FUNCTION pgml_flow.real_digits(real) IS
    'real::numeric::double precision: the double of a real''s six significant digits';
