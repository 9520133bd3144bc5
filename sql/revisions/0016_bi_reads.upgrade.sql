-- Revision 0016_bi_reads: what reading the predictions of a client's open issues needs.
--
-- Every BI read of a feature view over issues (complexity_features: analytics.predictions,
-- analytics.issue_story_points) selects one client's open issues: the view's is_open is
-- `i.active AND coalesce(t.hierarchy_level, 0) = 0 AND i.status_category <> 'done'`
-- (100_features.sql), whose part on issues alone is this index's predicate, word for word,
-- so that the planner can prove the index applies. Without it a large client's read was a
-- sequential scan of every client's issues, each row taken apart up to `active`, past the
-- wide title and description; with it the read visits that client's open rows only, and
-- the quals the predicate implies are not evaluated again on the heap row (with four
-- issues in five done: 9.7 -> 4.2 us of CPU per open row of the view). (The other
-- views' open rows do not use it: trajectory_features and rework_features compute window
-- functions over all of a client's rows, so their is_open is applied above them.)
-- The key is client_id alone, not (client_id, issue_id): the planner prices an index scan
-- by the heap order of the index's rows, and discounts that of a multi-column index by a
-- quarter, so on a table loaded client by client it took the wider index for a sequential
-- scan still at a fifth of the rows (EXPLAIN ANALYZE of the largest Deep-SE client's 4,667
-- of 23,313: seq scan 24 ms; this index 3.7 ms; docs/benchmarks.md). Equal keys are kept in
-- heap order, so a scan of it reads the client's pages in order, and deduplicated it is a
-- quarter of the size. The read sorts by entity_id itself (each ordered aggregate sorts).
-- A plain index: on Citus each shard gets its own.
-- Built CONCURRENTLY (outside a transaction) so that upgrading a live database never blocks
-- writers; an INVALID leftover of an interrupted build is dropped first by the migration.
-- Its cost: an update of active or status_category is no longer HOT (the predicate reads them).
CREATE INDEX CONCURRENTLY IF NOT EXISTS issues_open_idx
    ON issues (client_id)
    WHERE active AND status_category <> 'done';
