-- Revision 0010_monitoring: drift statistics and anomaly calibration (docs/operations.md,
-- "Monitoring and drift"). Every table is per client (client_id first in its primary key,
-- so that it can be distributed by client_id) and under Row-Level Security; the policies
-- are in sql/idempotent/800_policies.sql, the functions in sql/idempotent/400_monitoring.sql.

-- What a deployed model was trained on, per feature, stored when it is trained (or, for a
-- model trained before this revision, at its first drift check): the training rows'
-- distribution as bins (numeric: deciles of the values; categorical: the most frequent
-- values, the rest as one bin) with the share of rows in each, and for numeric features
-- the values themselves (at most 5,000 evenly spaced order statistics) for the
-- Kolmogorov-Smirnov test.
CREATE TABLE ml_drift_reference (
    client_id      bigint             NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    model_id       bigint             NOT NULL,
    feature        text               NOT NULL,
    model_name     text               NOT NULL,
    kind           text               NOT NULL,
    -- numeric: the 1-based position in the feature view's features array
    position       integer,
    -- numeric: upper edges of the bins but the last (a value v falls in the first bin whose
    -- edge is >= v); categorical: the values with a bin of their own
    edges          double precision[],
    categories     text[],
    shares         double precision[] NOT NULL,
    sample         double precision[],
    rows           bigint             NOT NULL,
    source         text               NOT NULL,
    created_at     timestamptz        NOT NULL DEFAULT now(),
    CONSTRAINT ml_drift_reference_pkey PRIMARY KEY (client_id, model_id, feature),
    CONSTRAINT ml_drift_reference_kind_check CHECK (kind IN ('numeric', 'categorical'))
);

-- One row per drift check of a client's deployed model and feature: population stability
-- index of the recent distinct scored rows against the reference, the Kolmogorov-Smirnov
-- test (numeric features), and the verdict.
CREATE TABLE ml_drift_checks (
    client_id      bigint           NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    id             bigint           GENERATED ALWAYS AS IDENTITY,
    model_name     text             NOT NULL,
    model_id       bigint           NOT NULL,
    feature        text             NOT NULL,
    kind           text             NOT NULL,
    psi            double precision,
    ks_statistic   double precision,
    ks_pvalue      double precision,
    drifted        boolean          NOT NULL,
    reference_rows bigint           NOT NULL,
    recent_rows    bigint           NOT NULL,
    window_length  interval         NOT NULL,
    detail         text,
    checked_at     timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT ml_drift_checks_pkey PRIMARY KEY (client_id, id)
);
CREATE INDEX ml_drift_checks_latest_idx
    ON ml_drift_checks (client_id, model_name, feature, checked_at);

-- The anomaly score's scale per model: the 99th percentile of the raw score (the largest
-- absolute z-score of a row's features and target) over the model's training rows. The
-- logged score is 3 * raw / raw_p99, so that a score >= 3 (is_anomaly) flags about one in a hundred of
-- rows like those the model was trained on.
CREATE TABLE ml_anomaly_calibration (
    client_id     bigint           NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    model_id      bigint           NOT NULL,
    model_name    text             NOT NULL,
    raw_p99       double precision NOT NULL,
    scale         double precision NOT NULL,
    rows          bigint           NOT NULL,
    created_at    timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT ml_anomaly_calibration_pkey PRIMARY KEY (client_id, model_id)
);

ALTER TABLE ml_drift_reference     ENABLE ROW LEVEL SECURITY;
ALTER TABLE ml_drift_checks        ENABLE ROW LEVEL SECURITY;
ALTER TABLE ml_anomaly_calibration ENABLE ROW LEVEL SECURITY;
