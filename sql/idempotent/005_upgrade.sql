-- How the files of sql/idempotent change their own objects at an upgrade. CREATE OR
-- REPLACE cannot change a view's columns (their names, order or types) nor a function's
-- result; such a change needs the object dropped and created again. These helpers drop an
-- object only when its shape changed, and never with CASCADE: an object that is not
-- pgml-flow's (a view of yours on an analytics view, say) stops the upgrade with an error
-- that names it, and the upgrade (one transaction: pgml_flow.migrate.apply_idempotent)
-- changes nothing. Grants and comments come back with the files that follow (900_grants.sql
-- grants on ALL views and functions of a schema; each view's comments follow its creation).

-- Run one DROP statement of an upgrade; an object of someone else's that depends on what
-- it drops makes a clear error (SQLSTATE 2BP01, the dependents in DETAIL).
CREATE OR REPLACE FUNCTION pgml_flow.drop_for_upgrade(statement text, what text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dependents text;
BEGIN
    EXECUTE statement;
EXCEPTION WHEN dependent_objects_still_exist THEN
    GET STACKED DIAGNOSTICS dependents = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION 'cannot upgrade %: this pgml-flow changes its columns, which PostgreSQL '
                    'can only do by dropping and creating it again, and objects that are not '
                    'pgml-flow''s depend on it', what
        USING ERRCODE = 'dependent_objects_still_exist', DETAIL = dependents,
              HINT = 'Keep their definitions (pg_get_viewdef), drop them, run the upgrade '
                     'again, then create them again on the new columns. Nothing was changed.';
END;
$$;
COMMENT ON FUNCTION pgml_flow.drop_for_upgrade(text, text) IS
    'Run a DROP of an upgrade; objects of others that depend on it make a clear error (no CASCADE)';

-- CREATE OR REPLACE VIEW name definition; when the view's columns changed (SQLSTATE 42P16),
-- drop it (pgml_flow.drop_for_upgrade) and create it. definition: what follows the name
-- ("WITH (...) AS SELECT ...").
CREATE OR REPLACE FUNCTION pgml_flow.replace_view(name text, definition text)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    BEGIN
        EXECUTE format('CREATE OR REPLACE VIEW %s %s', name, definition);
        RETURN;
    EXCEPTION WHEN invalid_table_definition THEN
        -- cannot change name / data type of view column, cannot drop columns from view
    END;
    PERFORM pgml_flow.drop_for_upgrade(format('DROP VIEW %s', name), 'view ' || name);
    EXECUTE format('CREATE VIEW %s %s', name, definition);
END;
$$;
COMMENT ON FUNCTION pgml_flow.replace_view(text, text) IS
    'CREATE OR REPLACE VIEW, or DROP VIEW (never CASCADE) and CREATE VIEW when its columns changed';

-- Before CREATE OR REPLACE FUNCTION of a function whose signature or result changed: drop
-- the function `signature` if it exists and its result (pg_get_function_result) is not
-- `unless_result` (NULL: whatever its result, for a signature that is gone), and the
-- analytics views built on it first (pgml-flow's own: the files that follow create them
-- again).
CREATE OR REPLACE FUNCTION pgml_flow.drop_function_for_upgrade(signature text,
                                                              unless_result text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f regprocedure := to_regprocedure(signature);
    v regclass;
BEGIN
    IF f IS NULL OR pg_get_function_result(f) = unless_result THEN
        RETURN;
    END IF;
    FOR v IN SELECT DISTINCT r.ev_class::regclass
               FROM pg_depend d
               JOIN pg_rewrite r ON r.oid = d.objid
               JOIN pg_class c ON c.oid = r.ev_class
              WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_proc'::regclass
                AND d.refobjid = f AND c.relnamespace = 'analytics'::regnamespace
                AND c.relkind = 'v'
    LOOP
        PERFORM pgml_flow.drop_for_upgrade(format('DROP VIEW %s', v), 'view ' || v::text);
    END LOOP;
    PERFORM pgml_flow.drop_for_upgrade(format('DROP FUNCTION %s', f), 'function ' || f::text);
END;
$$;
COMMENT ON FUNCTION pgml_flow.drop_function_for_upgrade(text, text) IS
    'Drop a function whose signature or result changed, and the analytics views on it (no CASCADE)';

-- Create a function in C where the native scorer is installed, in SQL everywhere else:
-- `signature` (e.g. 'pgml_flow.word_count(t text)') returning `result`, with
-- `attributes` (volatility, strictness, parallel safety: the same for both), as the
-- symbol `symbol` of pgml_native when the extension is present and pgml.native_scoring is
-- not off (as in sql/pgml/030_serving.sql), else as the SQL `body`, which the planner
-- inlines. A pgml_native built before `symbol` gets the SQL and a notice naming `what`
-- the C would do. CREATE OR REPLACE keeps the function (and the views on it) when its
-- language changes. Our own files call it with constant texts: it is not granted to
-- anyone (900_grants.sql revokes PUBLIC's EXECUTE on the schema's functions).
-- Returns the language chosen.
CREATE OR REPLACE FUNCTION pgml_flow.define_native_or_sql(signature text, result text,
                                                          attributes text, symbol text,
                                                          body text, what text)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    native_on boolean := coalesce(current_setting('pgml.native_scoring', true), 'on') <> 'off';
BEGIN
    IF native_on AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgml_native') THEN
        BEGIN
            EXECUTE format('CREATE OR REPLACE FUNCTION %s RETURNS %s AS %L, %L LANGUAGE C %s',
                           signature, result, '$libdir/pgml_native', symbol, attributes);
            RETURN 'c';
        EXCEPTION WHEN undefined_function THEN
            RAISE NOTICE 'pgml_native has no %; rebuild it (./dev setup) to % in C',
                         symbol, what;
        END;
    END IF;
    EXECUTE format('CREATE OR REPLACE FUNCTION %s RETURNS %s LANGUAGE sql %s AS %L',
                   signature, result, attributes, body);
    RETURN 'sql';
END;
$$;
COMMENT ON FUNCTION pgml_flow.define_native_or_sql(text, text, text, text, text, text) IS
    'Create a function from pgml_native''s C symbol where it is installed, else from SQL';
