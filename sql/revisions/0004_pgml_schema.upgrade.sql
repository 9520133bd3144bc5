-- The pgml schema of PostgresML 2.10 (enums, tables), for servers without the real
-- extension. Functions and views are in sql/pgml/ (idempotent, re-applied on upgrade).
-- Run only when pg_available_extensions has no 'pgml' (see migrations/versions/0004).
CREATE EXTENSION IF NOT EXISTS plpython3u;
CREATE SCHEMA pgml;

CREATE TYPE pgml.task AS ENUM ('regression', 'classification', 'decomposition', 'clustering');
CREATE TYPE pgml.algorithm AS ENUM (
    'linear', 'xgboost', 'xgboost_random_forest', 'svm', 'lasso', 'elastic_net', 'ridge',
    'kmeans', 'dbscan', 'knn', 'random_forest', 'least_angle', 'lasso_least_angle',
    'orthogonal_matching_pursuit', 'bayesian_ridge', 'automatic_relevance_determination',
    'stochastic_gradient_descent', 'perceptron', 'passive_aggressive', 'ransac', 'theil_sen',
    'huber', 'quantile', 'kernel_ridge', 'gaussian_process', 'nu_svm', 'ada_boost', 'bagging',
    'extra_trees', 'gradient_boosting_trees', 'hist_gradient_boosting', 'linear_svm',
    'lightgbm', 'transformers', 'affinity_propagation', 'birch', 'feature_agglomeration',
    'mini_batch_kmeans', 'mean_shift', 'optics', 'spectral', 'spectral_bi', 'spectral_co',
    'catboost', 'pca'
);
CREATE TYPE pgml.strategy AS ENUM ('new_score', 'best_score', 'most_recent', 'rollback', 'specific');
CREATE TYPE pgml.search AS ENUM ('grid', 'random');
CREATE TYPE pgml.sampling AS ENUM ('random', 'last', 'stratified');
CREATE TYPE pgml.runtime AS ENUM ('python', 'rust', 'openai');

CREATE TABLE pgml.projects (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    task       pgml.task NOT NULL,
    created_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT projects_name_key UNIQUE (name)
);

CREATE TABLE pgml.snapshots (
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

CREATE TABLE pgml.models (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES pgml.projects (id) ON DELETE CASCADE,
    snapshot_id   bigint REFERENCES pgml.snapshots (id) ON DELETE SET NULL,
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
CREATE INDEX models_project_id_idx ON pgml.models (project_id);
CREATE INDEX models_snapshot_id_idx ON pgml.models (snapshot_id);

CREATE TABLE pgml.deployments (
    id         bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES pgml.projects (id) ON DELETE CASCADE,
    model_id   bigint NOT NULL REFERENCES pgml.models (id) ON DELETE CASCADE,
    strategy   pgml.strategy,
    created_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX deployments_project_id_created_at_idx ON pgml.deployments (project_id, created_at);
CREATE INDEX deployments_model_id_idx ON pgml.deployments (model_id);

CREATE TABLE pgml.files (
    id         bigserial PRIMARY KEY,
    model_id   bigint NOT NULL REFERENCES pgml.models (id) ON DELETE CASCADE,
    path       text NOT NULL,
    part       integer NOT NULL,
    created_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamp WITHOUT TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    data       bytea NOT NULL,
    CONSTRAINT files_model_id_path_part_key UNIQUE (model_id, path, part)
);
