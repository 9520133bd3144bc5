"""``./dev``'s install detection: each Debian package is needed when a file it provides is missing.

The detection runs against a fake root, so the test proves which packages a fresh machine
would get without touching this one: on the machines where the project was built the
server headers were always present, and a check on ``pg_config`` (which belongs to the
client package) hid their absence on a fresh Debian 12.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: every file the detection looks at, and the package that provides it on Debian 12
FILES = {
    "usr/bin/python3": "python3",
    "usr/lib/python3.11/ensurepip/__init__.py": "python3-venv",
    "usr/lib/postgresql/15/bin/initdb": "postgresql",
    "usr/lib/postgresql/15/lib/plpython3.so": "postgresql-plpython3-15",
    "usr/lib/postgresql/15/lib/pg_cron.so": "postgresql-15-cron",
    "usr/include/postgresql/15/server/postgres.h": "postgresql-server-dev-15",
    "usr/bin/make": "make",
    "usr/bin/gcc": "gcc",
    "usr/bin/prometheus": "prometheus",
    "usr/bin/promtool": "prometheus",
    "usr/bin/chromium": "chromium",
}


def needed(root: Path) -> list[str]:
    out = subprocess.run([str(ROOT / "dev"), "needed-packages", str(root)],
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def fake_root(tmp_path: Path, missing: set[str]) -> Path:
    for rel in FILES:
        if rel in missing:
            continue
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
        path.chmod(0o755)
    # pg_config comes with the client package: present on a fresh machine, and no proof
    # that the server headers are there
    pg_config = tmp_path / "usr/lib/postgresql/15/bin/pg_config"
    pg_config.parent.mkdir(parents=True, exist_ok=True)
    pg_config.write_text("")
    pg_config.chmod(0o755)
    return tmp_path


def test_complete_root_needs_nothing(tmp_path: Path) -> None:
    assert needed(fake_root(tmp_path, set())) == []


@pytest.mark.parametrize("missing", sorted(FILES))
def test_each_missing_file_names_its_package(tmp_path: Path, missing: str) -> None:
    expected = [FILES[missing]]
    if FILES[missing] == "postgresql":
        expected.append("postgresql-contrib")
    assert needed(fake_root(tmp_path, {missing})) == expected


def test_fresh_debian_with_postgres_server_and_client(tmp_path: Path) -> None:
    """The machine of issue 11: server and client installed, nothing else of ours."""
    root = fake_root(tmp_path, {
        "usr/lib/postgresql/15/lib/plpython3.so", "usr/lib/postgresql/15/lib/pg_cron.so",
        "usr/include/postgresql/15/server/postgres.h"})
    assert needed(root) == ["postgresql-plpython3-15", "postgresql-15-cron",
                            "postgresql-server-dev-15"]


def test_empty_root_needs_everything(tmp_path: Path) -> None:
    assert needed(tmp_path) == ["python3", "python3-venv", "postgresql", "postgresql-contrib",
                                "postgresql-plpython3-15", "postgresql-15-cron",
                                "postgresql-server-dev-15", "make", "gcc", "prometheus",
                                "chromium"]
