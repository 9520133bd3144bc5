"""Settings for a server of a test's own (a scratch cluster or a Citus cluster)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest

from pgml_flow.settings import Settings


def own_cluster_settings(prefix: str) -> tuple[Path, Settings]:
    """A new home for servers the test starts, and the settings that point at it.

    The home is right under /tmp, mode 0755, so that the unprivileged server user can
    reach it: not under pytest's base temp, which a concurrent pytest session makes
    private again (mode 0700). Skips when ``DATABASE_URL`` names an external server.
    """
    base = Settings.from_env()
    if base.external:
        pytest.skip("needs servers of the suite's own, not the external DATABASE_URL")
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    return home, dataclasses.replace(base, home=home, port=None, database_url=None)
