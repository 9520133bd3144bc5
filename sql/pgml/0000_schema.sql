-- The pgml schema of PostgresML 2.10 (enums, tables, indexes, foreign keys), in idempotent
-- form: re-applied first on every `pgml-flow db upgrade` (where the real extension is
-- absent), so that upgrade repairs a database whose pgml schema was dropped, wholly
-- (`DROP SCHEMA pgml CASCADE`, how PostgresML's own test scripts reset) or in part.
-- Revision 0004 created these objects first (sql/revisions/0004_pgml_schema.upgrade.sql,
-- kept as it ran) and 0012 added pgml.status; this file is their head state, and creates
-- only what is missing: existing objects and their rows are never touched, except rows
-- that reference a model or project that no longer exists (they are deleted, so that a
-- lost foreign key can be added again). pgml_flow.migrate.pgml_damage says beforehand
-- which data was lost.
CREATE EXTENSION IF NOT EXISTS plpython3u;
CREATE SCHEMA IF NOT EXISTS pgml;

-- Citus: a `seed --replace` before the fix of issue 17 deleted projects with the foreign
-- keys' cascade switched off on the coordinator's placement of the pgml reference tables
-- only, whose models and deployments stayed there (not on the workers'), and the key
-- checks below failed on them. A DELETE of a reference table runs on every placement, and
-- finds these rows on the coordinator's only: the placements agree again.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')
       AND to_regclass('pgml.projects') IS NOT NULL
       AND to_regclass('pgml.models') IS NOT NULL
       AND to_regclass('pgml.deployments') IS NOT NULL THEN
        DELETE FROM pgml.deployments d
         WHERE NOT EXISTS (SELECT FROM pgml.projects p WHERE p.id = d.project_id);
        DELETE FROM pgml.models m
         WHERE NOT EXISTS (SELECT FROM pgml.projects p WHERE p.id = m.project_id);
    END IF;
END;
$$;

DO $$
DECLARE
    enums constant jsonb := jsonb_build_object(
        'task', ARRAY['regression', 'classification', 'decomposition', 'clustering'],
        'algorithm', ARRAY[
            'linear', 'xgboost', 'xgboost_random_forest', 'svm', 'lasso', 'elastic_net', 'ridge',
            'kmeans', 'dbscan', 'knn', 'random_forest', 'least_angle', 'lasso_least_angle',
            'orthogonal_matching_pursuit', 'bayesian_ridge', 'automatic_relevance_determination',
            'stochastic_gradient_descent', 'perceptron', 'passive_aggressive', 'ransac',
            'theil_sen', 'huber', 'quantile', 'kernel_ridge', 'gaussian_process', 'nu_svm',
            'ada_boost', 'bagging', 'extra_trees', 'gradient_boosting_trees',
            'hist_gradient_boosting', 'linear_svm', 'lightgbm', 'transformers',
            'affinity_propagation', 'birch', 'feature_agglomeration', 'mini_batch_kmeans',
            'mean_shift', 'optics', 'spectral', 'spectral_bi', 'spectral_co', 'catboost', 'pca'],
        'strategy', ARRAY['new_score', 'best_score', 'most_recent', 'rollback', 'specific'],
        'search', ARRAY['grid', 'random'],
        'sampling', ARRAY['random', 'last', 'stratified'],
        'runtime', ARRAY['python', 'rust', 'openai'],
        'status', ARRAY['in_progress', 'successful', 'failed']);
    name text;
BEGIN
    FOR name IN SELECT jsonb_object_keys(enums) LOOP
        IF to_regtype(format('pgml.%I', name)) IS NULL THEN
            EXECUTE format('CREATE TYPE pgml.%I AS ENUM (%s)', name,
                           (SELECT string_agg(quote_literal(v), ', ')
                              FROM jsonb_array_elements_text(enums -> name) v));
        END IF;
    END LOOP;
END;
$$;

CREATE TABLE IF NOT EXISTS pgml.projects (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    task       pgml.task NOT NULL,
    created_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT projects_name_key UNIQUE (name)
);

CREATE TABLE IF NOT EXISTS pgml.snapshots (
    id             bigserial PRIMARY KEY,
    relation_name  text NOT NULL,
    y_column_name  text[],
    test_size      real NOT NULL,
    test_sampling  pgml.sampling NOT NULL,
    status         text NOT NULL,
    columns        jsonb,
    analysis       jsonb,
    materialized   boolean DEFAULT false,
    created_at     timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    updated_at     timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE IF NOT EXISTS pgml.models (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL,
    snapshot_id   bigint,
    num_features  integer NOT NULL,
    algorithm     text NOT NULL,
    runtime       pgml.runtime DEFAULT 'python'::pgml.runtime,
    hyperparams   jsonb NOT NULL,
    status        text NOT NULL,
    metrics       jsonb,
    search        text,
    search_params jsonb NOT NULL,
    search_args   jsonb NOT NULL,
    created_at    timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS models_project_id_idx ON pgml.models (project_id);
CREATE INDEX IF NOT EXISTS models_snapshot_id_idx ON pgml.models (snapshot_id);

CREATE TABLE IF NOT EXISTS pgml.deployments (
    id         bigserial PRIMARY KEY,
    project_id bigint NOT NULL,
    model_id   bigint NOT NULL,
    strategy   pgml.strategy,
    created_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS deployments_project_id_created_at_idx
    ON pgml.deployments (project_id, created_at);
CREATE INDEX IF NOT EXISTS deployments_model_id_idx ON pgml.deployments (model_id);

CREATE TABLE IF NOT EXISTS pgml.files (
    id         bigserial PRIMARY KEY,
    model_id   bigint NOT NULL,
    path       text NOT NULL,
    part       integer NOT NULL,
    created_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    data       bytea NOT NULL,
    CONSTRAINT files_model_id_path_part_key UNIQUE (model_id, path, part)
);

-- The foreign keys (named as PostgreSQL named them in revision 0004), added where missing:
-- a table dropped with CASCADE takes the foreign keys that pointed at it along. Rows that
-- reference a row gone with it are deleted first (SET NULL for a snapshot), as the key's
-- ON DELETE rule would have done.
DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN SELECT * FROM (VALUES
        ('models', 'models_project_id_fkey', 'project_id', 'projects', 'CASCADE'),
        ('models', 'models_snapshot_id_fkey', 'snapshot_id', 'snapshots', 'SET NULL'),
        ('deployments', 'deployments_project_id_fkey', 'project_id', 'projects', 'CASCADE'),
        ('deployments', 'deployments_model_id_fkey', 'model_id', 'models', 'CASCADE'),
        ('files', 'files_model_id_fkey', 'model_id', 'models', 'CASCADE'))
        AS t(tab, con, col, ref, rule)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_constraint
                        WHERE conname = fk.con
                          AND conrelid = format('pgml.%I', fk.tab)::regclass) THEN
            IF fk.rule = 'SET NULL' THEN
                EXECUTE format('UPDATE pgml.%1$I t SET %2$I = NULL WHERE %2$I IS NOT NULL AND '
                               'NOT EXISTS (SELECT FROM pgml.%3$I r WHERE r.id = t.%2$I)',
                               fk.tab, fk.col, fk.ref);
            ELSE
                EXECUTE format('DELETE FROM pgml.%1$I t WHERE NOT EXISTS '
                               '(SELECT FROM pgml.%3$I r WHERE r.id = t.%2$I)',
                               fk.tab, fk.col, fk.ref);
            END IF;
            EXECUTE format('ALTER TABLE pgml.%I ADD CONSTRAINT %I FOREIGN KEY (%I) '
                           'REFERENCES pgml.%I (id) ON DELETE %s',
                           fk.tab, fk.con, fk.col, fk.ref, fk.rule);
        END IF;
    END LOOP;
END;
$$;
