-- Per client and model type: how much training data there is, how recent, and the
-- target's mean and spread (the rework rate for pull requests).  Materialized because
-- dashboards read it often and it scans whole tables; the UNIQUE index is what makes
-- REFRESH MATERIALIZED VIEW CONCURRENTLY possible (readers are never blocked).
CREATE MATERIALIZED VIEW mv_ml_training_summary AS
SELECT i.client_id,
       'trajectory'::text AS model_type,
       count(*) AS training_records,
       max(i.work_last_completed_at) AS latest_data,
       avg(i.total_lead_time_seconds)::double precision AS target_avg,
       stddev_samp(i.total_lead_time_seconds)::double precision AS target_stddev
  FROM issues i
  JOIN issuetypes t ON t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id
 WHERE i.active AND i.total_lead_time_seconds > 0 AND t.hierarchy_level = 1
 GROUP BY i.client_id
UNION ALL
SELECT i.client_id,
       'complexity'::text,
       count(*),
       max(i.updated),
       avg(i.story_points)::double precision,
       stddev_samp(i.story_points)::double precision
  FROM issues i
  JOIN issuetypes t ON t.client_id = i.client_id AND t.issuetype_id = i.issuetype_id
 WHERE i.active AND i.story_points IS NOT NULL AND t.hierarchy_level = 0
 GROUP BY i.client_id
UNION ALL
SELECT p.client_id,
       'rework'::text,
       count(*),
       max(p.merged_at),
       avg((p.review_cycles > 2 OR p.rework_commit_count > 3)::integer)::double precision,
       stddev_samp((p.review_cycles > 2 OR p.rework_commit_count > 3)::integer)::double precision
  FROM pull_requests p
 WHERE p.active AND p.merged_at IS NOT NULL
 GROUP BY p.client_id
WITH NO DATA;

CREATE UNIQUE INDEX mv_ml_training_summary_key ON mv_ml_training_summary (client_id, model_type);
REFRESH MATERIALIZED VIEW mv_ml_training_summary;
