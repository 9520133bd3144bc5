-- pgml_flow: functions and views pgml-flow owns. Everything in this schema is
-- (re)created by the files of sql/idempotent after every upgrade.
CREATE SCHEMA IF NOT EXISTS pgml_flow;
COMMENT ON SCHEMA pgml_flow IS 'pgml-flow functions and views; recreated on every upgrade';
