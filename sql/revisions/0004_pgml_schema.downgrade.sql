-- The schema's contents were dropped first (pgml_flow.migrate.drop_schema_contents), kind by
-- kind and without CASCADE; the schema may already be gone with the real extension.
DROP SCHEMA IF EXISTS pgml;
DROP TABLE pgml_flow_settings;
