"""Docs that run: every SQL and shell block of README.md and docs/*.md runs, or says why not.

The conventions (also in docs/contributing.md):

- `````sql`` and `````bash`` / ``sh`` / ``shell`` / ``console`` blocks run; output
  (`````text``) and configuration (`````toml``, ...) do not. A block in any other language,
  or none, must be marked not run.
- ``<!-- not run: REASON -->`` on the line right above a fence: the block is not run, for
  REASON (GitHub does not render the comment).
- The blocks of one file run in document order, as one session on one scratch database: a
  copy of the migrated template, or, when the file says ``<!-- run on: trained ... -->``, a
  copy of the suite's trained database (clients 1 and 2 seeded, the built-in models trained:
  ``trained_template``).
- SQL runs statement by statement on one autocommit connection per file, as psql would run
  it; an error fails with the file and line of the statement.
- A shell block runs with ``bash -e`` in the file's own scratch directory, with
  ``DATABASE_URL`` set to the scratch database and ``.venv/bin`` first on ``PATH`` (``.venv``
  is linked there, so ``.venv/bin/pgml-flow`` works too). A ``console`` block runs its
  ``$ `` lines.
- A `````toml`` block whose first line is ``# NAME.toml`` is written there as NAME.toml, for
  the commands that follow.
- Placeholders, in markers right above the fence:
  ``<!-- run first: COMMAND -->`` runs a shell command before the block (state the text
  takes for granted, such as a second deployment to roll back to);
  ``<!-- run with: TEXT = VALUE -->`` replaces TEXT (not inside a longer word) by VALUE, or,
  when VALUE starts with SELECT, by the value that query returns on the scratch database
  (a model id, say).

The shared embedded cluster is never started or stopped here: blocks that would do that are
marked not run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgml_flow.database import drop_database, recreate_database, with_dbname
from tests.conftest import TEMPLATE, flow_for

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = {"bash", "sh", "shell", "console"}
RUN = {"sql", *SHELLS}
#: output and configuration: never run (a toml block may be written as a file)
DATA = {"text", "toml", "json", "yaml", "ini", "csv", "diff"}
DATABASES = ("fresh", "trained")

FENCE = re.compile(r"^(\s*)(`{3,})\s*([\w+-]*)\s*$")
COMMENT = re.compile(r"^\s*<!--(.*)-->\s*$")
MARKER = re.compile(r"^\s*(not run|run first|run with):\s*(.*?)\s*$", re.S)
RUN_ON = re.compile(r"^\s*<!--\s*run on:\s*(\S+)", re.M)
TOML_FILE = re.compile(r"^#\s*([\w.-]+\.toml)\s*$")
BLOCK_TIMEOUT = 600


@dataclasses.dataclass
class Block:
    path: Path
    line: int  # the opening fence, 1-based
    lang: str
    text: str
    not_run: str | None = None
    first: list[str] = dataclasses.field(default_factory=list)
    subs: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.lang in RUN and self.not_run is None

    @property
    def file_name(self) -> str | None:
        """NAME.toml for a configuration block that starts with ``# NAME.toml``."""
        first = self.text.split("\n", 1)[0]
        m = TOML_FILE.match(first)
        return m.group(1) if self.lang == "toml" and m else None


def parse(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the markers right above each."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.groups()
        j = i + 1
        while j < len(lines) and not re.fullmatch(rf"\s*{fence}`*\s*", lines[j]):
            j += 1
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip()
                for line in lines[i + 1:j]]
        block = Block(path, i + 1, lang.lower(), "\n".join(body) + "\n")
        k = i - 1
        while k >= 0 and (c := COMMENT.match(lines[k])):
            marker = MARKER.match(c.group(1))
            if marker is None:
                block.problems.append(f"unknown marker above the fence: {lines[k].strip()}")
            else:
                key, value = marker.groups()
                if not value:
                    block.problems.append(f"`{key}:` needs a value")
                elif key == "not run":
                    block.not_run = value
                elif key == "run first":
                    block.first.insert(0, value)
                else:
                    text, sep, replacement = value.partition(" = ")
                    if not sep:
                        block.problems.append(f"`run with: {value}` is not `TEXT = VALUE`")
                    block.subs.insert(0, (text, replacement))
            k -= 1
        blocks.append(block)
        i = j + 1
    return blocks


def check(block: Block) -> list[str]:
    """What is wrong with how a block is marked (empty: it runs, or says why not)."""
    problems = list(block.problems)
    if not block.lang:
        problems.append("a block without a language: say `text` for output, or what it is")
    elif block.lang not in RUN | DATA and block.not_run is None:
        problems.append(f"`{block.lang}` blocks are not run by this test: "
                        "mark it `<!-- not run: REASON -->`")
    if block.not_run is not None and (block.first or block.subs):
        problems.append("a block not run has no `run first` / `run with`")
    for text, _ in block.subs:
        if not _substitute_pattern(text).search(block.text):
            problems.append(f"`run with: {text} = ...`: {text!r} is not in the block")
    if block.runs and block.lang == "sql":
        for n, line in enumerate(block.text.splitlines(), block.line + 1):
            if line.lstrip().startswith("\\"):
                problems.append(f"line {n}: a psql meta-command cannot run through psycopg; "
                                "mark the block not run")
    return problems


def database_kind(path: Path) -> str:
    kinds = RUN_ON.findall(path.read_text())
    if len(set(kinds)) > 1 or (kinds and kinds[0] not in DATABASES):
        raise AssertionError(f"{path.name}: `<!-- run on: ... -->` must be one of "
                             f"{', '.join(DATABASES)}; found {kinds}")
    return kinds[0] if kinds else "fresh"


def _substitute_pattern(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(text)}(?![\w-])")


def _runnable_docs() -> list[str]:
    return [str(p.relative_to(ROOT)) for p in DOCS
            if any(b.runs or b.file_name for b in parse(p))]


# -- every block is run or marked ------------------------------------------------------------


def test_every_block_runs_or_says_why() -> None:
    problems = [f"{b.where}: {p}" for path in DOCS for b in parse(path) for p in check(b)]
    assert not problems, "\n".join(problems)
    for path in DOCS:
        database_kind(path)


def test_cli_reference_is_only_help_output() -> None:
    # docs/cli.md is generated from --help (python -m cli.reference): it documents options,
    # every block is the output of `--help`, and test_cli_reference.py keeps it current
    assert {b.lang for b in parse(ROOT / "docs" / "cli.md")} == {"text"}


def test_parse_markers(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("intro\n\n<!-- not run: needs a Prometheus server -->\n```bash\ncurl x\n```\n"
                   "<!-- run first: pgml-flow seed -->\n<!-- run with: 41 = SELECT 1 -->\n"
                   "  ```sql\n  SELECT 41, 410;\n  ```\n```\nbare\n```\n"
                   "<!-- nto run: typo -->\n```python\nx = 1\n```\n")
    blocks = parse(doc)
    assert [(b.line, b.lang, b.not_run) for b in blocks] == [
        (4, "bash", "needs a Prometheus server"), (9, "sql", None), (12, "", None),
        (16, "python", None)]
    assert blocks[1].text == "SELECT 41, 410;\n" and blocks[1].first == ["pgml-flow seed"]
    assert _substitute_pattern("41").sub("7", blocks[1].text) == "SELECT 7, 410;\n"
    assert check(blocks[0]) == [] and check(blocks[1]) == []
    assert "without a language" in check(blocks[2])[0]
    assert [p.split(":")[0] for p in check(blocks[3])] == [
        "unknown marker above the fence", "`python` blocks are not run by this test"]


def test_split_sql() -> None:
    sql = ("SELECT 'a;b', \"c;d\"; -- x;y\nSELECT $$ ; $$,\n  $f$;$f$;\n/* ; */ SELECT 1\n;"
           "\n-- only a comment\n")
    assert split_sql(sql) == [(1, "SELECT 'a;b', \"c;d\""), (2, "SELECT $$ ; $$,\n  $f$;$f$"),
                              (4, "SELECT 1")]


# -- running a file's blocks -----------------------------------------------------------------


def split_sql(text: str) -> list[tuple[int, str]]:
    """Statements and the line (1-based, in ``text``) each starts on; comments kept inside."""
    statements: list[tuple[int, str]] = []
    start, i, line, start_line = 0, 0, 1, 1
    code = False  # the statement has something besides comments and blanks
    while i < len(text):
        ch = text[i]
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end < 0 else end + 2
            line += text.count("\n", i, end)
            i = end
            continue
        if ch in "'\"":
            end = i + 1
            while end < len(text) and not (text[end] == ch and text[end + 1:end + 2] != ch):
                end += 2 if text[end] == ch else 1
            code = True
            line += text.count("\n", i, end)
            i = end + 1
            continue
        dollar = re.match(r"\$(?:[A-Za-z_]\w*)?\$", text[i:])
        if dollar:
            tag = dollar.group(0)
            end = text.find(tag, i + len(tag))
            end = len(text) if end < 0 else end + len(tag)
            code = True
            line += text.count("\n", i, end)
            i = end
            continue
        if ch == ";":
            if code:
                statements.append((start_line, text[start:i].strip()))
            start, code = i + 1, False
        elif ch == "\n":
            line += 1
        elif not ch.isspace():
            if not code:
                start, start_line = i, line
                # a comment before the statement belongs to nothing; start at its code
            code = True
        i += 1
    if code:
        statements.append((start_line, text[start:].strip()))
    return statements


@dataclasses.dataclass
class Session:
    """One doc's blocks, in order, on one scratch database."""

    workdir: Path
    env: dict[str, str]
    conn: psycopg.Connection

    def value(self, query: str) -> str:
        row = self.conn.execute(query.encode()).fetchone()
        assert row is not None and row[0] is not None, f"`{query}` returned nothing"
        return str(row[0])

    def run(self, block: Block) -> None:
        for command in block.first:
            self.shell(block, command, f"`run first: {command}`")
        text = block.text
        for pattern, replacement in block.subs:
            if replacement.upper().startswith("SELECT"):
                replacement = self.value(replacement)
            text = _substitute_pattern(pattern).sub(replacement.replace("\\", "\\\\"), text)
        if block.lang == "toml":
            (self.workdir / str(block.file_name)).write_text(text)
        elif block.lang == "sql":
            self.sql(block, text)
        elif block.lang == "console":
            commands = [line[2:] for line in text.splitlines() if line.startswith("$ ")]
            self.shell(block, "\n".join(commands), "")
        else:
            self.shell(block, text, "")

    def sql(self, block: Block, text: str) -> None:
        for offset, statement in split_sql(text):
            try:
                self.conn.execute(statement.encode())
            except psycopg.Error as exc:
                raise AssertionError(f"{block.path.relative_to(ROOT)}:{block.line + offset}: "
                                     f"{type(exc).__name__}: {exc}\n{statement}") from exc

    def shell(self, block: Block, script: str, what: str) -> None:
        trap = "trap 'echo \"failed at line $((LINENO - 1)) of the block\" >&2' ERR"
        try:
            proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-x", "-c",
                                   f"{trap}\n{script}"], cwd=self.workdir, env=self.env,
                                  text=True, capture_output=True, timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"{block.where}: {what or 'block'} still running after "
                                 f"{BLOCK_TIMEOUT} s") from exc
        if proc.returncode != 0:
            m = re.search(r"failed at line (\d+) of the block", proc.stderr)
            where = (f"{block.path.relative_to(ROOT)}:{block.line + int(m.group(1))}"
                     if m and not what else block.where)
            raise AssertionError(f"{where}: {what or 'command'} exited with "
                                 f"{proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                                 f"\n--- stderr\n{proc.stderr[-4000:]}")


@pytest.fixture
def doc_database(request: pytest.FixtureRequest, admin_url: str, template_url: str
                 ) -> Iterator[str]:
    """A scratch database of the kind the doc asks for."""
    kind = database_kind(ROOT / request.node.callspec.params["doc"])
    template = TEMPLATE if kind == "fresh" else request.getfixturevalue("trained_template")
    name = f"test_docs_{uuid.uuid4().hex[:10]}"
    recreate_database(admin_url, name, template=template)
    try:
        yield with_dbname(admin_url, name)
    finally:
        drop_database(admin_url, name)


@pytest.mark.parametrize("doc", _runnable_docs())
def test_doc_runs(doc: str, doc_database: str, tmp_path: Path, cli_env: dict[str, str]) -> None:
    url = doc_database
    blocks = [b for b in parse(ROOT / doc) if b.runs or b.file_name]
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = {**cli_env, "DATABASE_URL": url, "COLUMNS": "100", "NO_COLOR": "1",
           "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{cli_env.get('PATH', '')}"}
    for name in ("PGML_FLOW_JSON", "PGML_FLOW_MODEL_SPECS", "PGML_FLOW_NOW"):
        env.pop(name, None)
    flow = flow_for(url)
    timings = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            session = Session(tmp_path, env, conn)
            for block in blocks:
                started = time.monotonic()
                session.run(block)
                timings.append(f"{block.where} {block.lang} {time.monotonic() - started:.1f} s")
    finally:
        flow.revoke_bi_access()
        if any("cron install" in b.text for b in blocks):
            flow.cron_remove()
    print("\n".join(timings))
