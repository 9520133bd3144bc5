-- Queries of pgml_flow.citus_tenants: where a client's rows live on a Citus cluster.

-- name: has_citus
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus');

-- name: active_workers
-- Run only where the citus extension exists (its functions do not exist elsewhere).
SELECT count(*) FROM pg_catalog.citus_get_active_worker_nodes();

-- name: client_nodes
-- The node holding each client's shard of public.issues (every per-client table is
-- co-located with it; clients itself is a reference table): its nodename (a host or a unix
-- socket directory) and port.
SELECT c.client_id, n.nodename, n.nodeport
  FROM unnest(%(client_ids)s::bigint[]) AS c(client_id)
  JOIN pg_dist_placement p
    ON p.shardid = get_shard_id_for_distribution_column('public.issues', c.client_id)
  JOIN pg_dist_node n ON n.groupid = p.groupid AND n.noderole = 'primary' AND n.isactive
 ORDER BY c.client_id;

-- name: worker_nodes
SELECT n.nodename, n.nodeport FROM pg_dist_node n
 WHERE n.noderole = 'primary' AND n.isactive AND n.groupid <> 0
 ORDER BY n.nodeid;

-- name: sync_nodes
-- What a new worker lacks (sql/idempotent/950_citus_nodes.sql).
SELECT pgml_flow.citus_sync_nodes();

-- name: rebalance_start
-- Start moving shards so that every worker holds about as many (a background job;
-- NULL when nothing needs to move). block_writes: a move copies the shard, then blocks
-- writes to it for the final catch-up only; reads never wait.
SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes');

-- name: rebalance_wait
SELECT citus_rebalance_wait();

-- name: shard_moves
-- Shard placements per node of the co-location group of public.issues.
SELECT n.nodename, n.nodeport, count(*) AS shards
  FROM pg_dist_shard s
  JOIN pg_dist_placement p USING (shardid)
  JOIN pg_dist_node n ON n.groupid = p.groupid
 WHERE s.logicalrelid = 'public.issues'::regclass
 GROUP BY n.nodename, n.nodeport
 ORDER BY n.nodeport;

-- name: all_nodes
-- Every active primary node, the coordinator first, with a name for reports.
SELECT CASE WHEN n.groupid = 0 THEN 'coordinator' ELSE 'worker ' || n.groupid END AS label,
       n.nodename, n.nodeport
  FROM pg_dist_node n
 WHERE n.noderole = 'primary' AND n.isactive
 ORDER BY n.groupid;

-- name: login_relations
-- What a login may read that has a client_id column, outside the system schemas:
-- kind 'v' (views: each read names the client, so Citus routes it) or a table.
SELECT n.nspname, c.relname, c.relkind = 'v' AS is_view
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'citus', 'citus_internal')
   AND n.nspname NOT LIKE 'pg\_%%'
   AND NOT c.relispartition
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = 'client_id' AND NOT a.attisdropped)
   AND has_table_privilege(%(role)s, c.oid, 'SELECT')
 ORDER BY 1, 2;

-- name: internal_relations
SELECT n.nspname, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('pgml', 'pgml_flow_training') AND c.relkind IN ('r', 'v')
   AND NOT c.relispartition
 ORDER BY 1, 2;

-- name: exists_here
-- Whether a relation exists on this node (the training summary and its view are the
-- coordinator's only).
SELECT to_regclass(quote_ident(%(schema)s::text) || '.' || quote_ident(%(name)s::text)) IS NOT NULL;

-- name: propagate_set_local
SET LOCAL citus.propagate_set_commands = 'local';

-- name: login_client_id
SELECT pgml_flow.current_client_id();

-- name: try_other_client
SELECT set_config('pgml_flow.client_id', %(client_id)s, false);
