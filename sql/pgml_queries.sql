-- Queries run by the in-database code (pgml_flow.server), as plpy plans with $n parameters.

-- name: relation_info
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name,
       has_table_privilege(c.oid, 'SELECT') AS readable,
       format('%I.%I', n.nspname, c.relname) AS quoted
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass($1);

-- name: relation_columns
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS pg_type
  FROM pg_attribute a
 WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum;

-- name: project_by_name
SELECT id, name, task::text AS task FROM pgml.projects WHERE name = $1;

-- name: insert_project
-- task without ::text (PL/Python returns an enum as its label anyway): Citus refuses the
-- cast, a STABLE function, in the RETURNING clause of a write to a reference table
INSERT INTO pgml.projects (name, task) VALUES ($1, $2::pgml.task) RETURNING id, name, task;

-- name: touch_project
-- $2: the wall-clock time, taken by the caller: Citus refuses a VOLATILE function
-- (clock_timestamp()) in an UPDATE of a reference table
UPDATE pgml.projects SET updated_at = $2::timestamptz WHERE id = $1;

-- name: latest_snapshot
SELECT s.* FROM pgml.snapshots s JOIN pgml.models m ON m.snapshot_id = s.id
 WHERE m.project_id = $1 ORDER BY m.id DESC LIMIT 1;

-- name: insert_snapshot
INSERT INTO pgml.snapshots (relation_name, y_column_name, test_size, test_sampling, status,
                            columns, analysis, materialized)
VALUES ($1, $2, $3, $4::pgml.sampling, 'successful', $5::jsonb, $6::jsonb, $7)
RETURNING id;

-- name: insert_model
INSERT INTO pgml.models (project_id, snapshot_id, num_features, algorithm, runtime, hyperparams,
                         status, metrics, search, search_params, search_args)
VALUES ($1, $2, $3, $4, 'python', $5::jsonb, 'successful', $6::jsonb, $7, $8::jsonb, $9::jsonb)
RETURNING id;

-- name: insert_file
INSERT INTO pgml.files (model_id, path, part, data) VALUES ($1, $2, $3, $4);

-- name: deployed_model
SELECT d.model_id, m.metrics, m.algorithm
  FROM pgml.deployments d JOIN pgml.models m ON m.id = d.model_id
 WHERE d.project_id = $1 ORDER BY d.id DESC LIMIT 1;

-- name: deployed_model_by_name
SELECT d.model_id
  FROM pgml.deployments d JOIN pgml.projects p ON p.id = d.project_id
 WHERE p.name = $1 ORDER BY d.id DESC LIMIT 1;

-- name: insert_deployment
INSERT INTO pgml.deployments (project_id, model_id, strategy) VALUES ($1, $2, $3::pgml.strategy);

-- name: model_info
SELECT m.id, m.project_id, p.name AS project, p.task::text AS task, m.algorithm, m.snapshot_id,
       m.num_features, m.status
  FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id
 WHERE m.id = $1;

-- name: model_files
SELECT path, data FROM pgml.files WHERE model_id = $1 ORDER BY path, part;

-- name: snapshot_columns
SELECT s.columns FROM pgml.snapshots s JOIN pgml.models m ON m.snapshot_id = s.id
 WHERE m.id = $1;

-- name: candidate_most_recent
SELECT m.id, m.algorithm FROM pgml.models m
 WHERE m.project_id = $1 AND m.status = 'successful' AND ($2::text IS NULL OR m.algorithm = $2)
 ORDER BY m.id DESC LIMIT 1;

-- name: candidate_best_score
SELECT m.id, m.algorithm FROM pgml.models m
 WHERE m.project_id = $1 AND m.status = 'successful' AND ($2::text IS NULL OR m.algorithm = $2)
   AND jsonb_typeof(m.metrics -> $3) = 'number'
 ORDER BY (m.metrics ->> $3)::double precision DESC, m.id DESC LIMIT 1;

-- name: candidate_rollback
SELECT d.model_id AS id, m.algorithm FROM pgml.deployments d JOIN pgml.models m ON m.id = d.model_id
 WHERE d.project_id = $1 AND d.model_id <> $2 AND ($3::text IS NULL OR m.algorithm = $3)
 ORDER BY d.id DESC LIMIT 1;

-- name: delete_model
DELETE FROM pgml.models WHERE id = $1 RETURNING id;

-- name: delete_project
DELETE FROM pgml.projects WHERE name = $1 RETURNING id;

-- name: delete_orphan_snapshots
DELETE FROM pgml.snapshots s
 WHERE NOT EXISTS (SELECT 1 FROM pgml.models m WHERE m.snapshot_id = s.id)
RETURNING s.id, s.materialized;

-- name: train_limits
-- The bounds of one training (pgml_flow.engine.parallel), trusted only as defined by
-- pgml_native (superuser-only): a placeholder any session could SET is not listed here.
SELECT max(setting) FILTER (WHERE name = 'pgml.max_parallel_fits') AS fits,
       max(setting) FILTER (WHERE name = 'pgml.train_threads') AS threads
  FROM pg_catalog.pg_settings
 WHERE name IN ('pgml.max_parallel_fits', 'pgml.train_threads')
   AND context IN ('superuser', 'sighup', 'postmaster');

-- name: native_eval_rows
-- pgml.native_eval of many rows (flattened, $3 features each) in one statement: the C
-- function parses the blob once per statement, not once per row.
SELECT pgml.native_eval($1, $2[i * $3 + 1:(i + 1) * $3]) AS p
  FROM generate_series(0, $4 - 1) AS i ORDER BY i;

-- name: native_eval_proba_rows
SELECT pgml.native_eval_proba($1, $2[i * $3 + 1:(i + 1) * $3]) AS p
  FROM generate_series(0, $4 - 1) AS i ORDER BY i;
