"""The retraining and refresh scheduler.

* :mod:`scheduler.jobs`: the jobs (a retrain check per model spec on its cron schedule,
  refreshes of materialized views) and their slots (cron times);
* :mod:`scheduler.runner`: :func:`~scheduler.runner.run_once` runs the due slots, each
  exactly once across replicas (a unique claim row per job and slot, held with an
  advisory lock); ``pgml-flow scheduler run --once`` is this function;
* :mod:`scheduler.service`: the long-running APScheduler service (``pgml-flow scheduler
  run``), which calls the same function on the jobs' cron triggers.

See docs/operations.md for the missed-run policy and how to run it in production.
"""
