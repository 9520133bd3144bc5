DROP INDEX CONCURRENTLY IF EXISTS ml_prediction_log_recent_idx;
DROP INDEX CONCURRENTLY IF EXISTS pull_requests_rework_idx;
DROP INDEX CONCURRENTLY IF EXISTS issues_complexity_idx;
DROP INDEX CONCURRENTLY IF EXISTS issues_trajectory_idx;
