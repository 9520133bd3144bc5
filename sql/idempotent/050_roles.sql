-- Cluster-wide roles and the schemas of the BI surface (docs/isolation.md).
--
-- pgml_flow_ml  the admin/ML role: owns the SECURITY DEFINER functions of the BI surface,
--               reads every client's rows and the pgml internals. NOLOGIN: grant it to
--               the people and services that train and operate models.
-- pgml_flow_bi  the group of every client's BI login (pgml-flow bi grant). It may read the
--               analytics schema and the tenant tables, where RLS shows each login only
--               its own client's rows.
-- Roles belong to the cluster, not a database: both are created once, shared by every
-- pgml-flow database of the cluster, and harmless in a database that does not map a
-- login to a client (client_bi_roles): there, a BI login sees no rows at all.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgml_flow_ml') THEN
        BEGIN
            CREATE ROLE pgml_flow_ml NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by an upgrade of another database
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgml_flow_bi') THEN
        BEGIN
            CREATE ROLE pgml_flow_bi NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END;
$$;

CREATE SCHEMA IF NOT EXISTS analytics;
COMMENT ON SCHEMA analytics IS
    'The BI surface: predictions and model quality for the caller''s client (docs/models.md)';
CREATE SCHEMA IF NOT EXISTS pgml_flow_training;
COMMENT ON SCHEMA pgml_flow_training IS
    'One training view per client and model (<model>__client_<id>), made by pgml-flow train';
