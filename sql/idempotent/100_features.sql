-- Features of the three built-in models, computed in SQL so that training (pgml.train on
-- a per-client view of the *_training views) and prediction (the BI surface reading the
-- *_features views) read the same values.
--
-- Every *_features view has: client_id, entity_id, the named feature columns, the target,
-- is_training (the row is a training example), is_open (the BI surface predicts it) and
-- a features real[] array: the spec's numeric features in its order, which the prediction
-- log records and scores against the training distribution. trajectory and rework are
-- read as that array; complexity reads the named columns (the ROW form of pgml.predict),
-- because its model learns per client which values of its text columns matter (the spec's
-- preprocess). Each *_training view also has the column the spec's split orders the rows
-- by (the newest rows are held out). pgml_models/specs/builtin.toml lists the feature
-- columns; a test checks the views against it.

-- A feature view and the training view on it, created again when their columns changed
-- (CREATE OR REPLACE VIEW cannot rename, retype or drop a column): then the per-client
-- training views pgml-flow made from them (pgml_flow_training, made again at every
-- training) go first, and the two views are dropped without CASCADE
-- (pgml_flow.drop_for_upgrade, 005_upgrade.sql): a view of yours on them stops the upgrade
-- with an error that names it, and nothing changes.
CREATE OR REPLACE FUNCTION pgml_flow.replace_views(names text[], definitions text[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    rel regclass;
    stale text;
BEGIN
    BEGIN
        FOR i IN 1 .. cardinality(names) LOOP
            EXECUTE format('CREATE OR REPLACE VIEW %s %s', names[i], definitions[i]);
        END LOOP;
        RETURN;
    EXCEPTION WHEN invalid_table_definition OR undefined_column THEN
        -- their columns changed
    END;
    FOR i IN REVERSE cardinality(names) .. 1 LOOP
        rel := to_regclass(names[i]);
        CONTINUE WHEN rel IS NULL;
        SELECT string_agg(DISTINCT v.oid::regclass::text, ', ') INTO stale
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
          JOIN pg_catalog.pg_class v ON v.oid = r.ev_class
         WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass
           AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = rel
           AND v.oid <> rel AND v.relnamespace = 'pgml_flow_training'::regnamespace;
        IF stale IS NOT NULL THEN
            EXECUTE 'DROP VIEW ' || stale;
        END IF;
        PERFORM pgml_flow.drop_for_upgrade(format('DROP VIEW %s', rel), 'view ' || rel::text);
    END LOOP;
    FOR i IN 1 .. cardinality(names) LOOP
        EXECUTE format('CREATE VIEW %s %s', names[i], definitions[i]);
    END LOOP;
END;
$$;
COMMENT ON FUNCTION pgml_flow.replace_views(text[], text[]) IS
    'CREATE OR REPLACE VIEW each, or (columns changed) drop them and their per-client training views, then create them';

-- complexity: story points of a standard issue (or one without a type: imported data)
-- from what the issue says, as it says it: its type and priority (names), components and
-- labels (text[]), title and description (text), and their lengths. Which types,
-- components, labels and words matter is learned per client at training (the spec's
-- preprocess: one_hot, multi_hot and words encodings) and stored with the model; nothing
-- here names a value. A NULL title or description has length 0; a NULL type, priority,
-- components or labels adds no indicator.
SELECT pgml_flow.replace_views(
    ARRAY['pgml_flow.complexity_features', 'pgml_flow.complexity_training'],
    ARRAY[$view$ AS
SELECT f.*,
       ARRAY[f.title_length, f.description_words]::real[] AS features
  FROM (
    SELECT i.client_id,
           i.issue_id AS entity_id,
           i.story_points::real AS story_points,
           (i.active AND coalesce(t.hierarchy_level, 0) = 0 AND i.story_points IS NOT NULL)
               AS is_training,
           (i.active AND coalesce(t.hierarchy_level, 0) = 0 AND i.status_category <> 'done')
               AS is_open,
           i.created,
           t.original_name AS issue_type,
           i.priority,
           i.components,
           i.labels,
           i.title,
           i.description,
           w.title_length,
           w.description_words
      FROM public.issues i
      LEFT JOIN public.issuetypes t
             ON t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id
     -- once per row: flattening the view copies an expression into every column that
     -- uses it (features, and a whole-row reference such as pgml.predict(model, f), three
     -- word counts per row); OFFSET 0 keeps this subquery from being flattened
     CROSS JOIN LATERAL (
         SELECT coalesce(length(i.title), 0)::real AS title_length,
                -- regexp_split_to_array(btrim(description), '\s+')'s fields, in C where
                -- the native scorer is installed (095_word_count.sql)
                pgml_flow.word_count(i.description)::real AS description_words
         OFFSET 0) w
  ) f
$view$, $view$ AS
SELECT client_id, entity_id, created,
       issue_type, priority, components, labels, title, description, title_length,
       description_words,
       story_points
  FROM pgml_flow.complexity_features
 WHERE is_training
$view$]);

-- trajectory: an epic's total lead time (days) from its size and composition (its
-- children's points and counts by type) and the team's load when it started (epics
-- started in the 30 days before; for an epic not started yet, the 30 days before now).
-- Held out: the most recently completed epics (completed_at).
SELECT pgml_flow.replace_views(
    ARRAY['pgml_flow.trajectory_features', 'pgml_flow.trajectory_training'],
    ARRAY[$view$ AS
SELECT f.*,
       ARRAY[f.child_count, f.child_points, f.child_stories, f.child_tasks, f.child_bugs,
             f.unestimated_children, f.avg_child_points, f.max_child_points,
             f.team_load_30d, f.priority_rank, f.n_components]::real[] AS features
  FROM (
    SELECT e.client_id,
           e.issue_id AS entity_id,
           (e.total_lead_time_seconds / 86400.0)::real AS lead_time_days,
           (e.active AND e.total_lead_time_seconds > 0) AS is_training,
           (e.active AND e.status_category <> 'done') AS is_open,
           e.work_first_started_at,
           e.work_last_completed_at AS completed_at,
           coalesce(c.child_count, 0)::real AS child_count,
           coalesce(c.child_points, 0)::real AS child_points,
           coalesce(c.child_stories, 0)::real AS child_stories,
           coalesce(c.child_tasks, 0)::real AS child_tasks,
           coalesce(c.child_bugs, 0)::real AS child_bugs,
           coalesce(c.unestimated_children, 0)::real AS unestimated_children,
           coalesce(c.avg_child_points, 0)::real AS avg_child_points,
           coalesce(c.max_child_points, 0)::real AS max_child_points,
           (CASE WHEN e.work_first_started_at IS NOT NULL
                 THEN count(*) FILTER (WHERE e.work_first_started_at IS NOT NULL) OVER started - 1
                 ELSE count(*) FILTER (WHERE e.work_first_started_at >= now() - interval '30 days')
                          OVER (PARTITION BY e.client_id)
            END)::real AS team_load_30d,
           (CASE e.priority WHEN 'Highest' THEN 2 WHEN 'High' THEN 1 WHEN 'Low' THEN -1
                            WHEN 'Lowest' THEN -2 ELSE 0 END)::real AS priority_rank,
           coalesce(cardinality(e.components), 0)::real AS n_components
      FROM public.issues e
      JOIN public.issuetypes et ON et.client_id = e.client_id AND et.issuetype_id = e.issuetype_id
      LEFT JOIN LATERAL (
          SELECT count(*) AS child_count,
                 sum(k.story_points) AS child_points,
                 count(*) FILTER (WHERE kt.original_name = 'Story') AS child_stories,
                 count(*) FILTER (WHERE kt.original_name = 'Task') AS child_tasks,
                 count(*) FILTER (WHERE kt.original_name = 'Bug') AS child_bugs,
                 count(*) FILTER (WHERE k.story_points IS NULL) AS unestimated_children,
                 avg(k.story_points) AS avg_child_points,
                 max(k.story_points) AS max_child_points
            FROM public.issues k
            JOIN public.issuetypes kt
              ON kt.client_id = k.client_id AND kt.issuetype_id = k.issuetype_id
           WHERE k.client_id = e.client_id AND k.parent_issue_id = e.issue_id
             AND kt.hierarchy_level = 0 AND k.active
      ) c ON true
     WHERE et.hierarchy_level = 1
    WINDOW started AS (PARTITION BY e.client_id ORDER BY e.work_first_started_at
                       RANGE BETWEEN interval '30 days' PRECEDING AND CURRENT ROW)
  ) f
$view$, $view$ AS
SELECT client_id, entity_id, completed_at,
       child_count, child_points, child_stories, child_tasks, child_bugs,
       unestimated_children, avg_child_points, max_child_points, team_load_30d,
       priority_rank, n_components,
       lead_time_days
  FROM pgml_flow.trajectory_features
 WHERE is_training
$view$]);

-- rework: will a pull request need rework (review_cycles > 2 OR rework_commit_count > 3)?
-- Only what is known when review starts: size, files, the commits before rework, tests,
-- reviewers, and the author's history (merged pull requests created before this one,
-- and how many of those were reworked, smoothed towards 25 %). Comments and review
-- comments accumulate during review, so they are not features. Held out: the most
-- recently merged pull requests (merged_at).
SELECT pgml_flow.replace_views(
    ARRAY['pgml_flow.rework_features', 'pgml_flow.rework_training'],
    ARRAY[$view$ AS
SELECT f.*,
       ARRAY[f.log_size, f.log_additions, f.log_deletions, f.changed_files,
             f.log_changed_files, f.initial_commits, f.reviewers, f.has_tests,
             f.author_prior_prs, f.author_prior_rework_rate]::real[] AS features
  FROM (
    SELECT p.client_id,
           p.pull_request_id AS entity_id,
           (p.review_cycles > 2 OR p.rework_commit_count > 3)::integer AS reworked,
           (p.active AND p.merged_at IS NOT NULL) AS is_training,
           (p.active AND p.state = 'open') AS is_open,
           p.merged_at,
           ln(1 + p.additions + p.deletions)::real AS log_size,
           ln(1 + p.additions)::real AS log_additions,
           ln(1 + p.deletions)::real AS log_deletions,
           p.changed_files::real AS changed_files,
           ln(1 + p.changed_files)::real AS log_changed_files,
           greatest(p.commits - p.rework_commit_count, 1)::real AS initial_commits,
           p.reviewers::real AS reviewers,
           p.has_tests::integer::real AS has_tests,
           (count(*) FILTER (WHERE p.merged_at IS NOT NULL) OVER prior)::real AS author_prior_prs,
           ((coalesce(sum((p.review_cycles > 2 OR p.rework_commit_count > 3)::integer)
                          FILTER (WHERE p.merged_at IS NOT NULL) OVER prior, 0) + 1.0)
            / (count(*) FILTER (WHERE p.merged_at IS NOT NULL) OVER prior + 4.0))::real
               AS author_prior_rework_rate
      FROM public.pull_requests p
    WINDOW prior AS (PARTITION BY p.client_id, p.author_id
                     ORDER BY p.created_at, p.pull_request_id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
  ) f
$view$, $view$ AS
SELECT client_id, entity_id, merged_at,
       log_size, log_additions, log_deletions, changed_files, log_changed_files,
       initial_commits, reviewers, has_tests, author_prior_prs, author_prior_rework_rate,
       reworked
  FROM pgml_flow.rework_features
 WHERE is_training
$view$]);
