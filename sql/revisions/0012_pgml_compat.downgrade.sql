-- Undo revision 0012_pgml_compat: pgml.status, where it is pgml-flow's (never the real
-- extension's). Without CASCADE: a user's column of that type stops the downgrade.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pgml_flow_settings WHERE name = 'pgml_backend'
                                                  AND value = 'pgml-flow') THEN
        DROP TYPE IF EXISTS pgml.status;
    END IF;
END;
$$;
