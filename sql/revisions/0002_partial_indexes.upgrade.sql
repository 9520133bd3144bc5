-- Partial indexes for the three models' training reads and the prediction log.
-- Run outside a transaction (CONCURRENTLY) so that upgrading a live database never
-- blocks writers; IF NOT EXISTS makes a retry after an interrupted build harmless
-- (an INVALID leftover index is dropped first by the migration).
CREATE INDEX CONCURRENTLY IF NOT EXISTS issues_trajectory_idx
    ON issues (client_id, work_last_completed_at)
    WHERE active AND total_lead_time_seconds > 0;
CREATE INDEX CONCURRENTLY IF NOT EXISTS issues_complexity_idx
    ON issues (client_id, created)
    WHERE active AND story_points IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS pull_requests_rework_idx
    ON pull_requests (client_id, merged_at)
    WHERE active AND merged_at IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS ml_prediction_log_recent_idx
    ON ml_prediction_log (client_id, model_name, created_at)
    WHERE active;
