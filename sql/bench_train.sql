-- Queries of `pgml-flow bench train` (pgml_flow/benchmarks/training.py): pgml.train
-- against the same library's fit outside the database, on the same rows.

-- name: drop_table
DROP TABLE IF EXISTS pgml_flow_bench_digits, pgml_flow_bench_outside_models;

-- name: create_table
-- scikit-learn's digits, one row per image: 64 pixel values and the digit.
CREATE TABLE pgml_flow_bench_digits (image real[] NOT NULL, target integer NOT NULL);

-- name: copy_rows
COPY pgml_flow_bench_digits (image, target) FROM STDIN;

-- name: read_rows
SELECT image, target FROM pgml_flow_bench_digits;

-- name: create_store
-- Where the outside fit stores its model, as pgml.train stores its own in pgml.files: a
-- table like it (not a temporary one, whose rows skip the write-ahead log), dropped by
-- drop_table at the end of the run.
CREATE TABLE IF NOT EXISTS pgml_flow_bench_outside_models (id serial, data bytea);

-- name: store_model
INSERT INTO pgml_flow_bench_outside_models (data) VALUES (%(data)s);

-- name: train
SELECT deployed FROM pgml.train(%(project)s, 'classification', 'pgml_flow_bench_digits',
                                'target', 'xgboost', %(hyperparams)s::jsonb);

-- name: train_grid
SELECT deployed FROM pgml.train(%(project)s, 'classification', 'pgml_flow_bench_digits',
                                'target', 'xgboost', search => 'grid',
                                search_params => %(grid)s::jsonb,
                                search_args => %(args)s::jsonb);

-- name: search_results
SELECT m.hyperparams, m.metrics -> 'search_results' -> 'mean_test_score'
  FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id
 WHERE p.name = %(project)s ORDER BY m.id DESC LIMIT 1;

-- name: limits
SELECT current_setting('pgml.max_parallel_fits', true) AS fits,
       current_setting('pgml.train_threads', true) AS threads;

-- name: delete_project
-- pgml.delete_project also drops the project's snapshots.
SELECT pgml.delete_project(name) FROM pgml.projects WHERE name = %(project)s;
