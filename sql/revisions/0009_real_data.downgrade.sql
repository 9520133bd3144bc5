-- Undo revision 0009, in the downgrade's one transaction (plain DROP INDEX). Rows that
-- have no value where revision 0008 requires one (imported rows) stop it, named, before
-- anything is dropped: pgml-flow invents no status, date or count to make them fit.
DO $$
DECLARE
    required CONSTANT text[][] := ARRAY[
        ['issues', 'issuetype_id'], ['issues', 'created'], ['issues', 'updated'],
        ['issues', 'status'], ['issues', 'status_category'], ['issues', 'priority'],
        ['issues', 'components'], ['issues', 'title'], ['issues', 'description'],
        ['pull_requests', 'title'], ['pull_requests', 'author_id'],
        ['pull_requests', 'review_cycles'], ['pull_requests', 'rework_commit_count'],
        ['pull_requests', 'additions'], ['pull_requests', 'deletions'],
        ['pull_requests', 'changed_files'], ['pull_requests', 'commits'],
        ['pull_requests', 'comments'], ['pull_requests', 'review_comments'],
        ['pull_requests', 'reviewers'], ['pull_requests', 'has_tests'],
        ['repositories', 'created_at'], ['repositories', 'default_branch']];
    found text[] := '{}';
    n bigint;
BEGIN
    FOR i IN 1 .. array_length(required, 1) LOOP
        -- (no format(): a percent sign would be taken for a driver placeholder)
        EXECUTE 'SELECT count(*) FROM public.' || quote_ident(required[i][1])
                || ' WHERE ' || quote_ident(required[i][2]) || ' IS NULL' INTO n;
        IF n > 0 THEN
            found := found || (required[i][1] || '.' || required[i][2] || ' (' || n || ' rows)');
        END IF;
    END LOOP;
    IF cardinality(found) > 0 THEN
        RAISE EXCEPTION USING
            MESSAGE = 'revision 0009_real_data cannot be undone: rows have no value where '
                      'the older schema requires one: ' || array_to_string(found, ', '),
            HINT = 'these are imported rows (pgml-flow import, docs/import.md): delete '
                         'them, or fill those columns, then downgrade again';
    END IF;
END;
$$;

DROP TABLE pgml_flow_secrets;
DROP INDEX repositories_name_key;
ALTER TABLE repositories
    ALTER COLUMN created_at SET NOT NULL,
    ALTER COLUMN default_branch SET NOT NULL;
ALTER TABLE pull_requests
    ALTER COLUMN title SET NOT NULL,
    ALTER COLUMN author_id SET NOT NULL,
    ALTER COLUMN review_cycles SET NOT NULL,
    ALTER COLUMN rework_commit_count SET NOT NULL,
    ALTER COLUMN additions SET NOT NULL,
    ALTER COLUMN deletions SET NOT NULL,
    ALTER COLUMN changed_files SET NOT NULL,
    ALTER COLUMN commits SET NOT NULL,
    ALTER COLUMN comments SET NOT NULL,
    ALTER COLUMN review_comments SET NOT NULL,
    ALTER COLUMN reviewers SET NOT NULL,
    ALTER COLUMN has_tests SET NOT NULL,
    DROP COLUMN attributes,
    DROP COLUMN dataset_split,
    DROP COLUMN commits_at_open,
    DROP COLUMN issue_key;
COMMENT ON COLUMN pull_requests.rework_commit_count IS NULL;
COMMENT ON COLUMN pull_requests.author_id IS NULL;
ALTER TABLE issues
    ALTER COLUMN issuetype_id SET NOT NULL,
    ALTER COLUMN created SET NOT NULL,
    ALTER COLUMN updated SET NOT NULL,
    ALTER COLUMN status SET NOT NULL,
    ALTER COLUMN status_category SET NOT NULL,
    ALTER COLUMN priority SET NOT NULL,
    ALTER COLUMN components SET NOT NULL,
    ALTER COLUMN title SET NOT NULL,
    ALTER COLUMN description SET NOT NULL,
    DROP COLUMN attributes,
    DROP COLUMN dataset_split,
    DROP COLUMN parent_key,
    DROP COLUMN resolved_at,
    DROP COLUMN resolution,
    DROP COLUMN labels;
COMMENT ON COLUMN issues.issuetype_id IS NULL;
COMMENT ON COLUMN issues.created IS NULL;
COMMENT ON COLUMN issues.status_category IS NULL;
COMMENT ON COLUMN issues.components IS NULL;
COMMENT ON COLUMN issues.description IS NULL;
