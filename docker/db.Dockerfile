# PostgreSQL 15 with plpython3u, pg_cron and the in-database Python packages.
FROM postgres:15-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-plpython3-15 postgresql-15-cron \
        python3-venv \
 && rm -rf /var/lib/apt/lists/*
# plpython3u embeds Debian's Python 3.11: the venv must be made with that interpreter.
COPY pyproject.toml README.md /src/
COPY pgml_flow /src/pgml_flow
RUN python3 -m venv /opt/pgml-venv \
 && /opt/pgml-venv/bin/pip install --no-cache-dir numpy scipy scikit-learn xgboost-cpu lightgbm \
 && echo /src > /opt/pgml-venv/lib/python3.11/site-packages/pgml_flow_source.pth
CMD ["postgres", "-c", "shared_preload_libraries=pg_cron", "-c", "cron.database_name=pgmlflow", \
     "-c", "pgml.venv=/opt/pgml-venv"]
