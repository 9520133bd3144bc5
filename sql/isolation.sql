-- Queries of tenant isolation (pgml_flow.isolation): BI logins and the audit.
-- Templates with {placeholders} are composed with psycopg.sql.

-- name: client_exists
SELECT 1 FROM clients WHERE client_id = %(client_id)s;

-- name: default_bi_role
SELECT pgml_flow.default_bi_role(%(client_id)s);

-- name: role_exists
SELECT 1 FROM pg_roles WHERE rolname = %(role)s;

-- name: role_reach
-- Why a role would see more than one client: for the role and every role it can reach
-- (memberships, direct or through other roles, inherited or not: SET ROLE reaches them
-- all), each attribute that defeats row-level security or lets it grant itself one.
WITH RECURSIVE reach(oid, path) AS (
    SELECT oid, ARRAY[rolname::text] FROM pg_roles WHERE rolname = %(role)s
    UNION ALL
    SELECT m.roleid, r.path || g.rolname::text
      FROM pg_auth_members m
      JOIN reach r ON m.member = r.oid
      JOIN pg_roles g ON g.oid = m.roleid
     WHERE NOT g.rolname = ANY (r.path)
)
SELECT array_to_string(r.path, ' -> ') AS via, v.reason
  FROM reach r
  JOIN pg_roles g ON g.oid = r.oid
 CROSS JOIN LATERAL (VALUES
        (CASE WHEN g.rolsuper THEN 'is a superuser' END),
        (CASE WHEN g.rolbypassrls THEN 'has BYPASSRLS' END),
        (CASE WHEN g.rolcreaterole THEN 'has CREATEROLE (it may grant itself pgml_flow_ml)' END),
        (CASE WHEN g.rolreplication THEN 'has REPLICATION (it may copy the whole cluster)' END),
        (CASE WHEN g.rolname = 'pgml_flow_ml' THEN 'is pgml_flow_ml (reads every client)' END),
        (CASE WHEN g.rolname LIKE 'pg\_%%' THEN 'is the predefined role ' || g.rolname END),
        (CASE WHEN EXISTS (
                   SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relowner = g.oid
                      AND n.nspname IN ('public', 'pgml', 'pgml_flow', 'pgml_flow_training',
                                        'analytics'))
              THEN 'owns relations of pgml-flow (owners are not subject to RLS)' END),
        (CASE WHEN EXISTS (SELECT 1 FROM pg_database d
                            WHERE d.datdba = g.oid AND d.datname = current_database())
              THEN 'owns the database' END)
       ) AS v(reason)
 WHERE v.reason IS NOT NULL
 ORDER BY array_length(r.path, 1), 1, 2;

-- name: create_login
CREATE ROLE {role} LOGIN IN ROLE pgml_flow_bi;

-- name: grant_bi_group
GRANT pgml_flow_bi TO {role};

-- name: set_password
ALTER ROLE {role} PASSWORD {password};

-- name: grant_connect
GRANT CONNECT ON DATABASE {database} TO {role};

-- name: map_role
INSERT INTO client_bi_roles (client_id, role_name) VALUES (%(client_id)s, %(role)s)
ON CONFLICT DO NOTHING;

-- name: role_client
SELECT client_id FROM client_bi_roles WHERE role_name = %(role)s;

-- name: bi_roles
SELECT r.client_id, c.name AS client, r.role_name, r.created_at,
       EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = r.role_name) AS role_exists
  FROM client_bi_roles r JOIN clients c USING (client_id)
 WHERE %(client_id)s::bigint IS NULL OR r.client_id = %(client_id)s
 ORDER BY r.client_id, r.role_name;

-- name: server_address
-- Where the server listens for TCP (pgml-flow bi url): its port, listen_addresses, and
-- whether it offers SSL.
SELECT current_database() AS database, current_setting('port')::integer AS port,
       current_setting('listen_addresses') AS listen_addresses,
       current_setting('ssl') = 'on' AS ssl;

-- name: role_password_set
-- Only a superuser may read pg_authid.
SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %(role)s;

-- name: unmap_role
DELETE FROM client_bi_roles WHERE role_name = %(role)s;

-- name: drop_owned
DROP OWNED BY {role};

-- name: drop_role
DROP ROLE IF EXISTS {role};

-- name: is_superuser
SELECT rolsuper FROM pg_roles WHERE rolname = current_user;

-- name: tenant_tables
-- Every table and view of the public schema with a client_id column: is RLS enabled,
-- and does a policy apply to BI logins?
SELECT c.relname AS name, c.relkind::text AS kind, c.relrowsecurity AS rls,
       EXISTS (SELECT 1 FROM pg_policy p
                WHERE p.polrelid = c.oid AND 'pgml_flow_bi'::regrole = ANY (p.polroles))
           AS bi_policy
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
   AND EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'client_id' AND NOT a.attisdropped)
 ORDER BY 1;

-- name: reachable_relations
-- Every relation outside the system catalogs that a role may read: through PUBLIC, a group
-- (pgml_flow_bi or any other) or a grant straight to the role, in a schema it may use.
-- bi_surface: part of what BI logins are meant to read (the analytics schema and the
-- tenant tables of public). Sequences count: their last_value tells how many rows all
-- clients together have written (a sequence has no client_id, so it is UNSCOPED).
SELECT n.nspname AS schema, c.relname AS name,
       EXISTS (SELECT 1 FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'client_id' AND NOT a.attisdropped)
           AS has_client_id,
       n.nspname = 'analytics'
           OR (n.nspname = 'public' AND c.relname IN ('clients', 'issuetypes', 'repositories',
               'issues', 'pull_requests', 'ml_prediction_log', 'ml_retraining_events'))
           AS bi_surface
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp)'
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
   AND (has_table_privilege(%(role)s, c.oid, 'SELECT')
        OR has_any_column_privilege(%(role)s, c.oid, 'SELECT'))
 ORDER BY NOT (n.nspname = 'analytics'), n.nspname, c.relname;

-- name: reachable_functions
-- Every function outside the system catalogs that a role may execute.
SELECT n.nspname || '.' || p.proname || '(' || coalesce(
           (SELECT string_agg(format_type(a.t, NULL), ', ' ORDER BY a.i)
              FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)), '') || ')'
           AS signature, n.nspname AS schema, p.proname AS name,
       p.prosecdef AS definer, l.lanname AS language, l.lanpltrusted AS trusted,
       p.proretset AS set_returning, p.pronargs - p.pronargdefaults AS required_args,
       coalesce(p.proargnames[1], '') AS first_arg,
       (SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) AS c
         WHERE c LIKE 'search\_path=%%') AS search_path
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
   AND has_function_privilege(%(role)s, p.oid, 'EXECUTE')
 ORDER BY 2, 1;

-- name: writable_objects
-- What a role could change: a table it may write, a schema it may create objects in.
SELECT n.nspname || '.' || c.relname AS object, 'write' AS privilege
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname !~ '^pg_(toast|temp)'
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
   AND has_table_privilege(%(role)s, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
UNION ALL
-- nextval/setval on a sequence (USAGE or UPDATE): a write, and a counter of every client's rows
SELECT n.nspname || '.' || c.relname, 'sequence'
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'S'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
   AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(%(role)s, c.oid, 'USAGE, UPDATE')
       END
UNION ALL
SELECT 'schema ' || n.nspname, 'create'
  FROM pg_namespace n
 WHERE n.nspname !~ '^pg_(toast|temp)' AND has_schema_privilege(%(role)s, n.oid, 'CREATE')
 ORDER BY 1;

-- name: pgml_settings
-- The settings of pgml and pgml-flow PostgreSQL knows (placeholders are not listed).
SELECT name, context FROM pg_settings
 WHERE name LIKE 'pgml.%%' OR name LIKE 'pgml\_flow.%%'
 ORDER BY 1;

-- name: try_setting
SELECT set_config(%(name)s, %(value)s, true);

-- name: registered_models
-- The models analytics.predictions serves (it refuses the others with an error).
SELECT model_name FROM ml_model_registry WHERE feature_view IS NOT NULL ORDER BY 1;

-- name: internal_relations
-- What BI logins must never read: the pgml internals, the training views, the feature
-- views, the materialized summary and pgml-flow's bookkeeping.
SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm')
   AND (n.nspname IN ('pgml', 'pgml_flow', 'pgml_flow_training')
        OR (n.nspname = 'public' AND c.relname IN ('mv_ml_training_summary', 'client_bi_roles',
            'ml_model_baselines', 'ml_model_registry', 'pgml_flow_settings', 'alembic_version')))
 ORDER BY 1, 2;

-- name: role_privileges
SELECT has_schema_privilege(%(role)s, 'pgml', 'USAGE') AS pgml_usage,
       has_schema_privilege(%(role)s, 'pgml_flow_training', 'USAGE') AS training_usage;

-- name: caller_client
-- The client a session resolves to (what RLS and the analytics functions use).
SELECT pgml_flow.current_client_id();

-- name: set_admin_client
SELECT set_config('pgml_flow.client_id', %(client_id)s, false);

-- name: count_for_client
SELECT count(*) FROM {relation} WHERE client_id = %(client_id)s;

-- name: count_by_client
SELECT client_id, count(*) FROM {relation} GROUP BY client_id;

-- name: probe
SELECT 1 FROM {relation} LIMIT 1;

-- name: set_session_authorization
SET SESSION AUTHORIZATION {role};

-- name: reset_session_authorization
RESET SESSION AUTHORIZATION;
