DROP MATERIALIZED VIEW mv_ml_training_summary;
