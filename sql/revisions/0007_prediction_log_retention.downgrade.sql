-- In the downgrade's one transaction: plain DROP INDEX (CONCURRENTLY cannot run in one).
DROP TABLE ml_prediction_log_usage;
ALTER TABLE clients
    DROP COLUMN prediction_log_max_rows,
    DROP COLUMN prediction_log_retention_days,
    DROP COLUMN prediction_log_rows_per_hour;
DROP INDEX ml_prediction_log_prediction_key;
ALTER TABLE ml_prediction_log DROP COLUMN prediction_key;
