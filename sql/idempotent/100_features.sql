-- Features of the three built-in models, computed in SQL so that training (pgml.train on
-- a per-client view of the *_training views) and prediction (the BI surface reading the
-- *_features views) use exactly the same numbers.
--
-- Every *_features view has: client_id, entity_id, the named feature columns (real), a
-- features real[] array of the same columns in the spec's order, the target, is_training
-- (the row is a training example) and is_open (the BI surface predicts it).
-- pgml_models/specs/builtin.toml lists the feature columns in the same order; a test
-- checks that ARRAY[<spec features>] equals the features column.

-- complexity: story points of a standard issue from its type, components, priority and
-- its title and description (keyword flags, lengths).
CREATE OR REPLACE VIEW pgml_flow.complexity_features AS
SELECT f.*,
       ARRAY[f.type_story, f.type_task, f.type_bug, f.priority_rank, f.n_components,
             f.comp_api, f.comp_frontend, f.comp_backend, f.comp_database, f.comp_infra,
             f.comp_mobile, f.comp_auth, f.comp_billing, f.comp_search, f.comp_reporting,
             f.comp_notifications, f.comp_integrations,
             f.kw_typo, f.kw_tweak, f.kw_update, f.kw_fix, f.kw_add, f.kw_improve,
             f.kw_implement, f.kw_refactor, f.kw_migrate, f.kw_redesign,
             f.title_length, f.description_words]::real[] AS features
  FROM (
    SELECT i.client_id,
           i.issue_id AS entity_id,
           i.story_points::real AS story_points,
           (i.active AND t.hierarchy_level = 0 AND i.story_points IS NOT NULL) AS is_training,
           (i.active AND t.hierarchy_level = 0 AND i.status_category <> 'done') AS is_open,
           (t.original_name = 'Story')::integer::real AS type_story,
           (t.original_name = 'Task')::integer::real AS type_task,
           (t.original_name = 'Bug')::integer::real AS type_bug,
           (CASE i.priority WHEN 'Highest' THEN 2 WHEN 'High' THEN 1 WHEN 'Low' THEN -1
                            WHEN 'Lowest' THEN -2 ELSE 0 END)::real AS priority_rank,
           cardinality(i.components)::real AS n_components,
           ('api' = ANY (i.components))::integer::real AS comp_api,
           ('frontend' = ANY (i.components))::integer::real AS comp_frontend,
           ('backend' = ANY (i.components))::integer::real AS comp_backend,
           ('database' = ANY (i.components))::integer::real AS comp_database,
           ('infra' = ANY (i.components))::integer::real AS comp_infra,
           ('mobile' = ANY (i.components))::integer::real AS comp_mobile,
           ('auth' = ANY (i.components))::integer::real AS comp_auth,
           ('billing' = ANY (i.components))::integer::real AS comp_billing,
           ('search' = ANY (i.components))::integer::real AS comp_search,
           ('reporting' = ANY (i.components))::integer::real AS comp_reporting,
           ('notifications' = ANY (i.components))::integer::real AS comp_notifications,
           ('integrations' = ANY (i.components))::integer::real AS comp_integrations,
           (i.title ~* '\mtypo\M')::integer::real AS kw_typo,
           (i.title ~* '\mtweak')::integer::real AS kw_tweak,
           (i.title ~* '\mupdate')::integer::real AS kw_update,
           (i.title ~* '\mfix')::integer::real AS kw_fix,
           (i.title ~* '\madd')::integer::real AS kw_add,
           (i.title ~* '\mimprove')::integer::real AS kw_improve,
           (i.title ~* '\mimplement')::integer::real AS kw_implement,
           (i.title ~* '\mrefactor')::integer::real AS kw_refactor,
           (i.title ~* '\mmigrat')::integer::real AS kw_migrate,
           (i.title ~* '\mredesign')::integer::real AS kw_redesign,
           length(i.title)::real AS title_length,
           (CASE WHEN btrim(i.description) = '' THEN 0
                 ELSE length(btrim(i.description))
                      - length(replace(btrim(i.description), ' ', '')) + 1 END)::real
               AS description_words
      FROM public.issues i
      JOIN public.issuetypes t ON t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id
  ) f;

CREATE OR REPLACE VIEW pgml_flow.complexity_training AS
SELECT client_id, entity_id,
       type_story, type_task, type_bug, priority_rank, n_components,
       comp_api, comp_frontend, comp_backend, comp_database, comp_infra, comp_mobile,
       comp_auth, comp_billing, comp_search, comp_reporting, comp_notifications,
       comp_integrations,
       kw_typo, kw_tweak, kw_update, kw_fix, kw_add, kw_improve, kw_implement, kw_refactor,
       kw_migrate, kw_redesign, title_length, description_words,
       story_points
  FROM pgml_flow.complexity_features
 WHERE is_training;

-- trajectory: an epic's total lead time (days) from its size and composition (its
-- children's points and counts by type) and the team's load when it started (epics
-- started in the 30 days before; for an epic not started yet, the 30 days before now).
CREATE OR REPLACE VIEW pgml_flow.trajectory_features AS
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
           cardinality(e.components)::real AS n_components
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
  ) f;

CREATE OR REPLACE VIEW pgml_flow.trajectory_training AS
SELECT client_id, entity_id,
       child_count, child_points, child_stories, child_tasks, child_bugs,
       unestimated_children, avg_child_points, max_child_points, team_load_30d,
       priority_rank, n_components,
       lead_time_days
  FROM pgml_flow.trajectory_features
 WHERE is_training;

-- rework: will a pull request need rework (review_cycles > 2 OR rework_commit_count > 3)?
-- Only what is known when review starts: size, files, the commits before rework, tests,
-- reviewers, and the author's history (merged pull requests created before this one,
-- and how many of those were reworked, smoothed towards 25 %). Comments and review
-- comments accumulate during review, so they are not features.
CREATE OR REPLACE VIEW pgml_flow.rework_features AS
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
  ) f;

CREATE OR REPLACE VIEW pgml_flow.rework_training AS
SELECT client_id, entity_id,
       log_size, log_additions, log_deletions, changed_files, log_changed_files,
       initial_commits, reviewers, has_tests, author_prior_prs, author_prior_rework_rate,
       reworked
  FROM pgml_flow.rework_features
 WHERE is_training;
