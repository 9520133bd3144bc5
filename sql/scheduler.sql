-- Queries of the scheduler (scheduler.runner), loaded by name.

-- name: try_lock
-- A session-level advisory lock per (job, slot): held while the job runs, released when
-- the holder's connection ends (also when its process is killed).
SELECT pg_try_advisory_lock(hashtextextended(%(job)s || '@' || extract(epoch FROM %(slot)s::timestamptz)::bigint::text, 0));

-- name: unlock
SELECT pg_advisory_unlock(hashtextextended(%(job)s || '@' || extract(epoch FROM %(slot)s::timestamptz)::bigint::text, 0));

-- name: claim
-- Under the lock: a new slot, a pending one (from pg_cron), or one whose owner died
-- (running without its lock) or stopped (interrupted). Finished slots return nothing.
INSERT INTO ml_job_runs AS r (job, slot, status, claimed_by, attempts, started_at)
VALUES (%(job)s, %(slot)s, 'running', %(claimed_by)s, 1, now())
ON CONFLICT (job, slot) DO UPDATE
   SET status = 'running', claimed_by = excluded.claimed_by, attempts = r.attempts + 1,
       started_at = now(), finished_at = NULL, error = NULL
 WHERE r.status IN ('pending', 'running', 'interrupted')
RETURNING id, attempts;

-- name: finish
UPDATE ml_job_runs SET status = %(status)s, finished_at = now(), detail = %(detail)s,
       error = %(error)s
 WHERE id = %(id)s;

-- name: open_slots
-- Slots not finished: pending (pg_cron asked), or running/interrupted (to retry).
SELECT job, slot, status FROM ml_job_runs
 WHERE status IN ('pending', 'running', 'interrupted') AND job = ANY(%(jobs)s)
 ORDER BY slot;

-- name: supersede
UPDATE ml_job_runs SET status = 'superseded', finished_at = now(),
       detail = 'coalesced into the run of ' || %(newer)s::timestamptz::text
 WHERE job = %(job)s AND slot = %(slot)s AND status IN ('pending', 'running', 'interrupted');

-- name: job_runs
SELECT id, job, slot, status, requested_by, claimed_by, attempts, started_at, finished_at,
       detail, error
  FROM ml_job_runs
 WHERE %(job)s::text IS NULL OR job = %(job)s
 ORDER BY slot DESC, id DESC
 LIMIT %(limit)s;

-- name: last_run
SELECT max(slot) FROM ml_job_runs WHERE job = %(job)s AND status = 'succeeded';
