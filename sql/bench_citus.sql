-- Queries of the Citus benchmark (pgml_flow/benchmarks/citus.py, `pgml-flow bench citus`).
-- {placeholders} are composed with psycopg.sql (identifiers and literals, never formatted in).

-- name: bi_view
-- One BI read of a whole view as the client's login: every row predicted (avg forces the
-- prediction of each row), row-level security keeping it to the login's client. The
-- client_id filter is what docs/scale-out.md asks BI tools to add: it lets Citus route
-- the query to the one node holding the client's rows (on one server it changes nothing).
SELECT count(*), avg({prediction}::float8), count({prediction}) FROM {view}
 WHERE client_id = %(client_id)s;

-- name: explain_bi_view
EXPLAIN SELECT count(*), avg({prediction}::float8) FROM {view} WHERE client_id = {client_id};

-- name: explain_bi_view_unfiltered
-- The same without the filter: the tenant policy alone (not known when Citus plans).
EXPLAIN SELECT count(*), avg({prediction}::float8) FROM {view};

-- name: client_tables
-- Every table of schema public with a client_id, referencing tables first (a table is
-- deleted from before the tables its foreign keys point to; clients last).
WITH RECURSIVE t AS (
    SELECT c.oid, c.relname
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
     WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
       AND a.attname = 'client_id' AND NOT a.attisdropped
), depth AS (
    SELECT t.oid, 0 AS level FROM t
    UNION ALL
    SELECT f.confrelid, d.level + 1
      FROM depth d JOIN pg_constraint f ON f.conrelid = d.oid AND f.contype = 'f'
     WHERE f.confrelid <> d.oid AND d.level < 20
)
SELECT t.relname
  FROM t JOIN depth d USING (oid)
 GROUP BY t.relname
 ORDER BY max(d.level), t.relname;

-- name: delete_client_rows
DELETE FROM {table} WHERE client_id = %(client_id)s;
