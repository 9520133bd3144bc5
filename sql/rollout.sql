-- Queries of pgml_flow.rollout: the kill switch, the rollout, and online A/B tests
-- (sql/idempotent/260_rollout.sql has the functions; docs/operations.md the rules).

-- name: set_rollout
SELECT pgml_flow.set_rollout(%(state)s, %(model)s, %(client_id)s, %(percent)s, %(reason)s);

-- name: rollout_status
-- Per client and served model: what the BI surface does now and why, the client's bucket
-- for the model's rollout (in it when bucket < the model's rollout_percent).
SELECT c.client_id, c.name AS client, r.model_name AS model, s.state, s.reason,
       pgml_flow.rollout_bucket(c.client_id, r.model_name) AS bucket,
       coalesce(g.rollout_percent, 100) AS rollout_percent
  FROM public.clients c
 CROSS JOIN public.ml_model_registry r
 CROSS JOIN LATERAL pgml_flow.rollout_state(c.client_id, r.model_name) s
  LEFT JOIN public.ml_rollout_global g ON g.model_name = r.model_name
 WHERE r.feature_view IS NOT NULL
   AND (%(client_ids)s::bigint[] IS NULL OR c.client_id = ANY (%(client_ids)s::bigint[]))
   AND (%(model)s::text IS NULL OR r.model_name = %(model)s::text)
 ORDER BY c.client_id, r.model_name;

-- name: rollout_switches
-- Every switch set, global ones (client_id NULL) first.
SELECT NULL::bigint AS client_id, g.model_name AS model, g.state, g.rollout_percent,
       g.reason, g.updated_at, g.updated_by
  FROM public.ml_rollout_global g
UNION ALL
SELECT r.client_id, r.model_name, r.state, NULL, r.reason, r.updated_at, r.updated_by
  FROM public.ml_rollout r
 ORDER BY 1 NULLS FIRST, 2;

-- name: abtest_insert
INSERT INTO public.ml_abtests (client_id, model_name, champion_model_id, challenger_model_id,
                               mode, split_percent, min_pairs, max_pairs, alpha)
VALUES (%(client_id)s, %(model)s, %(champion)s, %(challenger)s, %(mode)s, %(split)s,
        %(min_pairs)s, %(max_pairs)s, %(alpha)s)
RETURNING id;

-- name: abtests
-- The tests of some clients and a model: running ones, then the newest finished.
SELECT t.client_id, t.id, t.model_name AS model, r.task, t.champion_model_id,
       t.challenger_model_id, t.mode, t.split_percent, t.min_pairs, t.max_pairs, t.alpha,
       t.status, t.pairs, t.p_value, t.detail, t.started_at, t.finished_at,
       (SELECT count(*) FROM public.ml_abtest_predictions p
         WHERE p.client_id = t.client_id AND p.abtest_id = t.id) AS scored_items
  FROM public.ml_abtests t
  JOIN public.ml_model_registry r ON r.model_name = t.model_name
 WHERE (%(client_ids)s::bigint[] IS NULL OR t.client_id = ANY (%(client_ids)s::bigint[]))
   AND (%(model)s::text IS NULL OR t.model_name = %(model)s::text)
   AND (%(running)s::boolean IS NOT TRUE OR t.status = 'running')
 ORDER BY t.status <> 'running', t.started_at DESC, t.id DESC
 LIMIT %(limit)s;

-- name: abtest_outcomes
SELECT champion_prediction, challenger_prediction, outcome
  FROM pgml_flow.abtest_outcomes(%(client_id)s, %(id)s);

-- name: abtest_update
UPDATE public.ml_abtests
   SET status = %(status)s, pairs = %(pairs)s, p_value = %(p_value)s, detail = %(detail)s,
       finished_at = CASE WHEN %(status)s <> 'running' THEN now() END
 WHERE client_id = %(client_id)s AND id = %(id)s AND status = 'running'
RETURNING id;
