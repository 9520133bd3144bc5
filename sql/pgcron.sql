-- Queries of `pgml-flow cron` (pgml_flow.pgcron), loaded by name. They run in the
-- database of cron.database_name, where pg_cron keeps its jobs.

-- name: cron_database
SELECT current_setting('cron.database_name', true);

-- name: create_extension
CREATE EXTENSION IF NOT EXISTS pg_cron;

-- name: schedule
SELECT cron.schedule_in_database(%(name)s, %(schedule)s, %(command)s, %(database)s);

-- name: jobs
SELECT jobid, jobname, schedule, command, database, active
  FROM cron.job WHERE jobname LIKE %(prefix)s || '%%' ORDER BY jobname;

-- name: unschedule
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE %(prefix)s || '%%';

-- name: history
SELECT j.jobname, j.command, d.runid, d.status, d.return_message, d.start_time, d.end_time
  FROM cron.job_run_details d JOIN cron.job j USING (jobid)
 WHERE j.jobname LIKE %(prefix)s || '%%'
 ORDER BY d.start_time DESC NULLS LAST, d.runid DESC
 LIMIT %(limit)s;

-- name: set_node
UPDATE cron.job SET nodename = %(host)s, nodeport = %(port)s
 WHERE jobname LIKE %(prefix)s || '%%';
