-- Client-scoped models and tenant isolation (docs/models.md, docs/isolation.md).
-- Tables only; the functions, views, policies and grants that use them are in
-- sql/idempotent (re-applied on every upgrade).

-- Which database logins read the BI surface for which client. A login maps to one
-- client; the RLS policies resolve the caller's client from this table by session_user.
CREATE TABLE client_bi_roles (
    client_id  bigint      NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    role_name  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT client_bi_roles_pkey PRIMARY KEY (client_id, role_name),
    CONSTRAINT client_bi_roles_role_key UNIQUE (role_name)
);

-- The model specs pgml-flow has trained (written from pgml_models specs at training),
-- so that SQL (the BI surface, the quality view) knows each model's task, views and
-- key-metric threshold without Python.
CREATE TABLE ml_model_registry (
    model_name            text        NOT NULL,
    task                  text        NOT NULL,
    training_view         text        NOT NULL,
    feature_view          text,
    target                text        NOT NULL,
    features              text[]      NOT NULL,
    key_metric            text        NOT NULL,
    performance_threshold real,
    spec                  jsonb       NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ml_model_registry_pkey PRIMARY KEY (model_name),
    CONSTRAINT ml_model_registry_task_check CHECK (task IN ('regression', 'classification'))
);

-- The training distribution of each trained model (per feature mean and spread, and the
-- target's), which the BI surface compares predictions against for the anomaly score.
CREATE TABLE ml_model_baselines (
    client_id      bigint             NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    model_id       bigint             NOT NULL,
    model_name     text               NOT NULL,
    project        text               NOT NULL,
    training_rows  bigint             NOT NULL,
    feature_names  text[]             NOT NULL,
    feature_mean   double precision[] NOT NULL,
    feature_stddev double precision[] NOT NULL,
    target_mean    double precision,
    target_stddev  double precision,
    trained_at     timestamptz        NOT NULL DEFAULT now(),
    CONSTRAINT ml_model_baselines_pkey PRIMARY KEY (client_id, model_id)
);

ALTER TABLE ml_retraining_events
    ADD COLUMN project text,
    ADD COLUMN detail  text;
CREATE INDEX ml_retraining_events_model_idx
    ON ml_retraining_events (client_id, model_name, started_at);

-- Row-Level Security on every table that holds a client's rows. With no policy a
-- non-owner sees nothing; the policies (sql/idempotent/800_policies.sql) open each
-- table to the caller's own client only.
ALTER TABLE clients              ENABLE ROW LEVEL SECURITY;
ALTER TABLE issuetypes           ENABLE ROW LEVEL SECURITY;
ALTER TABLE repositories         ENABLE ROW LEVEL SECURITY;
ALTER TABLE issues               ENABLE ROW LEVEL SECURITY;
ALTER TABLE pull_requests        ENABLE ROW LEVEL SECURITY;
ALTER TABLE ml_prediction_log    ENABLE ROW LEVEL SECURITY;
ALTER TABLE ml_retraining_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE client_bi_roles      ENABLE ROW LEVEL SECURITY;
ALTER TABLE ml_model_baselines   ENABLE ROW LEVEL SECURITY;
