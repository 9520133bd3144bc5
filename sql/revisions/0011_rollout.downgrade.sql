-- Undo revision 0011_rollout (no CASCADE: a user's object on these tables stops it; the
-- functions on them, sql/idempotent/260_rollout.sql, are gone before this runs).
DROP TABLE ml_abtest_predictions;
DROP TABLE ml_abtests;
DROP TABLE ml_rollout;
DROP TABLE ml_rollout_global;
