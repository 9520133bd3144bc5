-- Queries of the rework evaluations (pgml_flow.evaluation.rework), loaded by name.
-- Templates with {placeholders} are composed with psycopg.sql (identifiers quoted by
-- psycopg, numbers as literals). The views live in the evaluation's schema,
-- pgml_flow_evaluation, of the (scratch) database the evaluation imports into.

-- name: create_split_view
-- The rows of a spec's training view (over pull requests) that belong to an imported
-- dataset's splits (pull_requests.dataset_split), with the row's place in its file.
CREATE OR REPLACE VIEW pgml_flow_evaluation.{view} AS
SELECT t.*, (p.attributes ->> 'source_row')::integer AS source_row, p.dataset_split
  FROM {source} t
  JOIN public.pull_requests p ON p.client_id = t.client_id AND p.pull_request_id = t.entity_id
 WHERE p.dataset_split = ANY ({splits});

-- name: test_probabilities
-- A client's rows of one split, their labels and a model's probability of class 1, from
-- the features array in the spec's order (pgml.predict_proba; NULL: not scorable).
SELECT array_agg(s.{target}::double precision ORDER BY s.created_at, s.entity_id),
       array_agg((pgml_flow.predict_proba_or_null(%(model_id)s::bigint,
                                                  ARRAY[{features}]::real[]))[2]
                 ORDER BY s.created_at, s.entity_id)
  FROM pgml_flow_evaluation.{view} s
 WHERE s.client_id = %(client_id)s AND s.{target} IS NOT NULL;

-- name: split_labels
SELECT {target}::double precision
  FROM pgml_flow_evaluation.{view}
 WHERE client_id = %(client_id)s AND dataset_split = %(split)s AND {target} IS NOT NULL;

-- name: create_merge_view
-- Gousios et al. (ICSE 2014), merge decision, one run: a half of the client's pull
-- requests (a hash of the id with the run's seed), in a random order (draw: a hash with
-- another seed) whose last 10 % the spec holds out (test_size 0.1); the paper's features,
-- from the dataset's columns (the counts in pull_requests, the rest in attributes).
CREATE OR REPLACE VIEW pgml_flow_evaluation.merge_decision_training AS
SELECT p.client_id, p.pull_request_id AS entity_id,
       hashint8extended(p.pull_request_id, {draw_seed}) AS draw,
       (p.merged_at IS NOT NULL)::integer AS merged,
       p.commits::real AS num_commits, p.comments::real AS num_comments,
       p.changed_files::real AS files_changed,
       (p.attributes ->> 'num_participants')::real AS num_participants,
       (p.attributes ->> 'team_size')::real AS team_size,
       (p.attributes ->> 'perc_external_contribs')::real AS perc_external_contribs,
       (p.attributes ->> 'sloc')::real AS sloc,
       (p.attributes ->> 'src_churn')::real AS src_churn,
       (p.attributes ->> 'test_churn')::real AS test_churn,
       (p.attributes ->> 'commits_on_files_touched')::real AS commits_on_files_touched,
       (p.attributes ->> 'test_lines_per_kloc')::real AS test_lines_per_kloc,
       (p.attributes ->> 'test_cases_per_kloc')::real AS test_cases_per_kloc,
       (p.attributes ->> 'asserts_per_kloc')::real AS asserts_per_kloc,
       (p.attributes ->> 'watchers')::real AS watchers,
       (p.attributes ->> 'prev_pullreqs')::real AS prev_pullreqs,
       (p.attributes ->> 'requester_succ_rate')::real AS requester_succ_rate,
       (p.attributes ->> 'followers')::real AS followers,
       (p.attributes ->> 'intra_branch')::boolean::integer::real AS intra_branch,
       (p.attributes ->> 'main_team_member')::boolean::integer::real AS main_team_member,
       (p.attributes ->> 'conflict')::boolean::integer::real AS conflict,
       (p.attributes ->> 'forward_links')::boolean::integer::real AS forward_links
  FROM public.pull_requests p
 WHERE p.active AND (hashint8extended(p.pull_request_id, {sample_seed}) & 1) = 0;

-- name: model_metrics
-- The held-out metrics pgml.train recorded for a model (roc_auc, accuracy, ...).
SELECT metrics FROM pgml.models WHERE id = %(model_id)s;
