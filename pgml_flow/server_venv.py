"""The virtualenv that Python code *inside* PostgreSQL imports from.

plpython3u embeds the system's Python 3.11 (Debian's ``libpython3.11``), not the
interpreter that runs the CLI, so the packages it imports must be built for that
interpreter and readable by the server's OS user.  The setting ``pgml.venv``
names the environment; the in-database bootstrap adds its ``site-packages`` to
``sys.path`` (see ``sql/pgml/000_bootstrap.sql``).

Resolution order: ``PGML_FLOW_SERVER_VENV``; else the environment running this
process when it *is* such an environment (the common case: ``./dev`` creates
``.venv`` with ``/usr/bin/python3``); else ``$PGML_FLOW_HOME/server-venv``,
created and filled on first use.
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import sys
from pathlib import Path

from pgml_flow.errors import ClusterError

logger = logging.getLogger(__name__)

SYSTEM_PYTHON = Path("/usr/bin/python3")
#: what the in-database Python needs (the pgml API; and, for pgml_flow.run_job which pg_cron
#: calls, the scheduler's own packages); kept in step with pyproject.toml
SERVER_PACKAGES = ("numpy", "scipy", "scikit-learn", "xgboost-cpu", "lightgbm", "catboost",
                   "orjson",  # parses XGBoost's JSON for the C scorer (engine.native)
                   "psycopg[binary]", "sqlalchemy", "alembic", "apscheduler<4")
_IMPORT_CHECK = "import numpy, sklearn, xgboost, lightgbm, orjson, pgml_flow.engine"
#: directory that holds the ``pgml_flow`` package (the source checkout or site-packages)
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def resolve(home: Path, explicit: Path | None, server_user: str) -> Path:
    """Return a venv usable by the server, creating one if needed."""
    if explicit is not None:
        _verify(explicit, server_user)
        return explicit
    current = Path(sys.prefix)
    if _is_system_python_venv(current) and _imports_ok(current / "bin" / "python", None):
        try:
            _verify(current, server_user)
            return current
        except ClusterError as exc:
            logger.info("current venv not usable by the server: %s", exc)
    venv = home / "server-venv"
    if not (venv / "bin" / "python").exists() or not _imports_ok(venv / "bin" / "python", None):
        _create(venv)
    _verify(venv, server_user)
    return venv


def _is_system_python_venv(prefix: Path) -> bool:
    return (
        sys.version_info[:2] == (3, 11)
        and Path(sys.base_prefix) == Path("/usr")
        and prefix != Path(sys.base_prefix)
    )


def _create(venv: Path) -> None:
    if not SYSTEM_PYTHON.exists():
        raise ClusterError(
            f"{SYSTEM_PYTHON} is missing; plpython3u needs the system Python 3.11: "
            "`apt-get install -y python3 python3-venv`"
        )
    logger.info("creating server-side virtualenv", extra={"action": "server_venv", "path": venv})
    steps = [
        [str(SYSTEM_PYTHON), "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "--quiet", *SERVER_PACKAGES],
    ]
    for argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ClusterError(
                f"creating the server-side virtualenv {venv} failed at `{' '.join(argv)}`:\n"
                + "\n".join(result.stderr.strip().splitlines()[-5:])
                + "\n(on Debian, `apt-get install -y python3-venv` provides the venv module)"
            )
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "pgml_flow_source.pth").write_text(f"{SOURCE_ROOT}\n")


def _imports_ok(python: Path, user: pwd.struct_passwd | None) -> bool:
    kwargs: dict[str, object] = {}
    if user is not None and os.geteuid() == 0:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    result = subprocess.run(
        [str(python), "-c", _IMPORT_CHECK],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        **kwargs,  # type: ignore[call-overload]
    )
    return result.returncode == 0


def _verify(venv: Path, server_user: str) -> None:
    """Fail early if the server's OS user could not import what it needs."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise ClusterError(f"{venv} is not a virtualenv (no bin/python)")
    user = pwd.getpwnam(server_user)
    if not _imports_ok(python, user):
        raise ClusterError(
            f"the server's OS user {server_user} cannot import numpy, scikit-learn, xgboost, "
            f"lightgbm and pgml_flow.engine from {venv}; make the directory readable "
            f"(`chmod -R a+rX {venv}`) or let pgml-flow create its own by unsetting "
            "PGML_FLOW_SERVER_VENV"
        )


#: how a CatBoost model is served (`pgml-flow db status` says so)
CATBOOST_SERVING = (
    "served by the C scorer: ext/pgml_native compiles CatBoost's oblivious trees (float "
    "features; regression, Logloss, MultiClass); a model using CatBoost's own categorical, "
    "text or embedding features (cat_features, text_features, ...) or a non-symmetric "
    "grow_policy stays on the Python path, which runs CatBoost (about 40 times slower per "
    "row for 1,000 trees), and its pgml.train prints why"
)


def package_version(venv: str | Path | None, name: str) -> str | None:
    """The version of package ``name`` installed in ``venv`` (None: not installed there).

    Read from its ``.dist-info`` directory, without importing it: the server's venv may
    differ from the one running the CLI.
    """
    if venv is None:
        return None
    pattern = f"lib/python3*/site-packages/{name.replace('-', '_')}-*.dist-info"
    found = sorted(Path(venv).glob(pattern))
    if not found:
        return None
    return found[-1].name.removesuffix(".dist-info").split("-", 1)[1]


def catboost_status(venv: str | Path | None) -> str:
    """``pgml-flow db status``'s line on CatBoost: installed where the server imports from,
    and which of its models the C scorer serves."""
    version = package_version(venv, "catboost")
    if version is None:
        return ("not installed in the server's Python environment: pgml.train(..., "
                "'catboost') is refused; `./dev setup` installs it")
    return f"{version}, {CATBOOST_SERVING}"
