-- Queries of `pgml-flow bench` (pgml_flow.benchmarks), loaded by name with
-- pgml_flow.sqlfiles.query(name, "bench").  Every object they create is named
-- pgml_flow_bench_* and dropped at the end of a run.

-- name: drop_rows
DROP TABLE IF EXISTS pgml_flow_bench_rows, pgml_flow_bench_results CASCADE;

-- name: create_rows
CREATE TABLE pgml_flow_bench_rows (id integer NOT NULL, features real[] NOT NULL, y real);

-- name: fill_rows
-- Deterministic in shape, random in values: 20 features and a non-linear target.
INSERT INTO pgml_flow_bench_rows
SELECT i, f, (f[1] * 3 + f[2] * f[3] - f[4] + sin(f[5]) + f[11] * f[12] + random() * 0.1)::real
  FROM (SELECT i, ARRAY(SELECT (random() * 2)::real FROM generate_series(1, 20) WHERE i > 0) AS f
          FROM generate_series(1, %(rows)s) AS i) s;

-- name: rows_primary_key
-- After the fill (faster than maintaining the index row by row); the BI query of the
-- concurrency benchmark reads id ranges through it.
ALTER TABLE pgml_flow_bench_rows ADD PRIMARY KEY (id);

-- name: analyze_rows
VACUUM ANALYZE pgml_flow_bench_rows;

-- name: create_results
CREATE TABLE pgml_flow_bench_results (id integer NOT NULL, prediction real);

-- name: truncate_results
TRUNCATE pgml_flow_bench_results;

-- name: check_results
SELECT count(*), coalesce(sum(prediction), 0) FROM pgml_flow_bench_results;

-- name: training_view
CREATE OR REPLACE VIEW pgml_flow_bench_train AS
SELECT features[1] AS f1, features[2] AS f2, features[3] AS f3, features[4] AS f4,
       features[5] AS f5, features[6] AS f6, features[7] AS f7, features[8] AS f8,
       features[9] AS f9, features[10] AS f10, features[11] AS f11, features[12] AS f12,
       features[13] AS f13, features[14] AS f14, features[15] AS f15, features[16] AS f16,
       features[17] AS f17, features[18] AS f18, features[19] AS f19, features[20] AS f20, y
  FROM pgml_flow_bench_rows WHERE id <= 5000;

-- name: drop_training_view
DROP VIEW IF EXISTS pgml_flow_bench_train;

-- name: train
SELECT project, algorithm, deployed
  FROM pgml.train(%(project)s, 'regression', 'pgml_flow_bench_train', 'y',
                  %(algorithm)s::pgml.algorithm, %(hyperparams)s::jsonb);

-- name: deployed_model
SELECT d.model_id,
       EXISTS (SELECT 1 FROM pgml.files f WHERE f.model_id = d.model_id AND f.path = 'native')
  FROM pgml.deployments d JOIN pgml.projects p ON p.id = d.project_id
 WHERE p.name = %(project)s
 ORDER BY d.id DESC LIMIT 1;

-- name: has_function
SELECT to_regprocedure(%(signature)s) IS NOT NULL;

-- name: delete_project
SELECT pgml.delete_project(%(project)s);

-- name: delete_projects
-- Models, files and deployments go with their project (ON DELETE CASCADE).
DELETE FROM pgml.projects WHERE starts_with(name, %(prefix)s);

-- name: one_core
-- Per-row figures are for one backend on one core: no parallel workers.
SET max_parallel_workers_per_gather = 0;

-- name: warm_predict
SELECT pgml.predict(%(project)s, array_fill(1, ARRAY[20])::real[]);

-- name: warm_python_predict
SELECT pgml._py_predict(%(project)s, array_fill(1, ARRAY[20])::real[]);

-- name: scan_only
-- The same scan and detoasting as the per-row queries, without a prediction.
SELECT sum(features[20]) FROM pgml_flow_bench_rows WHERE id <= %(rows)s;

-- name: predict_per_row
SELECT sum(pgml.predict(%(project)s, features)) FROM pgml_flow_bench_rows WHERE id <= %(rows)s;

-- name: row_form_native
-- Whether the ROW form of a model is served by the C scorer: pgml.predict(text, anyelement)
-- is the C function and the model's blob has a row section (format version 2).
SELECT coalesce((SELECT l.lanname = 'c' FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                  WHERE p.oid = to_regprocedure('pgml.predict(text, anyelement)')), false)
       AND EXISTS (SELECT 1 FROM pgml.files WHERE model_id = %(model_id)s AND path = 'native'
                      AND part = 0 AND get_byte(data, 8) >= 2);

-- name: predict_row_per_row
-- The ROW form over the same rows: a record with the training view's column names, read by
-- name (forming the record per row is part of the cost, as it is for a user's query).
SELECT sum(pgml.predict(%(project)s, r))
  FROM (SELECT features[1] AS f1, features[2] AS f2, features[3] AS f3, features[4] AS f4,
               features[5] AS f5, features[6] AS f6, features[7] AS f7, features[8] AS f8,
               features[9] AS f9, features[10] AS f10, features[11] AS f11, features[12] AS f12,
               features[13] AS f13, features[14] AS f14, features[15] AS f15,
               features[16] AS f16, features[17] AS f17, features[18] AS f18,
               features[19] AS f19, features[20] AS f20
          FROM pgml_flow_bench_rows WHERE id <= %(rows)s) r;

-- name: python_predict_per_row
SELECT sum(pgml._py_predict(%(project)s, features)) FROM pgml_flow_bench_rows
 WHERE id <= %(rows)s;

-- name: predict_batch
SELECT cardinality(pgml.predict_batch(%(model_id)s::bigint, array_agg(v)))
  FROM (SELECT unnest(features) AS v FROM pgml_flow_bench_rows WHERE id <= %(rows)s) s;

-- name: score_into_results
-- In-database scoring, end to end: read, predict and write back in one statement.
INSERT INTO pgml_flow_bench_results
SELECT id, pgml.predict(%(project)s, features) FROM pgml_flow_bench_rows WHERE id <= %(rows)s;

-- name: write_only
-- The floor of end-to-end scoring: the same read and write-back, without a prediction.
INSERT INTO pgml_flow_bench_results
SELECT id, features[1] FROM pgml_flow_bench_rows WHERE id <= %(rows)s;

-- name: compare_results
-- A sampled service's predictions against in-database ones on the same rows: distinct
-- rows written, and the largest difference relative to the prediction (or to 1).
SELECT count(DISTINCT id),
       coalesce(max(abs(prediction - expected) / greatest(abs(expected), 1)), 0)::float8
  FROM (SELECT r.id, r.prediction, pgml.predict(%(project)s, x.features) AS expected
          FROM pgml_flow_bench_results r JOIN pgml_flow_bench_rows x USING (id)) s;

-- name: model_files
-- The library's own files of a model (what pgml._py_predict loads), not the native blob.
SELECT path, data FROM pgml.files
 WHERE model_id = %(model_id)s AND path <> 'native' ORDER BY path, part;

-- name: read_rows
SELECT id, features FROM pgml_flow_bench_rows WHERE id <= %(rows)s;

-- name: copy_rows_out
COPY (SELECT id, features FROM pgml_flow_bench_rows WHERE id <= %(rows)s)
  TO STDOUT (FORMAT BINARY);

-- name: copy_results_in
COPY pgml_flow_bench_results (id, prediction) FROM STDIN (FORMAT BINARY);

-- name: copy_results_in_text
COPY pgml_flow_bench_results (id, prediction) FROM STDIN;

-- name: bi_query
-- The pgbench script's query (composed with psycopg.sql: {project} and {last} are
-- literals; :lo is pgbench's random variable).
SELECT avg(pgml.predict({project}, features)) FROM pgml_flow_bench_rows
 WHERE id BETWEEN :lo AND :lo + {last};

-- name: clone_model
-- `copies` projects, each with its own copy of one model (files, native blob included)
-- deployed: as many distinct cached models as there are projects.
WITH src AS (
    SELECT m.*, p.task FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id
     WHERE m.id = %(model_id)s
), projects AS (
    INSERT INTO pgml.projects (name, task)
    SELECT %(prefix)s || i, src.task FROM src, generate_series(1, %(copies)s) AS i
    RETURNING id, name
), models AS (
    INSERT INTO pgml.models (project_id, snapshot_id, num_features, algorithm, runtime,
                             hyperparams, status, metrics, search, search_params, search_args)
    SELECT projects.id, src.snapshot_id, src.num_features, src.algorithm, src.runtime,
           src.hyperparams, src.status, src.metrics, src.search, src.search_params,
           src.search_args
      FROM projects, src
    RETURNING id, project_id
), files AS (
    INSERT INTO pgml.files (model_id, path, part, data)
    SELECT models.id, f.path, f.part, f.data
      FROM models, pgml.files f WHERE f.model_id = %(model_id)s
)
INSERT INTO pgml.deployments (project_id, model_id, strategy)
SELECT project_id, id, 'most_recent' FROM models;

-- name: backend_pid
SELECT pg_backend_pid();

-- name: set_cache_mb
SELECT set_config('pgml.native_cache_mb', %(mb)s, false);

-- name: cache_limit_mb
SELECT setting::bigint FROM pg_settings WHERE name = 'pgml.native_cache_mb';

-- name: native_cache_stats
SELECT count(*), coalesce(sum(bytes), 0)::bigint, coalesce(max(bytes), 0)::bigint
  FROM pgml.native_cache_stats();

-- name: python_cached_models
SELECT count(*) FROM pgml.cached_models();

-- name: memory_contexts
-- Bytes held by the native cache's memory contexts, and by the whole backend (palloc).
SELECT coalesce(sum(total_bytes) FILTER (WHERE left(name, 11) = 'pgml_native'
                                            OR left(parent, 11) = 'pgml_native'), 0)::bigint,
       sum(total_bytes)::bigint
  FROM pg_backend_memory_contexts;

-- name: backends
-- The backends of one database on one node: their /proc entries give the CPU they used.
SELECT pid FROM pg_stat_activity WHERE datname = %(database)s AND pid <> pg_backend_pid();
