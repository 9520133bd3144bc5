-- Queries of tenant isolation (pgml_flow.isolation): BI logins and the audit.
-- Templates with {placeholders} are composed with psycopg.sql.

-- name: client_exists
SELECT 1 FROM clients WHERE client_id = %(client_id)s;

-- name: default_bi_role
SELECT pgml_flow.default_bi_role(%(client_id)s);

-- name: role_facts
SELECT rolsuper OR rolbypassrls OR pg_has_role(oid, 'pgml_flow_ml', 'MEMBER') AS privileged
  FROM pg_roles WHERE rolname = %(role)s;

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

-- name: bi_relations
-- What BI logins may read: relations of analytics and public granted to pgml_flow_bi.
SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('analytics', 'public') AND c.relkind IN ('r', 'p', 'v', 'm')
   AND has_table_privilege('pgml_flow_bi', c.oid, 'SELECT')
 ORDER BY n.nspname = 'public', 1, 2;

-- name: bi_functions
-- Set-returning functions of analytics that BI logins may call, with the number of
-- arguments they must pass.
SELECT p.proname AS name, p.pronargs - p.pronargdefaults AS required_args,
       coalesce(p.proargnames[1], '') AS first_arg
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'analytics' AND p.proretset
   AND has_function_privilege('pgml_flow_bi', p.oid, 'EXECUTE')
 ORDER BY 1;

-- name: registered_models
SELECT model_name FROM ml_model_registry ORDER BY 1;

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
       has_schema_privilege(%(role)s, 'pgml_flow_training', 'USAGE') AS training_usage,
       pg_has_role(%(role)s, 'pgml_flow_ml', 'MEMBER') AS ml_member,
       (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %(role)s) AS bypass;

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
