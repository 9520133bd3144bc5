-- ml_model_candidates (revision 0013): the admin/ML role reads and writes every client's
-- rows; BI logins get no grant on it (a model's choice is operator information), and the
-- tenant policy is there should one be given. Recreated on every upgrade.
DROP POLICY IF EXISTS tenant_isolation ON public.ml_model_candidates;
CREATE POLICY tenant_isolation ON public.ml_model_candidates FOR SELECT TO pgml_flow_bi
    USING (client_id = (SELECT pgml_flow.current_client_id()));
DROP POLICY IF EXISTS ml_admin ON public.ml_model_candidates;
CREATE POLICY ml_admin ON public.ml_model_candidates TO pgml_flow_ml
    USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON public.ml_model_candidates TO pgml_flow_ml;
