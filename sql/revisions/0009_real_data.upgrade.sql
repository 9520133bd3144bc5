-- Real data (docs/import.md): what `pgml-flow import` brings in from Jira, GitHub, CSV
-- files and the public research datasets, and the checks relaxed so that it fits.
-- Run outside a transaction, one statement at a time (the unique index on repository
-- names is built CONCURRENTLY); every statement is idempotent, so a retry after an
-- interruption is harmless. None of them rewrites a table: new columns have constant
-- defaults, and dropping NOT NULL only changes the catalog.
--
-- The rule for imported rows: NULL means "the source does not say". Columns that used to
-- be NOT NULL forced an importer to invent a status, a priority, a date or a count; they
-- are nullable now, and pgml-flow's own generator (pgml-flow seed) still fills them all.

-- Issues: labels, the resolution and its date, the parent (epic or story of a sub-task)
-- by key, the dataset split, and what else the source had.
ALTER TABLE issues
    ADD COLUMN IF NOT EXISTS labels text[] DEFAULT '{}',
    ADD COLUMN IF NOT EXISTS resolution text,
    ADD COLUMN IF NOT EXISTS resolved_at timestamptz,
    ADD COLUMN IF NOT EXISTS parent_key text,
    ADD COLUMN IF NOT EXISTS dataset_split text
        CONSTRAINT issues_dataset_split_check
        CHECK (dataset_split IN ('train', 'valid', 'test')),
    ADD COLUMN IF NOT EXISTS attributes jsonb NOT NULL DEFAULT '{}';
ALTER TABLE issues
    ALTER COLUMN issuetype_id DROP NOT NULL,
    ALTER COLUMN created DROP NOT NULL,
    ALTER COLUMN updated DROP NOT NULL,
    ALTER COLUMN status DROP NOT NULL,
    ALTER COLUMN status_category DROP NOT NULL,
    ALTER COLUMN priority DROP NOT NULL,
    ALTER COLUMN components DROP NOT NULL,
    ALTER COLUMN title DROP NOT NULL,
    ALTER COLUMN description DROP NOT NULL;
COMMENT ON COLUMN issues.issuetype_id IS 'NULL: the source has no issue type';
COMMENT ON COLUMN issues.created IS 'NULL: the source has no creation time';
COMMENT ON COLUMN issues.status_category IS
    'todo, in_progress or done (Jira status category), NULL: the source has no status';
COMMENT ON COLUMN issues.components IS 'NULL: the source has no component data';
COMMENT ON COLUMN issues.labels IS 'NULL: the source has no label data';
COMMENT ON COLUMN issues.description IS 'NULL: the source has no description (empty is '''')';
COMMENT ON COLUMN issues.resolution IS 'Jira resolution (Fixed, Won''t Fix...), NULL: unresolved or not known';
COMMENT ON COLUMN issues.resolved_at IS 'When the issue was resolved (Jira resolutiondate)';
COMMENT ON COLUMN issues.parent_key IS
    'Key of the parent (epic link or parent) as the source names it, kept when the parent is not imported';
COMMENT ON COLUMN issues.dataset_split IS
    'train, valid or test: the split a public dataset ships with, NULL: none';
COMMENT ON COLUMN issues.attributes IS
    'Fields of the source that have no column, by their name in the source';

-- Pull requests: the issue key they name, the commits already there when they were
-- opened (the rest came during review), the dataset split, and what else the source had.
ALTER TABLE pull_requests
    ADD COLUMN IF NOT EXISTS issue_key text,
    ADD COLUMN IF NOT EXISTS commits_at_open integer,
    ADD COLUMN IF NOT EXISTS dataset_split text
        CONSTRAINT pull_requests_dataset_split_check
        CHECK (dataset_split IN ('train', 'valid', 'test')),
    ADD COLUMN IF NOT EXISTS attributes jsonb NOT NULL DEFAULT '{}';
ALTER TABLE pull_requests
    ALTER COLUMN title DROP NOT NULL,
    ALTER COLUMN author_id DROP NOT NULL,
    ALTER COLUMN review_cycles DROP NOT NULL,
    ALTER COLUMN rework_commit_count DROP NOT NULL,
    ALTER COLUMN additions DROP NOT NULL,
    ALTER COLUMN deletions DROP NOT NULL,
    ALTER COLUMN changed_files DROP NOT NULL,
    ALTER COLUMN commits DROP NOT NULL,
    ALTER COLUMN comments DROP NOT NULL,
    ALTER COLUMN review_comments DROP NOT NULL,
    ALTER COLUMN reviewers DROP NOT NULL,
    ALTER COLUMN has_tests DROP NOT NULL;
COMMENT ON COLUMN pull_requests.author_id IS
    'Pseudonym of the author (keyed hash of the login), NULL: not known';
COMMENT ON COLUMN pull_requests.issue_key IS
    'Key of the issue the pull request names, kept when that issue is not imported';
COMMENT ON COLUMN pull_requests.commits_at_open IS
    'Commits in the pull request when it was opened, NULL: not known';
COMMENT ON COLUMN pull_requests.rework_commit_count IS
    'Commits pushed after the pull request was opened, NULL: not known';
COMMENT ON COLUMN pull_requests.dataset_split IS
    'train, valid or test: the split a public dataset ships with, NULL: none';
COMMENT ON COLUMN pull_requests.attributes IS
    'Fields of the source that have no column, by their name in the source';

-- Repositories: known by name (the natural key of an import), dates and branch optional.
-- Two repositories of one client with the same name stop the upgrade here, named: rename
-- one and upgrade again (the statements before are idempotent, the invalid index dropped).
ALTER TABLE repositories
    ALTER COLUMN created_at DROP NOT NULL,
    ALTER COLUMN default_branch DROP NOT NULL;
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS repositories_name_key
    ON repositories (client_id, name);

-- The key of the pseudonyms: logins (GitHub, Jira) are never stored, only a keyed hash of
-- them, so that one person's pull requests can be told apart without naming them. One
-- random key per database, made by the first import. No role but the owner reads it.
CREATE TABLE IF NOT EXISTS pgml_flow_secrets (
    name       text        NOT NULL,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pgml_flow_secrets_pkey PRIMARY KEY (name)
);
REVOKE ALL ON pgml_flow_secrets FROM PUBLIC;
COMMENT ON TABLE pgml_flow_secrets IS
    'Keys pgml-flow made for this database (the pseudonym key of imports), owner only';
