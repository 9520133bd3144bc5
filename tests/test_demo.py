"""The README's main command, `pgml-flow demo`, end to end on a fresh database; the README's
sample of its output is checked against what it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pgml_flow.app import PgmlFlow

ROOT = Path(__file__).resolve().parent.parent
#: a number on its own (not part of an identifier such as rework__client_1 or 0008_...)
NUMBER = re.compile(r"(?<![\w.,])\d[\d,.]*(?![\w])")
#: a schema revision (0008_synthetic_clients): the sample need not follow every migration
REVISION = re.compile(r"\b\d{4}_\w+")


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
    # the status table: every deployed model served natively (complexity's ROW form too)
    assert out.count("native") >= 3 and "python (" not in out
    check_readme_sample(out)


def readme_sample() -> list[str]:
    """The README's sample of the demo's output."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"It prints something like:\n\n```text\n(.*?)\n```", text, re.S)
    assert m, "README.md: the demo's sample output (```text after 'It prints something like:')"
    return m.group(1).splitlines()


def steps(lines: list[str]) -> list[str]:
    """Each numbered step up to its first ': ', numbers masked (they vary from run to run)."""
    found = [re.match(r"(\d+\. )(.*)", line) for line in lines]
    return [m.group(1) + NUMBER.sub("#", REVISION.sub("<revision>", m.group(2).split(": ")[0]))
            for m in found if m]


def words(line: str) -> str:
    return " ".join(line.split())


def check_readme_sample(out: str) -> None:
    """The README's sample has the demo's steps, tables and titles (numbers may differ).

    The sample shows one run's numbers and elides with ``...`` (rows, and the end of a line
    to stay within 100 columns); every other line without a number must be a line of the
    output, and every table of the output must appear in it.
    """
    sample, real = readme_sample(), out.splitlines()
    fix = "update README.md's sample from `pgml-flow demo`"
    # step 1 is printed for the embedded database only; this test runs on DATABASE_URL
    assert steps(sample)[0] == "1. embedded PostgreSQL running on port #", fix
    assert steps(sample)[1:] == steps(real), (fix, steps(sample), steps(real))
    real_lines = [words(line) for line in real]
    for line in sample:
        if re.search(r"\d", line) or not line.strip() or words(line) == "...":
            continue
        if line.endswith("..."):
            assert any(r.startswith(words(line[:-3])) for r in real_lines), (fix, line)
        else:
            assert words(line) in real_lines, (fix, line)
    headers = [re.split(r"\s{2,}", line.strip()) for line in real
               if not re.search(r"\d", line) and len(re.split(r"\s{2,}", line.strip())) >= 3]
    sample_text = [words(line.removesuffix("...")) for line in sample]
    for header in headers:
        assert any(s and words(" ".join(header)).startswith(s) for s in sample_text
                   if len(s.split()) >= 3), (fix, "a table missing", header)


def test_readme_sample_is_in_step_order() -> None:
    sample = readme_sample()
    numbers = [int(line.split(".")[0]) for line in sample if re.match(r"\d+\. ", line)]
    assert numbers == list(range(1, len(numbers) + 1))
    assert max(len(line) for line in sample) <= 100, "keep the sample within 100 columns"
    assert steps(["2. schema at revision 0008_x", "3. seeded 3 clients, 12,000 issues in 1.1 s",
                  "8. retrain of x__client_1: a"]) == [
        "2. schema at revision <revision>", "3. seeded # clients, # issues in # s",
        "8. retrain of x__client_1"]
