-- Scheduled work (docs/operations.md): one row per job and slot, claimed exactly once.
-- A global table (no client rows): the scheduler, its replicas and pg_cron share it.
--   pending     recorded as due (by pg_cron's pgml_flow.request_job), not started yet
--   running     claimed by a scheduler (claimed_by); if its owner died, the next run retries it
--   succeeded / failed / interrupted (stopped by SIGTERM; retried) / superseded (a newer
--   slot of the same job ran instead)
CREATE TABLE ml_job_runs (
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    job          text        NOT NULL,
    slot         timestamptz NOT NULL,
    status       text        NOT NULL,
    requested_by text        NOT NULL DEFAULT 'scheduler',
    claimed_by   text,
    attempts     integer     NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    detail       text,
    error        text,
    CONSTRAINT ml_job_runs_pkey PRIMARY KEY (id),
    CONSTRAINT ml_job_runs_job_slot_key UNIQUE (job, slot),
    CONSTRAINT ml_job_runs_status_check CHECK (status IN (
        'pending', 'running', 'succeeded', 'failed', 'interrupted', 'superseded'))
);

-- The scheduled run a retraining event belongs to (NULL for manual runs), so that a job
-- retried after a crash skips the clients it already finished. Operator deploys and
-- rollbacks are events too.
ALTER TABLE ml_retraining_events ADD COLUMN job_run_id bigint;
ALTER TABLE ml_retraining_events DROP CONSTRAINT ml_retraining_events_status_check;
ALTER TABLE ml_retraining_events ADD CONSTRAINT ml_retraining_events_status_check
    CHECK (status IN ('running', 'promoted', 'kept_champion', 'skipped', 'failed',
                      'deployed', 'rolled_back'));
