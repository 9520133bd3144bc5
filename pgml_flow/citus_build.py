"""Building Citus from the vendored source when the server lacks it.

No package registry reachable from a development machine carries Citus for PostgreSQL 15,
so the project builds it from ``../shared/vendor/citus`` (a ``git archive`` of a release and
the patches it needs), exactly like every other install step of ``./dev``: each need is
detected by the file that is used, and only what is missing is installed or built.

* ``$(pg_config --pkglibdir)/citus.so`` present: nothing to do (whoever installed it, the
  Citus packages on a real deployment or an earlier build here).
* missing: the Debian packages the build needs whose header files are missing, then the
  tarball unpacked under ``$PGML_FLOW_HOME/build/`` (never in the git-tracked tree: Citus is
  AGPL and a separate server component), the patches applied, ``configure``, ``make -j2``,
  ``make install``.

``PGML_FLOW_CITUS_SOURCE`` names another source directory (default ``../shared/vendor/citus``
relative to the project root).  It is read by the process that builds, which runs as the
operator (root or sudo), never by the database server.

``python -m pgml_flow.citus_build`` builds when missing (``./dev setup`` runs it);
``--plan`` prints the commands it would run without running them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pgml_flow.errors import ClusterError
from pgml_flow.postgres import Installation, ensure_debian_package, find_installation
from pgml_flow.shared import shared_path

logger = logging.getLogger(__name__)

SOURCE_ENV = "PGML_FLOW_CITUS_SOURCE"

#: Debian packages the build needs (Citus's README), each with the files that show it is
#: installed (a glob relative to the file-system root; ``{server}`` is pg_config's
#: ``--includedir-server``)
BUILD_PACKAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("libzstd-dev", ("usr/include/zstd.h",)),
    ("liblz4-dev", ("usr/include/lz4.h",)),
    ("libcurl4-openssl-dev", ("usr/include/*/curl/curl.h", "usr/include/curl/curl.h")),
    ("libkrb5-dev", ("usr/include/krb5.h",)),
    ("libssl-dev", ("usr/include/openssl/ssl.h",)),
    ("libselinux1-dev", ("usr/include/selinux/selinux.h",)),
    ("libxslt1-dev", ("usr/include/libxslt/xslt.h",)),
    ("libpam0g-dev", ("usr/include/security/pam_appl.h",)),
    ("libreadline-dev", ("usr/include/readline/readline.h",)),
    ("make", ("usr/bin/make",)),
    ("gcc", ("usr/bin/gcc",)),
    ("patch", ("usr/bin/patch",)),
)


@dataclass(frozen=True)
class Step:
    """One command of the build: what runs, and where."""

    argv: tuple[str, ...]
    cwd: Path
    #: a file fed to the command's standard input (``patch -p1 < FILE``)
    stdin: Path | None = None

    def __str__(self) -> str:
        text = " ".join(self.argv)
        return f"(cd {self.cwd} && {text}{f' < {self.stdin}' if self.stdin else ''})"


def source_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get(SOURCE_ENV) or shared_path("vendor", "citus")).resolve()


def installed(installation: Installation) -> bool:
    """Citus is there when the library the server loads is (``shared_preload_libraries``)."""
    return installation.has_extension_library("citus")


def missing_packages(installation: Installation, root: Path = Path("/")) -> list[str]:
    """The build's Debian packages whose files ``root`` lacks, in install order."""
    missing = [name for name, files in BUILD_PACKAGES
               if not any(any(root.glob(pattern)) for pattern in files)]
    server_headers = _includedir_server(installation).relative_to("/") / "postgres.h"
    if not (root / server_headers).exists():
        missing.append(f"postgresql-server-dev-{installation.major}")
    return missing


def plan(installation: Installation, build_root: Path, source: Path,
         destdir: Path | None = None) -> list[Step]:
    """The commands a build runs: unpack, patch, configure, make, make install.

    ``destdir`` installs into a staging directory (``make install DESTDIR=...``) instead of
    the server's own directories: how the steps are proven without replacing a Citus that
    is installed.
    """
    tarball = _tarball(source)
    top = build_root / tarball.name.removesuffix(".tar.gz")
    pg_config = str(installation.tool("pg_config"))
    steps = [Step(("tar", "xzf", str(tarball), "-C", str(build_root)), build_root)]
    steps += [Step(("patch", "-p1", "--forward", "--batch"), top, stdin=p)
              for p in sorted(source.glob("*.patch"))]
    steps += [
        Step(("./configure", f"PG_CONFIG={pg_config}"), top),
        Step(("make", f"-j{min(os.cpu_count() or 2, 2)}"), top),
        Step(("make", "install", *((f"DESTDIR={destdir}",) if destdir else ())), top),
    ]
    return steps


def ensure(installation: Installation | None = None, *, home: Path, auto_install: bool,
           source: Path | None = None, destdir: Path | None = None) -> bool:
    """Build and install Citus when ``citus.so`` is missing; True when it built.

    With ``destdir`` it always builds (into that directory), for proving the steps.
    """
    inst = installation or find_installation()
    if destdir is None and installed(inst):
        return False
    source = source or source_dir()
    for package in missing_packages(inst):
        ensure_debian_package(package, allowed=auto_install,
                              why="building Citus (the scale-out engine) from source")
    build_root = home / "build"
    steps = plan(inst, build_root, source, destdir)
    top = steps[-1].cwd
    if top.exists():
        shutil.rmtree(top)  # a half-made build from an interrupted run
    build_root.mkdir(parents=True, exist_ok=True)
    logger.info("building Citus from %s in %s (about 2 minutes on 2 cores)", source, top,
                extra={"action": "citus_build"})
    for step in steps:
        _run(step)
    if destdir is None and not installed(inst):
        raise ClusterError(f"Citus was built in {top} but {inst.pkglibdir}/citus.so is still "
                           "missing; run `make install` there as root and look at its output")
    return True


def _run(step: Step) -> None:
    stdin = step.stdin.open("rb") if step.stdin else None
    try:
        result = subprocess.run(list(step.argv), cwd=step.cwd, stdin=stdin,
                                capture_output=True, text=True, check=False)
    finally:
        if stdin:
            stdin.close()
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise ClusterError(f"building Citus failed at {step}:\n{tail}\nFix the cause (a "
                           "missing package is named above) and run it again; or install "
                           "Citus from its own packages (docs/scale-out.md)")


def _tarball(source: Path) -> Path:
    found = sorted(source.glob("citus-*.tar.gz"))
    if not found:
        raise ClusterError(
            f"no Citus source (citus-*.tar.gz) in {source}; set {SOURCE_ENV} to the directory "
            "that holds it, or install Citus from its own packages (docs/scale-out.md)")
    return found[-1]


def _includedir_server(installation: Installation) -> Path:
    out = subprocess.run([str(installation.tool("pg_config")), "--includedir-server"],
                         capture_output=True, text=True, check=False)
    if out.returncode == 0 and out.stdout.strip():
        return Path(out.stdout.strip())
    return Path(f"/usr/include/postgresql/{installation.major}/server")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pgml_flow.citus_build [--plan] [--destdir DIR]``."""
    import argparse

    from pgml_flow.settings import Settings

    parser = argparse.ArgumentParser(description="Build Citus from source when missing.")
    parser.add_argument("--plan", action="store_true", help="print the steps, run nothing")
    parser.add_argument("--destdir", type=Path, help="install into this staging directory")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    inst = find_installation(settings.pg_bin)
    if args.plan:
        print("missing packages:", " ".join(missing_packages(inst)) or "none")
        print("citus.so installed:", installed(inst))
        for step in plan(inst, settings.home / "build", source_dir(), args.destdir):
            print(step)
        return 0
    logging.basicConfig(level=logging.INFO, format="==> %(message)s")
    try:
        built = ensure(inst, home=settings.home, auto_install=settings.auto_install,
                       destdir=args.destdir.resolve() if args.destdir else None)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not built:
        print(f"Citus already installed ({inst.pkglibdir}/citus.so)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
