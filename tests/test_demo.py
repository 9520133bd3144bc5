"""The README's main command, `pgml-flow demo`, end to end on a fresh database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pgml_flow.app import PgmlFlow

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end(flow: PgmlFlow, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "DATABASE_URL": flow.url, "COLUMNS": "160"}
    try:
        proc = subprocess.run([sys.executable, "-m", "cli.app", "demo", "--clients", "2",
                               "--issues", "800"], env=env, cwd=ROOT, text=True,
                              capture_output=True, timeout=600)
    finally:
        flow.revoke_bi_access()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for step in ("2. schema at revision", "3. seeded 2 clients", "4. BI logins",
                 "5. trained 3 models for each of 2 clients", "6. sample predictions",
                 "7. isolation audit:", "8. retrain of rework__client_1"):
        assert step in out, (step, out)
    assert out.count("native") >= 3  # the status table: every deployed model served natively
