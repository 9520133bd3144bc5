"""The retraining and refresh scheduler (APScheduler): not built yet.

Issue 5 builds it here: cron triggers from the model specs, refreshes of the
materialized views, exactly-once jobs across replicas.  Until then, retraining is run
by hand with the CLI.
"""
