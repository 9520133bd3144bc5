-- Revision 0011_rollout: the kill switch, the rollout to a share of clients, and online
-- A/B tests of a challenger against a client's deployed model (docs/operations.md).
-- Read on every BI read by pgml_flow.rollout_state and pgml_flow.abtest_serve
-- (sql/idempotent/260_rollout.sql), never cached: a change shows on the next query.

-- Switches that hold for every client: model_name '*' is the global switch (every model),
-- a model's row its switch and its rollout (the share of clients, chosen by a hash of the
-- client and the model, that the model serves). No client_id: a reference table.
CREATE TABLE ml_rollout_global (
    model_name      text        NOT NULL,
    state           text        NOT NULL DEFAULT 'enabled',
    rollout_percent integer     NOT NULL DEFAULT 100,
    reason          text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text        NOT NULL DEFAULT session_user,
    CONSTRAINT ml_rollout_global_pkey PRIMARY KEY (model_name),
    CONSTRAINT ml_rollout_global_state_check CHECK (state IN ('enabled', 'shadow', 'disabled')),
    CONSTRAINT ml_rollout_global_percent_check CHECK (rollout_percent BETWEEN 0 AND 100)
);

-- Per client: one model's switch, or every model's (model_name '*').
CREATE TABLE ml_rollout (
    client_id  bigint      NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    model_name text        NOT NULL,
    state      text        NOT NULL,
    reason     text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT session_user,
    CONSTRAINT ml_rollout_pkey PRIMARY KEY (client_id, model_name),
    CONSTRAINT ml_rollout_state_check CHECK (state IN ('enabled', 'shadow', 'disabled'))
);
ALTER TABLE ml_rollout ENABLE ROW LEVEL SECURITY;

-- An online test of a challenger against the champion of one client's model. shadow: BI
-- sees the champion, the challenger scores the same items; split: items whose hash of
-- (client, model, item) falls under split_percent are served the challenger's prediction.
-- Both are logged per item (ml_abtest_predictions) and paired with outcomes as they arrive.
CREATE TABLE ml_abtests (
    client_id           bigint           NOT NULL
                                         REFERENCES clients (client_id) ON DELETE CASCADE,
    id                  bigint           GENERATED ALWAYS AS IDENTITY,
    model_name          text             NOT NULL,
    champion_model_id   bigint           NOT NULL,
    challenger_model_id bigint           NOT NULL,
    mode                text             NOT NULL,
    split_percent       integer          NOT NULL DEFAULT 0,
    min_pairs           integer          NOT NULL DEFAULT 30,
    max_pairs           integer          NOT NULL DEFAULT 1000,
    alpha               double precision NOT NULL DEFAULT 0.05,
    status              text             NOT NULL DEFAULT 'running',
    pairs               integer,
    p_value             double precision,
    detail              text,
    started_at          timestamptz      NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    CONSTRAINT ml_abtests_pkey PRIMARY KEY (client_id, id),
    CONSTRAINT ml_abtests_mode_check CHECK (mode IN ('shadow', 'split')),
    CONSTRAINT ml_abtests_split_check CHECK (split_percent BETWEEN 0 AND 100),
    CONSTRAINT ml_abtests_pairs_check CHECK (min_pairs >= 5 AND max_pairs >= min_pairs),
    CONSTRAINT ml_abtests_alpha_check CHECK (alpha > 0 AND alpha < 0.5),
    CONSTRAINT ml_abtests_status_check
        CHECK (status IN ('running', 'promoted', 'kept_champion', 'stopped'))
);
ALTER TABLE ml_abtests ENABLE ROW LEVEL SECURITY;
-- one running test per client and model (a new, empty table: no CONCURRENTLY needed)
CREATE UNIQUE INDEX ml_abtests_running ON ml_abtests (client_id, model_name)
    WHERE status = 'running';

-- Both arms' predictions of one item, the last ones before its outcome arrived (an item is
-- scored while it is open). prediction: the value (regression) or the class (classification);
-- score: the probability of class 1 (classification).
CREATE TABLE ml_abtest_predictions (
    client_id             bigint           NOT NULL,
    abtest_id             bigint           NOT NULL,
    entity_id             bigint           NOT NULL,
    served_arm            text             NOT NULL,
    champion_prediction   double precision,
    challenger_prediction double precision,
    champion_score        double precision,
    challenger_score      double precision,
    scored_at             timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT ml_abtest_predictions_pkey PRIMARY KEY (client_id, abtest_id, entity_id),
    CONSTRAINT ml_abtest_predictions_test_fkey FOREIGN KEY (client_id, abtest_id)
        REFERENCES ml_abtests (client_id, id) ON DELETE CASCADE,
    CONSTRAINT ml_abtest_predictions_arm_check CHECK (served_arm IN ('champion', 'challenger'))
);
ALTER TABLE ml_abtest_predictions ENABLE ROW LEVEL SECURITY;
