-- Ownership and privileges, last (docs/isolation.md).

-- The SECURITY DEFINER functions run as the admin/ML role, never as a superuser.
ALTER FUNCTION pgml_flow.current_client_id() OWNER TO pgml_flow_ml;
ALTER FUNCTION pgml_flow.serving_model(bigint, text) OWNER TO pgml_flow_ml;
ALTER FUNCTION analytics.predictions(text, boolean) OWNER TO pgml_flow_ml;
ALTER FUNCTION analytics.model_quality_rows() OWNER TO pgml_flow_ml;

-- Nothing is executable by PUBLIC; each role gets what it needs.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgml_flow FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA analytics FROM PUBLIC;
REVOKE ALL ON SCHEMA pgml_flow_training FROM PUBLIC;

-- The admin/ML role: every client's rows, the pgml internals, the feature views.
GRANT USAGE ON SCHEMA pgml_flow, analytics, pgml_flow_training, pgml TO pgml_flow_ml;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA pgml_flow TO pgml_flow_ml;
-- ... but not run_job: it connects as pgml_flow.loopback_conninfo's role and calls the
-- webhook it is given, which only a superuser may choose (docs/isolation.md, threat model).
REVOKE EXECUTE ON FUNCTION pgml_flow.run_job(text, double precision, text, integer)
    FROM pgml_flow_ml;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA analytics TO pgml_flow_ml;
GRANT SELECT ON ALL TABLES IN SCHEMA pgml_flow TO pgml_flow_ml;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO pgml_flow_ml;
GRANT SELECT ON ALL TABLES IN SCHEMA pgml TO pgml_flow_ml;
GRANT SELECT ON public.clients, public.issuetypes, public.repositories, public.issues,
                public.pull_requests, public.ml_prediction_log, public.ml_retraining_events,
                public.client_bi_roles, public.ml_model_baselines, public.ml_model_registry,
                public.mv_ml_training_summary, public.pgml_flow_settings
   TO pgml_flow_ml;
GRANT INSERT ON public.ml_prediction_log TO pgml_flow_ml;

-- BI logins: the analytics schema, and the tenant tables (RLS shows their own rows).
-- Not: pgml, pgml_flow_training, the feature views, the materialized summary, the
-- role map, the baselines or the registry.
GRANT USAGE ON SCHEMA analytics, pgml_flow TO pgml_flow_bi;
GRANT EXECUTE ON FUNCTION pgml_flow.current_client_id() TO pgml_flow_bi;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA analytics TO pgml_flow_bi;
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO pgml_flow_bi;
GRANT SELECT ON public.clients, public.issuetypes, public.repositories, public.issues,
                public.pull_requests, public.ml_prediction_log, public.ml_retraining_events
   TO pgml_flow_bi;

-- Monitoring (400_monitoring.sql): its SECURITY DEFINER functions run as the admin/ML role
-- and show each caller only the clients it may see (pgml_flow.monitor_sees): operators
-- (pgml_flow_ml) every client, a BI login its own. The drift and calibration tables are
-- read by the admin/ML role (the BI surface's logging reads the calibration as it).
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'monitoring'::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO pgml_flow_ml', f);
    END LOOP;
END;
$$;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA monitoring FROM PUBLIC;
GRANT USAGE ON SCHEMA monitoring TO pgml_flow_ml, pgml_flow_bi;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA monitoring TO pgml_flow_ml, pgml_flow_bi;
GRANT SELECT ON public.ml_drift_reference, public.ml_drift_checks,
                public.ml_anomaly_calibration
   TO pgml_flow_ml;
