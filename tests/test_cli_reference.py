"""docs/cli.md is generated from --help and must be current."""

from __future__ import annotations

from pathlib import Path

from cli.reference import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/cli.md is stale: run `python -m cli.reference > docs/cli.md`"
    )


def test_every_command_is_documented() -> None:
    text = DOC.read_text()
    for command in ("db start", "db stop", "db status", "db url", "db upgrade", "db downgrade",
                    "seed", "summary", "demo", "retrain", "deploy", "rollback", "refresh",
                    "status", "events", "scheduler run", "scheduler jobs", "scheduler runs",
                    "cron install", "cron remove", "cron list", "cron history",
                    "log status", "log prune"):
        assert f"## `pgml-flow {command}`" in text
