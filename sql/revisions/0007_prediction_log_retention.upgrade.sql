-- Bounded prediction logging (docs/operations.md, "Prediction log: dedup, cap, retention").
-- Run outside a transaction, one statement at a time (the unique index is built
-- CONCURRENTLY so that upgrading a live database never blocks BI reads); every statement
-- is idempotent, so a retry after an interruption is harmless.

-- A re-read of an unchanged prediction is logged once: the key of what was predicted
-- (md5 of the features and the predicted value) is unique per client, model and item.
-- Rows logged before this revision have no key and are left as they are.
ALTER TABLE ml_prediction_log ADD COLUMN IF NOT EXISTS prediction_key uuid;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ml_prediction_log_prediction_key
    ON ml_prediction_log (client_id, model_id, entity_id, prediction_key)
    WHERE prediction_key IS NOT NULL;

-- Per-client overrides of the database-wide limits (pgml_flow_settings); NULL: the setting.
ALTER TABLE clients
    ADD COLUMN IF NOT EXISTS prediction_log_rows_per_hour bigint
        CONSTRAINT clients_prediction_log_rows_per_hour_check
        CHECK (prediction_log_rows_per_hour >= -1),
    ADD COLUMN IF NOT EXISTS prediction_log_retention_days integer
        CONSTRAINT clients_prediction_log_retention_days_check
        CHECK (prediction_log_retention_days >= -1),
    ADD COLUMN IF NOT EXISTS prediction_log_max_rows bigint
        CONSTRAINT clients_prediction_log_max_rows_check
        CHECK (prediction_log_max_rows >= -1);

-- What each client logged, and did not log, per UTC hour: predictions over its hourly cap
-- (capped_rows, in capped_reads reads), and reads that skipped their log because another
-- transaction was logging the same model for the client (busy_reads). One row per database
-- session (backend_pid) so that concurrent reads never wait on one counter row; the prune
-- folds past hours into one row per hour (backend_pid 0).
CREATE TABLE IF NOT EXISTS ml_prediction_log_usage (
    client_id    bigint      NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    period_start timestamptz NOT NULL,
    backend_pid  integer     NOT NULL,
    logged_rows  bigint      NOT NULL DEFAULT 0,
    capped_rows  bigint      NOT NULL DEFAULT 0,
    capped_reads bigint      NOT NULL DEFAULT 0,
    busy_reads   bigint      NOT NULL DEFAULT 0,
    CONSTRAINT ml_prediction_log_usage_pkey PRIMARY KEY (client_id, period_start, backend_pid)
);
ALTER TABLE ml_prediction_log_usage ENABLE ROW LEVEL SECURITY;
