-- Queries of `pgml-flow import` (pgml_flow.imports.load), loaded by name. Each file is
-- written in one transaction: its rows are COPYed into a temporary staging table, then
-- upserted on their natural key (issue key; repository name and pull-request number).
-- A new row gets every column (NULL where its record does not say); a row that exists gets
-- the columns its record carries and keeps the others (o: the row as it is), and is not
-- touched at all when the values are the same ({placeholders}: psycopg.sql).

-- name: client_by_slug
SELECT client_id, name, synthetic FROM clients WHERE slug = %(slug)s;

-- name: client_by_id
SELECT client_id, name, synthetic FROM clients WHERE client_id = %(client_id)s;

-- name: lock_clients
-- New clients get the next id: one import at a time picks it.
SELECT pg_advisory_xact_lock(hashtext('pgml_flow.import.clients'));

-- name: lock_client
-- One import at a time writes a client's rows (their ids are max + 1, ...).
SELECT pg_advisory_xact_lock(hashtext('pgml_flow.import'), %(client_id)s::integer);

-- name: insert_client
INSERT INTO clients (client_id, name, slug, synthetic)
SELECT coalesce(max(client_id), 0) + 1, %(name)s, %(slug)s, false FROM clients
RETURNING client_id;

-- name: mark_real
-- A client that receives imported data is no longer synthetic: the next seed must ask.
UPDATE clients SET synthetic = false WHERE client_id = %(client_id)s AND synthetic;

-- name: pseudonym_key
INSERT INTO pgml_flow_secrets (name, value) VALUES ('pseudonym_key', %(value)s)
ON CONFLICT (name) DO NOTHING;

-- name: read_pseudonym_key
SELECT value FROM pgml_flow_secrets WHERE name = 'pseudonym_key';

-- name: stage_issues
CREATE TEMPORARY TABLE import_issues (
    ord                     integer NOT NULL,
    client_id               bigint  NOT NULL,
    issue_key               text    NOT NULL,
    issuetype               text,
    hierarchy_level         integer,
    parent_key              text,
    story_points            numeric,
    created                 timestamptz,
    updated                 timestamptz,
    resolved_at             timestamptz,
    work_first_started_at   timestamptz,
    work_last_completed_at  timestamptz,
    total_lead_time_seconds bigint,
    status                  text,
    status_category         text,
    resolution              text,
    priority                text,
    components              text[],
    labels                  text[],
    assignee_id             bigint,
    title                   text,
    description             text,
    dataset_split           text,
    attributes              jsonb,
    -- the fields this row carries, when the rows of the file do not all carry the same
    carried                 text[]
) ON COMMIT DROP;

-- name: insert_issuetypes
-- Issue types the file names that the client does not have yet, numbered after its last.
INSERT INTO issuetypes (client_id, issuetype_id, original_name, hierarchy_level)
SELECT n.client_id,
       coalesce((SELECT max(t.issuetype_id) FROM issuetypes t WHERE t.client_id = n.client_id),
                0) + row_number() OVER (PARTITION BY n.client_id ORDER BY n.ord),
       n.issuetype, coalesce(n.hierarchy_level, 0)
  FROM (SELECT DISTINCT ON (s.client_id, s.issuetype) s.client_id, s.issuetype,
               s.hierarchy_level, s.ord
          FROM import_issues s
         WHERE s.issuetype IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM issuetypes t
                            WHERE t.client_id = s.client_id AND t.original_name = s.issuetype)
         ORDER BY s.client_id, s.issuetype, s.ord) n;

-- name: upsert_issues
-- New issues are numbered after the client's last issue_id, in file order.
WITH base AS MATERIALIZED (
    SELECT c.client_id,
           coalesce((SELECT max(i.issue_id) FROM issues i WHERE i.client_id = c.client_id), 0)
               AS last_id
      FROM (SELECT DISTINCT client_id FROM import_issues) c
), staged AS (
    SELECT s.*, old.issue_id AS old_id,
           row_number() OVER (PARTITION BY s.client_id, old.issue_id IS NULL ORDER BY s.ord)
               AS rn
      FROM import_issues s
      LEFT JOIN issues old ON old.client_id = s.client_id AND old.issue_key = s.issue_key
)
INSERT INTO issues AS t (client_id, issue_id, issue_key, {columns})
SELECT s.client_id, coalesce(s.old_id, b.last_id + s.rn), s.issue_key, {values}
  FROM staged s
  JOIN base b ON b.client_id = s.client_id
  LEFT JOIN issuetypes it ON it.client_id = s.client_id AND it.original_name = s.issuetype
  LEFT JOIN issues p ON p.client_id = s.client_id AND p.issue_key = s.parent_key
  LEFT JOIN issues o ON o.client_id = s.client_id AND o.issue_id = s.old_id
ON CONFLICT (client_id, issue_key) DO UPDATE
   SET ({set_columns}) = ROW({updated})
 WHERE ({current}) IS DISTINCT FROM ({updated})
RETURNING (xmax = 0) AS inserted;

-- name: link_parents
-- Parents named by key and imported since (or in the same file): link them.
UPDATE issues c
   SET parent_issue_id = p.issue_id
  FROM issues p
 WHERE c.client_id = ANY(%(client_ids)s) AND c.parent_key IS NOT NULL
   AND p.client_id = c.client_id AND p.issue_key = c.parent_key
   AND c.parent_issue_id IS DISTINCT FROM p.issue_id;

-- name: link_pull_requests
-- Pull requests that name an issue key of their client: link them to the issue.
UPDATE pull_requests pr
   SET issue_id = i.issue_id
  FROM issues i
 WHERE pr.client_id = ANY(%(client_ids)s) AND pr.issue_key IS NOT NULL
   AND i.client_id = pr.client_id AND i.issue_key = pr.issue_key
   AND pr.issue_id IS DISTINCT FROM i.issue_id;

-- name: stage_pull_requests
CREATE TEMPORARY TABLE import_pull_requests (
    ord                   integer NOT NULL,
    client_id             bigint  NOT NULL,
    repository            text    NOT NULL,
    default_branch        text,
    repository_created_at timestamptz,
    number                integer NOT NULL,
    title                 text,
    author_id             bigint,
    created_at            timestamptz NOT NULL,
    first_review_at       timestamptz,
    merged_at             timestamptz,
    closed_at             timestamptz,
    state                 text    NOT NULL,
    issue_key             text,
    additions             integer,
    deletions             integer,
    changed_files         integer,
    commits               integer,
    commits_at_open       integer,
    rework_commit_count   integer,
    comments              integer,
    review_comments       integer,
    reviewers             integer,
    review_cycles         integer,
    has_tests             boolean,
    dataset_split         text,
    attributes            jsonb,
    carried               text[]
) ON COMMIT DROP;

-- name: insert_repositories
INSERT INTO repositories (client_id, repository_id, name, default_branch, created_at)
SELECT n.client_id,
       coalesce((SELECT max(r.repository_id) FROM repositories r
                  WHERE r.client_id = n.client_id), 0)
           + row_number() OVER (PARTITION BY n.client_id ORDER BY n.ord),
       n.repository, n.default_branch, n.repository_created_at
  FROM (SELECT DISTINCT ON (s.client_id, s.repository) s.client_id, s.repository,
               s.default_branch, s.repository_created_at, s.ord
          FROM import_pull_requests s
         WHERE NOT EXISTS (SELECT 1 FROM repositories r
                            WHERE r.client_id = s.client_id AND r.name = s.repository)
         ORDER BY s.client_id, s.repository, s.ord) n;

-- name: update_repositories
-- The branch and creation date of known repositories, where the file has them.
UPDATE repositories r
   SET default_branch = coalesce(n.default_branch, r.default_branch),
       created_at = coalesce(n.repository_created_at, r.created_at)
  FROM (SELECT DISTINCT ON (client_id, repository) client_id, repository, default_branch,
               repository_created_at
          FROM import_pull_requests
         ORDER BY client_id, repository, ord DESC) n
 WHERE r.client_id = n.client_id AND r.name = n.repository
   AND (coalesce(n.default_branch, r.default_branch),
        coalesce(n.repository_created_at, r.created_at))
       IS DISTINCT FROM (r.default_branch, r.created_at);

-- name: upsert_pull_requests
WITH base AS MATERIALIZED (
    SELECT c.client_id,
           coalesce((SELECT max(p.pull_request_id) FROM pull_requests p
                      WHERE p.client_id = c.client_id), 0) AS last_id
      FROM (SELECT DISTINCT client_id FROM import_pull_requests) c
), staged AS (
    SELECT s.*, r.repository_id, old.pull_request_id AS old_id,
           row_number() OVER (PARTITION BY s.client_id, old.pull_request_id IS NULL
                              ORDER BY s.ord) AS rn
      FROM import_pull_requests s
      JOIN repositories r ON r.client_id = s.client_id AND r.name = s.repository
      LEFT JOIN pull_requests old ON old.client_id = s.client_id
                                 AND old.repository_id = r.repository_id
                                 AND old.number = s.number
)
INSERT INTO pull_requests AS t (client_id, pull_request_id, repository_id, number, {columns})
SELECT s.client_id, coalesce(s.old_id, b.last_id + s.rn), s.repository_id, s.number, {values}
  FROM staged s
  JOIN base b ON b.client_id = s.client_id
  LEFT JOIN issues i ON i.client_id = s.client_id AND i.issue_key = s.issue_key
  LEFT JOIN pull_requests o ON o.client_id = s.client_id AND o.pull_request_id = s.old_id
ON CONFLICT (client_id, repository_id, number) DO UPDATE
   SET ({set_columns}) = ROW({updated})
 WHERE ({current}) IS DISTINCT FROM ({updated})
RETURNING (xmax = 0) AS inserted;
