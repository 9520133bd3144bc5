-- Revision 0016_bi_reads, undone: open issues are read through the primary key or a
-- sequential scan again.
DROP INDEX CONCURRENTLY IF EXISTS issues_open_idx;
