-- Which implementation of the pgml API this database uses.
CREATE TABLE pgml_flow_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE pgml_flow_settings IS 'Database-wide facts recorded by pgml-flow migrations';
