DELETE FROM ml_retraining_events WHERE status IN ('deployed', 'rolled_back');
ALTER TABLE ml_retraining_events DROP CONSTRAINT ml_retraining_events_status_check;
ALTER TABLE ml_retraining_events ADD CONSTRAINT ml_retraining_events_status_check
    CHECK (status IN ('running', 'promoted', 'kept_champion', 'skipped', 'failed'));
ALTER TABLE ml_retraining_events DROP COLUMN job_run_id;
DROP TABLE ml_job_runs;
