-- Refresh the training summary without blocking its readers.
-- CONCURRENTLY needs the unique index on (client_id, model_type) and a populated view;
-- the first refresh after creation therefore falls back to a plain one.
CREATE OR REPLACE FUNCTION pgml_flow.refresh_training_summary(non_blocking boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    IF non_blocking AND (SELECT relispopulated FROM pg_class
                          WHERE oid = 'public.mv_ml_training_summary'::regclass) THEN
        REFRESH MATERIALIZED VIEW CONCURRENTLY public.mv_ml_training_summary;
    ELSE
        REFRESH MATERIALIZED VIEW public.mv_ml_training_summary;
    END IF;
END;
$$;
COMMENT ON FUNCTION pgml_flow.refresh_training_summary(boolean) IS
    'Refresh mv_ml_training_summary; non_blocking (default) refreshes CONCURRENTLY, never blocking readers';
