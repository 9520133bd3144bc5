-- rework_at_open: will a pull request get commits after it was opened (revision during
-- review), from what is known the moment it opens (the evaluation spec `rework_at_open`,
-- pgml_flow/evaluation/rework.toml; docs/models.md#rework-on-real-data-gousios).
--
-- Label: commits > commits_at_open (rework_commit_count > 0), the rework label of
-- gousios-pullreqs-2015 (SOURCE.txt: 39.9 % positive). Features, each known at opening:
--   commits_at_open            -- the commits the pull request opened with;
--   the project when it opened: team_size, team_size_vasilescu, perc_external_contribs
--     (share of outside contributions, 3 months before), sloc, test_lines_per_kloc,
--     test_cases_per_kloc, asserts_per_kloc, watchers, workload (pull requests open then);
--   the author then: prev_pullreqs, requester_succ_rate (share of them merged),
--     followers, main_team_member, social_connection_tsay (follows the closer),
--     prior_interaction_* (events, comments, commits in the project before);
--   intra_branch (from a branch of the same repository), description_complexity (words
--     of title and description).
-- (The author's own rework rate on pull requests closed before this one opened, and the
-- project's over the 90 days before, did not help on the validation slices of the 29
-- gousios projects: mean AUC 0.622 with them, 0.632 without; they are not here.)
-- Left out because they are known only later: the churn and file counts (src_churn,
-- test_churn, files_*, has_tests: over all the pull request's commits, rework included),
-- commits_on_files_touched, commits_to_hottest_file and hotness_vasilescu (the files
-- touched by then), comments, review comments, participants, conflict, forward_links,
-- first_response and the ci_* columns (during review), the dates after created_at.
-- The gousios columns are in attributes (pgml_flow.imports.datasets).
SELECT pgml_flow.replace_views(
    ARRAY['pgml_flow.rework_open_features', 'pgml_flow.rework_open_training'],
    ARRAY[$view$ AS
SELECT f.*,
       ARRAY[f.commits_at_open, f.team_size, f.team_size_vasilescu, f.perc_external_contribs,
             f.sloc, f.test_lines_per_kloc, f.test_cases_per_kloc, f.asserts_per_kloc,
             f.watchers, f.workload, f.prev_pullreqs, f.requester_succ_rate, f.followers,
             f.main_team_member, f.social_connection_tsay, f.prior_issue_events,
             f.prior_issue_comments, f.prior_pr_events, f.prior_pr_comments,
             f.prior_commits, f.prior_commit_comments, f.intra_branch,
             f.description_complexity]::real[] AS features
  FROM (
    SELECT p.client_id,
           p.pull_request_id AS entity_id,
           (p.rework_commit_count > 0)::integer AS reworked_after_open,
           (p.active AND p.commits_at_open IS NOT NULL AND p.rework_commit_count IS NOT NULL
            AND p.state <> 'open') AS is_training,
           (p.active AND p.state = 'open') AS is_open,
           p.created_at,
           p.commits_at_open::real AS commits_at_open,
           (p.attributes ->> 'team_size')::real AS team_size,
           (p.attributes ->> 'team_size_vasilescu')::real AS team_size_vasilescu,
           (p.attributes ->> 'perc_external_contribs')::real AS perc_external_contribs,
           (p.attributes ->> 'sloc')::real AS sloc,
           (p.attributes ->> 'test_lines_per_kloc')::real AS test_lines_per_kloc,
           (p.attributes ->> 'test_cases_per_kloc')::real AS test_cases_per_kloc,
           (p.attributes ->> 'asserts_per_kloc')::real AS asserts_per_kloc,
           (p.attributes ->> 'watchers')::real AS watchers,
           (p.attributes ->> 'workload')::real AS workload,
           (p.attributes ->> 'prev_pullreqs')::real AS prev_pullreqs,
           (p.attributes ->> 'requester_succ_rate')::real AS requester_succ_rate,
           (p.attributes ->> 'followers')::real AS followers,
           (p.attributes ->> 'main_team_member')::boolean::integer::real AS main_team_member,
           (p.attributes ->> 'social_connection_tsay')::boolean::integer::real
               AS social_connection_tsay,
           (p.attributes ->> 'prior_interaction_issue_events')::real AS prior_issue_events,
           (p.attributes ->> 'prior_interaction_issue_comments')::real AS prior_issue_comments,
           (p.attributes ->> 'prior_interaction_pr_events')::real AS prior_pr_events,
           (p.attributes ->> 'prior_interaction_pr_comments')::real AS prior_pr_comments,
           (p.attributes ->> 'prior_interaction_commits')::real AS prior_commits,
           (p.attributes ->> 'prior_interaction_commit_comments')::real
               AS prior_commit_comments,
           (p.attributes ->> 'intra_branch')::boolean::integer::real AS intra_branch,
           (p.attributes ->> 'description_complexity')::real AS description_complexity
      FROM public.pull_requests p
  ) f
$view$, $view$ AS
SELECT client_id, entity_id, created_at,
       commits_at_open, team_size, team_size_vasilescu, perc_external_contribs, sloc,
       test_lines_per_kloc, test_cases_per_kloc, asserts_per_kloc, watchers, workload,
       prev_pullreqs, requester_succ_rate, followers, main_team_member,
       social_connection_tsay, prior_issue_events, prior_issue_comments, prior_pr_events,
       prior_pr_comments, prior_commits, prior_commit_comments, intra_branch,
       description_complexity,
       reworked_after_open
  FROM pgml_flow.rework_open_features
 WHERE is_training
$view$]);
