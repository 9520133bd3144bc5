-- Row-Level Security policies (RLS itself is enabled by revision 0005).
--   tenant_isolation  BI logins (members of pgml_flow_bi) read their own client's rows
--   ml_admin          the admin/ML role reads and writes every client's rows
-- Recreated on every upgrade, so a policy changed by hand is put back.
-- On Citus the tenant filter calls the function without a subquery: Citus refuses
-- subqueries in policies of distributed tables (the plain server keeps the InitPlan,
-- which evaluates the SECURITY DEFINER function once per query instead of once per row).
DO $$
DECLARE
    t text;
    tenant_filter constant text := pgml_flow.tenant_filter();
BEGIN
    FOREACH t IN ARRAY ARRAY['clients', 'issuetypes', 'repositories', 'issues',
                             'pull_requests', 'ml_prediction_log', 'ml_retraining_events',
                             'client_bi_roles', 'ml_model_baselines',
                             'ml_prediction_log_usage', 'ml_drift_reference',
                             'ml_drift_checks', 'ml_anomaly_calibration', 'ml_rollout',
                             'ml_abtests', 'ml_abtest_predictions']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS tenant_isolation ON public.%I', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON public.%I FOR SELECT TO pgml_flow_bi '
                       'USING (%s)', t, tenant_filter);
        EXECUTE format('DROP POLICY IF EXISTS ml_admin ON public.%I', t);
        EXECUTE format('CREATE POLICY ml_admin ON public.%I TO pgml_flow_ml '
                       'USING (true) WITH CHECK (true)', t);
    END LOOP;
END;
$$;
