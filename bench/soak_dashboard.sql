-- One BI dashboard, as bench/soak.py's pgbench sessions load it in a loop (a pgbench
-- script: :page is pgbench's random variable). Each query predicts with the client's
-- deployed model; the login's row-level security keeps it to its own client.
\set page random(0, 20)
SELECT count(*), avg(predicted_story_points)
  FROM (SELECT predicted_story_points FROM analytics.issue_story_points
         ORDER BY issue_id LIMIT 25 OFFSET :page * 25) s;
SELECT count(*) FROM (SELECT * FROM analytics.epic_forecasts LIMIT 10 OFFSET :page) s;
SELECT count(*)
  FROM (SELECT * FROM analytics.pull_request_rework_risk LIMIT 25 OFFSET :page * 25) s;
