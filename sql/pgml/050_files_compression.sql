-- pgml.files.data compressed with lz4 instead of the server's default pglz (issue 15, item 10).
--
-- Why: every pgml.train stores its model's files (an XGBoost model of 160 trees on ten
-- classes is 1.1 MB of JSON); TOAST compressed them with pglz in about 12 ms of the
-- backend's CPU per MB, lz4 in about 2.5 ms, to about the same size (1.1 MB of XGBoost's
-- JSON: 283 kB with pglz, 315 kB with lz4).
-- Reading is unaffected: each value records its own method, so rows written before keep
-- pglz and are read as they are, and PostgresML's SQL sees the same table and bytes.
-- Only the column's setting changes, and only where it is not lz4 yet (the ALTER takes a
-- lock on the table, which re-applying this file at every upgrade need not take); a
-- server built without lz4 keeps pglz (a notice says so).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = 'pgml.files'::regclass AND attname = 'data'
                  AND attcompression IS DISTINCT FROM 'l') THEN
        ALTER TABLE pgml.files ALTER COLUMN data SET COMPRESSION lz4;
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'pgml.files.data stays compressed with pglz: %', SQLERRM;
END
$$;
