"""Finding a PostgreSQL installation and what it offers.

Separate from :mod:`pgml_flow.cluster` because the same facts (where the binaries
are, which major version, whether plpython3u is installed) matter both for the
embedded cluster and for the error messages we give users of an external server.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pgml_flow.errors import ClusterError, PostgresNotFound

_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_REQUIRED = ("initdb", "pg_ctl", "postgres", "pg_config")


@dataclass(frozen=True)
class Installation:
    """One PostgreSQL server installation (a ``bin`` directory and its libraries)."""

    bindir: Path
    major: int

    def tool(self, name: str) -> Path:
        return self.bindir / name

    @property
    def pkglibdir(self) -> Path:
        out = subprocess.run(
            [str(self.tool("pg_config")), "--pkglibdir"], capture_output=True, text=True, check=True
        )
        return Path(out.stdout.strip())

    @property
    def sharedir(self) -> Path:
        out = subprocess.run(
            [str(self.tool("pg_config")), "--sharedir"], capture_output=True, text=True, check=True
        )
        return Path(out.stdout.strip())

    def has_extension_library(self, library: str) -> bool:
        return (self.pkglibdir / f"{library}.so").exists()

    @property
    def plpython_package(self) -> str:
        """The Debian package that provides plpython3u for this server."""
        return f"postgresql-plpython3-{self.major}"


def find_installation(bindir: Path | None = None) -> Installation:
    """Locate the server binaries: an explicit directory, else the newest Debian one, else PATH."""
    candidates: list[Path] = []
    if bindir is not None:
        candidates.append(bindir)
    else:
        if _DEBIAN_ROOT.is_dir():
            versions = sorted(
                (p for p in _DEBIAN_ROOT.iterdir() if p.name.isdigit()),
                key=lambda p: int(p.name),
                reverse=True,
            )
            candidates.extend(v / "bin" for v in versions)
        on_path = shutil.which("pg_ctl")
        if on_path:
            candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all((directory / tool).exists() for tool in _REQUIRED):
            return Installation(bindir=directory, major=_major_version(directory))
    where = str(bindir) if bindir else f"{_DEBIAN_ROOT}/*/bin or PATH"
    raise PostgresNotFound(
        f"no PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_config) in {where}. "
        "Install them with `apt-get install postgresql postgresql-server-dev-all` "
        "or set PGML_FLOW_PG_BIN to the directory that holds them, "
        "or set DATABASE_URL to use an existing server."
    )


def _major_version(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    if out.returncode != 0 or match is None:
        raise PostgresNotFound(f"{bindir / 'postgres'} --version failed: {out.stderr.strip()}")
    return int(match.group(1))


def ensure_debian_package(package: str, *, allowed: bool, why: str) -> None:
    """Install a Debian package, or explain exactly how to when we may not.

    We only install when running as root with apt-get present and the user has not
    switched it off (``PGML_FLOW_AUTO_INSTALL=0``): silently touching system
    packages in any other situation would surprise an operator.
    """
    command = f"apt-get install -y {package}"
    if not allowed or shutil.which("apt-get") is None:
        raise ClusterError(
            f"{why}: the Debian package {package} is missing. Install it with `sudo {command}` "
            "(or run pgml-flow as root with PGML_FLOW_AUTO_INSTALL=1 to let it do so)."
        )
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run(command.split(), capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        # The package lists may be missing on a fresh machine: refresh once, retry.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env, check=False)
        result = subprocess.run(
            command.split(), capture_output=True, text=True, env=env, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise ClusterError(f"{why}: `{command}` failed:\n{tail}")
