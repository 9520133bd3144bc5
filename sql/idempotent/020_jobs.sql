-- Scheduled work that pg_cron (or psql) can run without a Python process
-- (docs/operations.md, `pgml-flow cron install`).

-- Refresh any materialized view without blocking its readers: CONCURRENTLY when the
-- view is populated and has a unique index (what CONCURRENTLY needs), else a plain refresh.
CREATE OR REPLACE FUNCTION pgml_flow.refresh_materialized_view(view regclass)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    populated boolean;
    has_unique boolean;
BEGIN
    SELECT c.relispopulated INTO populated
      FROM pg_class c WHERE c.oid = view AND c.relkind = 'm';
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a materialized view', view
              USING HINT = 'list them with SELECT matviewname FROM pg_matviews';
    END IF;
    SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = view AND i.indisunique
                      AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL)
      INTO has_unique;
    IF populated AND has_unique THEN
        EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', view);
        RETURN 'concurrently';
    END IF;
    EXECUTE format('REFRESH MATERIALIZED VIEW %s', view);
    RETURN 'blocking';
END;
$$;
COMMENT ON FUNCTION pgml_flow.refresh_materialized_view(regclass) IS
    'REFRESH MATERIALIZED VIEW, CONCURRENTLY (readers never blocked) when the view allows it';

-- Record that a job is due (a "pending" claim row); a scheduler (`pgml-flow scheduler run
-- --once`, or the service) runs it. For operators who keep the schedule in pg_cron but the
-- work outside the server; `pgml-flow cron install` registers pgml_flow.run_job instead.
CREATE OR REPLACE FUNCTION pgml_flow.request_job(job text,
                                                 slot timestamptz DEFAULT date_trunc('minute', now()))
RETURNS bigint
LANGUAGE sql
AS $$
    INSERT INTO public.ml_job_runs (job, slot, status, requested_by)
    VALUES (job, slot, 'pending', 'pg_cron')
    ON CONFLICT ON CONSTRAINT ml_job_runs_job_slot_key DO NOTHING
    RETURNING id;
$$;
COMMENT ON FUNCTION pgml_flow.request_job(text, timestamptz) IS
    'Record a due job (status pending) for the scheduler to run; idempotent per (job, slot)';

-- Run the due slot of a retrain job inside the server: what pg_cron's retrain jobs call.
-- The run is the scheduler's own code (scheduler.in_database), on a loopback connection so
-- that each client commits on its own; this statement waits for it. Errors of the job as a
-- whole (not of one client, which are events) fail the statement, so pg_cron records them.
DROP FUNCTION IF EXISTS pgml_flow.run_job(text, double precision, text);
CREATE OR REPLACE FUNCTION pgml_flow.run_job(job text, margin double precision DEFAULT 0,
                                             webhook_url text DEFAULT NULL,
                                             keep_challengers integer DEFAULT 3)
RETURNS text
LANGUAGE plpython3u
AS $$
# Superusers only (900_grants.sql also revokes it from pgml_flow_ml): the run connects as
# whatever pgml_flow.loopback_conninfo names and calls the webhook_url it is given.
if not plpy.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")[0]["rolsuper"]:
    plpy.error("permission denied: pgml_flow.run_job runs retrains as the loopback "
               "connection's role and calls a webhook, so only a superuser may call it",
               sqlstate="42501",
               hint="schedule it with `pgml-flow cron install` as a superuser, or run "
                    "`pgml-flow scheduler run` outside the database")
# pgml-flow's pgml API puts the superuser-set pgml.venv on sys.path (sql/pgml/000_bootstrap.sql);
# with the real PostgresML extension, the server's own Python must have the packages.
if plpy.execute("SELECT to_regprocedure('pgml._python_path()') IS NOT NULL AS ok")[0]["ok"]:
    plpy.execute("SELECT pgml._python_path()")
try:
    from scheduler import in_database
    from pgml_flow.errors import PgmlFlowError
except ImportError as exc:
    plpy.error(f"pgml-flow's scheduler cannot be imported in the server: {exc}",
               hint="pgml.venv must name a virtualenv with pgml-flow and its dependencies "
                    "(psycopg, APScheduler); or run `pgml-flow scheduler run` outside")
try:
    return in_database.run_job(plpy, job, margin, webhook_url, keep_challengers)
except PgmlFlowError as exc:
    plpy.error(str(exc), sqlstate="P0001")
$$;
COMMENT ON FUNCTION pgml_flow.run_job(text, double precision, text, integer) IS
    'Run a retrain job''s due slot in the server (claim, challenger vs champion, events); pg_cron calls this';
