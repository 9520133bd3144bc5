-- Tenant data of an engineering-analytics product, and the ML bookkeeping tables.
-- client_id leads every primary and foreign key so the schema can be sharded by client.

CREATE TABLE clients (
    client_id          bigint      NOT NULL,
    name               text        NOT NULL,
    slug               text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    active             boolean     NOT NULL DEFAULT true,
    ml_enabled         boolean     NOT NULL DEFAULT true,
    prediction_logging boolean     NOT NULL DEFAULT true,
    CONSTRAINT clients_pkey PRIMARY KEY (client_id),
    CONSTRAINT clients_slug_key UNIQUE (slug),
    CONSTRAINT clients_slug_check CHECK (slug ~ '^[a-z0-9_]{1,40}$')
);

CREATE TABLE issuetypes (
    client_id       bigint  NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    issuetype_id    bigint  NOT NULL,
    original_name   text    NOT NULL,
    hierarchy_level integer NOT NULL DEFAULT 0,
    active          boolean NOT NULL DEFAULT true,
    CONSTRAINT issuetypes_pkey PRIMARY KEY (client_id, issuetype_id),
    CONSTRAINT issuetypes_name_key UNIQUE (client_id, original_name)
);
COMMENT ON COLUMN issuetypes.hierarchy_level IS '1 = epic, 0 = standard issue, -1 = sub-task';

CREATE TABLE repositories (
    client_id      bigint      NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    repository_id  bigint      NOT NULL,
    name           text        NOT NULL,
    default_branch text        NOT NULL DEFAULT 'main',
    created_at     timestamptz NOT NULL,
    active         boolean     NOT NULL DEFAULT true,
    CONSTRAINT repositories_pkey PRIMARY KEY (client_id, repository_id)
);

CREATE TABLE issues (
    client_id               bigint      NOT NULL,
    issue_id                bigint      NOT NULL,
    issue_key               text        NOT NULL,
    issuetype_id            bigint      NOT NULL,
    parent_issue_id         bigint,
    story_points            numeric(6, 2),
    created                 timestamptz NOT NULL,
    updated                 timestamptz NOT NULL,
    work_first_started_at   timestamptz,
    work_last_completed_at  timestamptz,
    total_lead_time_seconds bigint,
    status                  text        NOT NULL,
    status_category         text        NOT NULL,
    priority                text        NOT NULL,
    components              text[]      NOT NULL DEFAULT '{}',
    assignee_id             bigint,
    title                   text        NOT NULL,
    description             text        NOT NULL DEFAULT '',
    active                  boolean     NOT NULL DEFAULT true,
    CONSTRAINT issues_pkey PRIMARY KEY (client_id, issue_id),
    CONSTRAINT issues_key_key UNIQUE (client_id, issue_key),
    CONSTRAINT issues_issuetype_fkey FOREIGN KEY (client_id, issuetype_id)
        REFERENCES issuetypes (client_id, issuetype_id),
    CONSTRAINT issues_parent_fkey FOREIGN KEY (client_id, parent_issue_id)
        REFERENCES issues (client_id, issue_id),
    CONSTRAINT issues_status_category_check
        CHECK (status_category IN ('todo', 'in_progress', 'done')),
    CONSTRAINT issues_lead_time_check
        CHECK (total_lead_time_seconds IS NULL OR total_lead_time_seconds >= 0)
);
CREATE INDEX issues_parent_idx ON issues (client_id, parent_issue_id)
    WHERE parent_issue_id IS NOT NULL;

CREATE TABLE pull_requests (
    client_id           bigint      NOT NULL,
    pull_request_id     bigint      NOT NULL,
    repository_id       bigint      NOT NULL,
    issue_id            bigint,
    number              integer     NOT NULL,
    title               text        NOT NULL,
    author_id           bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    first_review_at     timestamptz,
    merged_at           timestamptz,
    closed_at           timestamptz,
    state               text        NOT NULL,
    review_cycles       integer     NOT NULL DEFAULT 0,
    rework_commit_count integer     NOT NULL DEFAULT 0,
    additions           integer     NOT NULL DEFAULT 0,
    deletions           integer     NOT NULL DEFAULT 0,
    changed_files       integer     NOT NULL DEFAULT 0,
    commits             integer     NOT NULL DEFAULT 0,
    comments            integer     NOT NULL DEFAULT 0,
    review_comments     integer     NOT NULL DEFAULT 0,
    reviewers           integer     NOT NULL DEFAULT 0,
    has_tests           boolean     NOT NULL DEFAULT false,
    active              boolean     NOT NULL DEFAULT true,
    CONSTRAINT pull_requests_pkey PRIMARY KEY (client_id, pull_request_id),
    CONSTRAINT pull_requests_number_key UNIQUE (client_id, repository_id, number),
    CONSTRAINT pull_requests_repository_fkey FOREIGN KEY (client_id, repository_id)
        REFERENCES repositories (client_id, repository_id),
    CONSTRAINT pull_requests_issue_fkey FOREIGN KEY (client_id, issue_id)
        REFERENCES issues (client_id, issue_id),
    CONSTRAINT pull_requests_state_check CHECK (state IN ('open', 'merged', 'closed'))
);
CREATE INDEX pull_requests_issue_idx ON pull_requests (client_id, issue_id)
    WHERE issue_id IS NOT NULL;

CREATE TABLE ml_prediction_log (
    client_id        bigint      NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    model_name       text        NOT NULL,
    model_id         bigint,
    entity_id        bigint,
    features_hash    text,
    features         jsonb,
    prediction       double precision,
    response_time_ms real,
    anomaly_score    real,
    is_anomaly       boolean     NOT NULL DEFAULT false,
    severity         text        NOT NULL DEFAULT 'none',
    created_at       timestamptz NOT NULL DEFAULT now(),
    active           boolean     NOT NULL DEFAULT true,
    CONSTRAINT ml_prediction_log_pkey PRIMARY KEY (client_id, id),
    CONSTRAINT ml_prediction_log_severity_check
        CHECK (severity IN ('none', 'low', 'medium', 'high'))
);

CREATE TABLE ml_retraining_events (
    client_id           bigint      NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    id                  bigint      GENERATED ALWAYS AS IDENTITY,
    model_name          text        NOT NULL,
    reason              text        NOT NULL,
    status              text        NOT NULL,
    champion_model_id   bigint,
    challenger_model_id bigint,
    metrics_before      jsonb,
    metrics_after       jsonb,
    training_rows       bigint,
    duration_seconds    double precision,
    error               text,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    CONSTRAINT ml_retraining_events_pkey PRIMARY KEY (client_id, id),
    CONSTRAINT ml_retraining_events_status_check
        CHECK (status IN ('running', 'promoted', 'kept_champion', 'skipped', 'failed'))
);
