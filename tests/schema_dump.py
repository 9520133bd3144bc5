"""Catalog dumps for comparing two databases' schemas."""

from __future__ import annotations

import re
import subprocess

import psycopg

from pgml_flow.postgres import find_installation


def dump_schema(url: str) -> str:
    """``pg_dump --schema-only`` minus lines that legitimately differ between databases."""
    pg_dump = find_installation().tool("pg_dump")
    out = subprocess.run(
        [str(pg_dump), "--schema-only", "--no-owner", "--exclude-table=alembic_version",
         "--dbname", url],
        capture_output=True, text=True, check=True,
    ).stdout
    out = re.sub(r"^--.*$", "", out, flags=re.MULTILINE)
    out = re.sub(r"^\\(un)?restrict .*$", "", out, flags=re.MULTILINE)
    return re.sub(r"\n{3,}", "\n\n", out).strip()


def table_names(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'm', 'v', 'p') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return {r[0] for r in rows}
