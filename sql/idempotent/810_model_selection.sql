-- ml_model_candidates (revision 0013): the admin/ML role reads and writes every client's
-- rows; BI logins get no grant on it (a model's choice is operator information), and the
-- tenant policy is there should one be given. Recreated on every upgrade.
-- One DO block: Citus propagates a top-level policy command to the shards with the text
-- of the whole file, which the workers refuse (several commands in one statement).
DO $$
BEGIN
    DROP POLICY IF EXISTS tenant_isolation ON public.ml_model_candidates;
    -- the same tenant filter as 800_policies.sql (055_citus_pgml.sql says why it varies)
    EXECUTE format('CREATE POLICY tenant_isolation ON public.ml_model_candidates '
                   'FOR SELECT TO pgml_flow_bi USING (%s)', pgml_flow.tenant_filter());
    DROP POLICY IF EXISTS ml_admin ON public.ml_model_candidates;
    CREATE POLICY ml_admin ON public.ml_model_candidates TO pgml_flow_ml
        USING (true) WITH CHECK (true);
END;
$$;
GRANT SELECT, INSERT ON public.ml_model_candidates TO pgml_flow_ml;
