"""docker-compose.yml and docker/*.Dockerfile, checked by reading them (no Docker engine here).

What a build or ``docker compose up`` would find out late: a COPY of a path that does not exist
(or that .dockerignore leaves out), a host port that cannot be changed, the db image losing
libgomp1 with the compilers (LightGBM cannot be imported without it), a service command that
is not a pgml-flow command, a long-running service without a health check.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
#: a compose variable with a default: ${NAME:-default}
VARIABLE = re.compile(r"\$\{[A-Z][A-Z0-9_]*:-[^}]*\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, f"{dockerfile}: a continuation line ends the file"
    out = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _dockerignore() -> list[str]:
    path = ROOT / ".dockerignore"
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    relative = relative.rstrip("/")
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        candidates = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        for candidate in candidates:
            if fnmatch.fnmatch(relative, candidate) or relative.startswith(candidate + "/"):
                return True
    return False


def _built_services() -> dict[str, tuple[Path, Path]]:
    """service -> (build context, Dockerfile) for every service that builds an image."""
    found = {}
    for name, service in _services().items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (ROOT / build.get("context", ".")).resolve()
        found[name] = (context, context / build.get("dockerfile", "Dockerfile"))
    return found


def _command_path(args: list[str]) -> tuple[Any, list[str]]:
    """The pgml-flow command ``args`` names (walking the groups), and its remaining args."""
    from cli.app import app

    command: Any = typer.main.get_command(app)
    rest = list(args)
    while getattr(command, "commands", None) and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`pgml-flow {' '.join(args)}`: no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    assert not getattr(command, "commands", None), f"`pgml-flow {' '.join(args)}` is a group"
    return command, rest


def _check_cli_args(args: list[str]) -> None:
    command, rest = _command_path(args)
    options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for token in rest:
        if token.startswith("--"):
            assert token.split("=")[0] in options, f"`pgml-flow {' '.join(args)}`: {token}?"


def test_services_and_builds() -> None:
    services = _services()
    assert {"db", "migrate", "scheduler", "demo", "exporter"} <= set(services)
    built = _built_services()
    # Prometheus and Grafana run their upstream images, pinned (tests/test_exporter.py
    # checks what they mount); everything else builds from this repository
    upstream = {name for name in services if name not in built}
    assert upstream == {"prometheus", "grafana"}, upstream
    for name in upstream:
        image = services[name]["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"
    for name, (context, dockerfile) in built.items():
        assert context == ROOT, name
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
    app_images = {services[name].get("image")
                  for name in ("migrate", "scheduler", "demo", "exporter")}
    assert len(app_images) == 1, "the app services share one image"
    assert built["scheduler"][1].name == "app.Dockerfile"
    assert built["db"][1].name == "db.Dockerfile"


def test_every_copy_source_exists_in_the_build_context() -> None:
    ignored = _dockerignore()
    checked = 0
    for context, dockerfile in set(_built_services().values()):
        for keyword, rest in _instructions(dockerfile):
            if keyword not in ("COPY", "ADD"):
                continue
            if rest.startswith("--from"):
                continue  # from another stage or image, not the context
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            *sources, _destination = parts
            assert sources, f"{dockerfile.name}: {keyword} {rest}"
            for source in sources:
                path = context / source
                matches = list(context.glob(source)) if any(c in source for c in "*?[") else [path]
                assert matches and all(m.exists() for m in matches), (
                    f"{dockerfile.name}: {keyword} source {source!r} does not exist")
                if source != ".":
                    assert not _ignored(source, ignored), (
                        f"{dockerfile.name}: {source!r} is excluded by .dockerignore")
                checked += 1
    assert checked >= 5


def test_dockerignore_keeps_the_local_state_out() -> None:
    ignored = _dockerignore()
    for path in (".pgml-flow", ".venv", ".git", "ext/pgml_native/pgml_native.so"):
        assert _ignored(path, ignored), path


def test_host_ports_are_configurable() -> None:
    published = 0
    for name, service in _services().items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else str(port.get("published", ""))
            host_side = spec.rsplit(":", 1)[0]
            assert VARIABLE.search(host_side), (
                f"{name}: host port {spec!r} is fixed; use ${{VAR:-default}}")
            published += 1
    assert published >= 1
    db_port = _services()["db"]["ports"][0]
    assert db_port.endswith(":5432"), "the container side stays PostgreSQL's port"


def test_db_image_keeps_libgomp1() -> None:
    """LightGBM's wheel needs the system's libgomp1, which the compilers' purge would remove."""
    runs = [rest for keyword, rest in _instructions(ROOT / "docker/db.Dockerfile")
            if keyword == "RUN"]
    installs: list[str] = []
    removals: list[str] = []
    for run in runs:
        for step in re.split(r"&&|;", run):
            words = step.split()
            if words[:2] == ["apt-get", "install"]:
                installs += words
            if words[:2] == ["apt-get", "purge"] or words[:2] == ["apt-get", "remove"]:
                removals += words
    assert "libgomp1" in installs, "install libgomp1 explicitly so that autoremove keeps it"
    assert "libgomp1" not in removals
    install_run = next(i for i, run in enumerate(runs) if "libgomp1" in run)
    purge_run = next(i for i, run in enumerate(runs) if "purge" in run)
    assert install_run <= purge_run, "libgomp1 must be marked as wanted before the purge"


def test_db_server_preloads_pg_cron_and_pgml_native() -> None:
    cmd = next(rest for keyword, rest in _instructions(ROOT / "docker/db.Dockerfile")
               if keyword == "CMD")
    args = json.loads(cmd)
    command = _services()["db"].get("command")
    if command:  # an override in the compose file wins
        args = command if isinstance(command, list) else shlex.split(command)
    settings = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "-c")
    libraries = {lib.strip() for lib in settings["shared_preload_libraries"].split(",")}
    assert {"pg_cron", "pgml_native"} <= libraries
    assert settings.get("pgml.venv"), "the in-database Python's venv"
    assert settings.get("cron.database_name") == _services()["db"]["environment"]["POSTGRES_DB"]


def test_long_running_services_have_health_checks() -> None:
    services = _services()
    for name in ("db", "scheduler", "exporter", "prometheus", "grafana"):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name} has no health check"
        assert services[name].get("restart") == "unless-stopped"
    test = services["scheduler"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pgml-flow"]
    _check_cli_args(test[2:])
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["scheduler"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully")


def test_service_commands_are_pgml_flow_commands() -> None:
    entrypoint = next(rest for keyword, rest in _instructions(ROOT / "docker/app.Dockerfile")
                      if keyword == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["pgml-flow"]
    services = _services()
    assert services["scheduler"]["command"][:2] == ["scheduler", "run"]
    assert "--once" not in services["scheduler"]["command"], "the service, not one pass"
    for name in ("migrate", "scheduler", "demo", "exporter"):
        _check_cli_args(list(services[name]["command"]))


def test_app_services_reach_the_db_service() -> None:
    for name in ("migrate", "scheduler", "demo", "exporter"):
        url = _services()[name]["environment"]["DATABASE_URL"]
        assert "@db:5432/pgmlflow" in url, (name, url)


def test_compose_documentation_names_the_variables() -> None:
    text = (ROOT / "docs/operations.md").read_text()
    for variable in set(VARIABLE.findall((ROOT / "docker-compose.yml").read_text())):
        name = variable[2:].split(":-")[0]
        assert name in text, f"docs/operations.md does not mention {name}"
