# PostgreSQL 15 with plpython3u, pg_cron, the native scorer and the in-database Python.
FROM postgres:15-bookworm
# libgomp1 (OpenMP): LightGBM's wheel loads the system's at import (XGBoost bundles its own).
# It is also a dependency of the compilers below: installed here on its own, it is marked as
# wanted and survives their purge and `autoremove` (tests/test_docker.py checks this).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-plpython3-15 postgresql-15-cron \
        python3-venv libgomp1 \
 && rm -rf /var/lib/apt/lists/*
# The server imports pgml-flow's own packages (the pgml API, and the scheduler for
# pgml_flow.run_job, which pg_cron calls) with their SQL files and migrations.
COPY pyproject.toml README.md /src/
COPY pgml_flow /src/pgml_flow
COPY pgml_models /src/pgml_models
COPY scheduler /src/scheduler
COPY sql /src/sql
COPY migrations /src/migrations
COPY ext/pgml_native /src/ext/pgml_native
# The C scorer (ext/pgml_native), built with PGXS; the compilers are removed afterwards.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential postgresql-server-dev-15 \
 && make -C /src/ext/pgml_native PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config \
 && make -C /src/ext/pgml_native PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config install \
 && apt-get purge -y build-essential postgresql-server-dev-15 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
# plpython3u embeds Debian's Python 3.11: the venv must be made with that interpreter.
# Same packages as pgml_flow.server_venv.SERVER_PACKAGES.
RUN python3 -m venv /opt/pgml-venv \
 && /opt/pgml-venv/bin/pip install --no-cache-dir numpy scipy scikit-learn xgboost-cpu lightgbm catboost orjson \
        "psycopg[binary]" sqlalchemy alembic "apscheduler<4" \
 && echo /src > /opt/pgml-venv/lib/python3.11/site-packages/pgml_flow_source.pth
CMD ["postgres", "-c", "shared_preload_libraries=pg_cron,pgml_native", "-c", "cron.database_name=pgmlflow", \
     "-c", "pgml.venv=/opt/pgml-venv"]
