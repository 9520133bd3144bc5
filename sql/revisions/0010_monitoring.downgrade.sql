-- Undo revision 0010_monitoring (the functions and views of sql/idempotent/400_monitoring.sql
-- are dropped with their schemas before this runs).
DROP TABLE IF EXISTS ml_anomaly_calibration;
DROP TABLE IF EXISTS ml_drift_checks;
DROP TABLE IF EXISTS ml_drift_reference;
