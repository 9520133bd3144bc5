-- Queries run by pgml-flow's Python code, loaded by name (pgml_flow.sqlfiles.query).

-- name: insert_client
-- The seed's client: new, or one it replaces (its row is kept, so that its BI logins in
-- client_bi_roles stay; its switches are reset, other settings stay as they were).
INSERT INTO clients (client_id, name, slug, synthetic)
VALUES (%(client_id)s, %(name)s, %(slug)s, true)
ON CONFLICT (client_id) DO UPDATE
   SET name = EXCLUDED.name, slug = EXCLUDED.slug, synthetic = true, active = true,
       ml_enabled = true, prediction_logging = true;

-- name: client_footprint
-- What replacing clients would delete (pgml-flow seed): per existing client in the range,
-- its rows and its models (pgml projects <model>__client_<id>, pgml_flow.project_name).
-- Counted per table grouped by client_id, then joined: on Citus each count runs on the
-- shards (a subquery correlated with clients, a reference table, would be refused).
WITH i AS (SELECT client_id, count(*) AS n FROM issues
            WHERE client_id = ANY(%(client_ids)s) GROUP BY client_id),
     p AS (SELECT client_id, count(*) AS n FROM pull_requests
            WHERE client_id = ANY(%(client_ids)s) GROUP BY client_id),
     l AS (SELECT client_id, count(*) AS n FROM ml_prediction_log
            WHERE client_id = ANY(%(client_ids)s) GROUP BY client_id),
     e AS (SELECT client_id, count(*) AS n FROM ml_retraining_events
            WHERE client_id = ANY(%(client_ids)s) GROUP BY client_id)
SELECT c.client_id, c.name, c.synthetic,
       coalesce(i.n, 0) AS issues, coalesce(p.n, 0) AS pull_requests,
       coalesce(l.n, 0) AS prediction_logs, coalesce(e.n, 0) AS retraining_events,
       (SELECT count(*) FROM pgml.models m JOIN pgml.projects pr ON pr.id = m.project_id
         WHERE right(pr.name, length('__client_' || c.client_id)) = '__client_' || c.client_id)
           AS models
  FROM clients c
  LEFT JOIN i USING (client_id) LEFT JOIN p USING (client_id)
  LEFT JOIN l USING (client_id) LEFT JOIN e USING (client_id)
 WHERE c.client_id = ANY(%(client_ids)s)
 ORDER BY c.client_id;

-- name: client_projects
-- The pgml projects of one client's models (<model>__client_<id>).
SELECT name FROM pgml.projects
 WHERE right(name, length('__client_' || %(client_id)s::bigint))
       = '__client_' || %(client_id)s::bigint
 ORDER BY name;

-- name: client_training_views
-- The training views of one client's models (pgml_flow_training.<model>__client_<id>).
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'pgml_flow_training'::regnamespace AND c.relkind = 'v'
   AND right(c.relname, length('__client_' || %(client_id)s::bigint))
       = '__client_' || %(client_id)s::bigint
 ORDER BY c.relname;

-- name: next_client_id
SELECT coalesce(max(client_id), 0) + 1 FROM clients;

-- name: has_pgml_delete_project
SELECT to_regprocedure('pgml.delete_project(text)') IS NOT NULL;

-- name: pgml_delete_project
SELECT pgml.delete_project(%(project)s);

-- name: delete_client
-- Every table is named (not left to ON DELETE CASCADE) so that this also works while
-- triggers are disabled by the seed's bulk-load path. The clients row and its BI logins
-- stay (insert_client updates the row); the client's models go first (client_projects).
WITH prs AS (DELETE FROM pull_requests WHERE client_id = %(client_id)s),
     issues AS (DELETE FROM issues WHERE client_id = %(client_id)s),
     repos AS (DELETE FROM repositories WHERE client_id = %(client_id)s),
     types AS (DELETE FROM issuetypes WHERE client_id = %(client_id)s),
     logs AS (DELETE FROM ml_prediction_log WHERE client_id = %(client_id)s),
     log_usage AS (DELETE FROM ml_prediction_log_usage WHERE client_id = %(client_id)s),
     events AS (DELETE FROM ml_retraining_events WHERE client_id = %(client_id)s),
     baselines AS (DELETE FROM ml_model_baselines WHERE client_id = %(client_id)s)
SELECT %(client_id)s;

-- name: known_model_names
-- Model names the database knows (registered specs and past runs), for filters.
SELECT model_name FROM ml_model_registry
UNION
SELECT DISTINCT model_name FROM ml_retraining_events;

-- name: known_job_names
SELECT DISTINCT job FROM ml_job_runs;

-- name: training_summary
SELECT s.client_id, c.name AS client, s.model_type, s.training_records, s.latest_data,
       s.target_avg, s.target_stddev
  FROM mv_ml_training_summary s
  JOIN clients c USING (client_id)
 ORDER BY s.client_id, s.model_type;

-- name: pgml_train
SELECT project, task, algorithm, deployed FROM pgml.train(
    project_name => %(project)s, task => %(task)s, relation_name => %(relation)s,
    y_column_name => %(y_column)s, algorithm => %(algorithm)s::pgml.algorithm,
    hyperparams => %(hyperparams)s::jsonb, search => %(search)s::pgml.search,
    search_params => %(search_params)s::jsonb, search_args => %(search_args)s::jsonb,
    test_size => %(test_size)s::real, test_sampling => %(test_sampling)s::pgml.sampling,
    automatic_deploy => %(automatic_deploy)s, preprocess => %(preprocess)s::jsonb);

-- name: pgml_train_joint
SELECT project, task, algorithm, deployed FROM pgml.train_joint(
    project_name => %(project)s, task => %(task)s, relation_name => %(relation)s,
    y_column_name => %(y_column)s::text[], algorithm => %(algorithm)s::pgml.algorithm,
    hyperparams => %(hyperparams)s::jsonb, search => %(search)s::pgml.search,
    search_params => %(search_params)s::jsonb, search_args => %(search_args)s::jsonb,
    test_size => %(test_size)s::real, test_sampling => %(test_sampling)s::pgml.sampling,
    automatic_deploy => %(automatic_deploy)s, preprocess => %(preprocess)s::jsonb);

-- name: pgml_deploy_strategy
SELECT project, strategy, algorithm
  FROM pgml.deploy(%(project)s, %(strategy)s::pgml.strategy, %(algorithm)s::pgml.algorithm);

-- name: pgml_deploy_model
SELECT project, strategy, algorithm FROM pgml.deploy(%(model_id)s::bigint);

-- name: pgml_models
SELECT m.id, p.name AS project, p.task::text AS task, m.algorithm, m.status, m.metrics,
       m.hyperparams, m.num_features, m.created_at, m.snapshot_id,
       m.id = d.model_id AS deployed
  FROM pgml.models m
  JOIN pgml.projects p ON p.id = m.project_id
  LEFT JOIN LATERAL (SELECT model_id FROM pgml.deployments
                      WHERE project_id = p.id ORDER BY id DESC LIMIT 1) d ON true
 WHERE %(project)s::text IS NULL OR p.name = %(project)s
 ORDER BY m.id;

-- name: pgml_projects
SELECT p.id, p.name, p.task::text AS task, p.created_at,
       (SELECT count(*) FROM pgml.models m WHERE m.project_id = p.id) AS models,
       (SELECT model_id FROM pgml.deployments d WHERE d.project_id = p.id
         ORDER BY d.id DESC LIMIT 1) AS deployed_model_id
  FROM pgml.projects p
 ORDER BY p.name;

-- name: pgml_backend
SELECT value FROM pgml_flow_settings WHERE name = 'pgml_backend';

-- name: pgml_delete_model_sql
DELETE FROM pgml.models WHERE id = %(model_id)s RETURNING id;

-- name: pgml_delete_project_sql
DELETE FROM pgml.projects WHERE name = %(project)s RETURNING id;

-- name: server_facts
-- The venv, whether pgml.predict is the C scorer, whether the scorer is available on the
-- server, and whether this database switched it off (pgml.native_scoring).
SELECT current_setting('pgml.venv', true),
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgml_native')
       AND coalesce((SELECT l.lanname = 'c' FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                      WHERE p.oid = to_regprocedure('pgml.predict(text, real[])')), false),
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgml_native'),
       coalesce(current_setting('pgml.native_scoring', true), 'on') = 'off';

-- name: alembic_version_exists
-- Whether Alembic has migrated this database (pgml_flow.schema_version reads it without Alembic).
SELECT to_regclass('alembic_version') IS NOT NULL;

-- name: alembic_versions
SELECT version_num FROM alembic_version;
