"""What every command module shares: where output goes and how it looks, the library
facade, the ``--json`` option.

How a command's output looks is decided here, once:

* stdout is a terminal: rich tables whose cells fold or wrap, so that an identifier or a
  date is never cut with an ellipsis, however narrow the terminal;
* stdout is not a terminal (a pipe, a file): tables are plain aligned text, a title line,
  a header line and one line per row, nothing cut and no box; text lines are not wrapped;
* ``--json`` (or ``PGML_FLOW_JSON=1``): JSON on stdout, for every command that prints data.

Rich is imported on first use, so that a command that prints through ``typer.echo`` only
(``pgml-flow db url``) never pays for it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import IO, TYPE_CHECKING, Annotated, Any

import typer

from pgml_flow.app import PgmlFlow

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

JsonOption = Annotated[bool, typer.Option(
    "--json", envvar="PGML_FLOW_JSON", help="Machine-readable output: JSON on stdout.")]


class Output:
    """stdout or stderr: a rich console (made on first use) that prints as described above."""

    def __init__(self, *, stderr: bool = False) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    @property
    def stream(self) -> IO[str]:
        return sys.stderr if self.stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        try:
            return self.stream.isatty()
        except ValueError:  # closed
            return False

    @property
    def console(self) -> Console:
        """The rich console (it follows ``sys.stdout``/``sys.stderr`` when they change)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        from rich.table import Table

        if self.is_terminal:
            for obj in objects:
                if isinstance(obj, Table):
                    obj = fit(obj, self.console)
                self.console.print(obj, **kwargs)
            return
        kwargs.setdefault("soft_wrap", True)
        for obj in objects:
            if isinstance(obj, Table):
                self.stream.write(plain_table(obj) + "\n")
            else:
                self.console.print(obj, **kwargs)

    def print_json(self, value: Any) -> None:
        text = json.dumps(value, indent=2, default=str)
        if self.is_terminal:
            self.console.print_json(text)
        else:
            self.stream.write(text + "\n")


console = Output()
err_console = Output(stderr=True)


def flow() -> PgmlFlow:
    return PgmlFlow()


def print_json(value: Any) -> None:
    console.print_json(value)


def new_table(*headers: str, **options: Any) -> Table:
    """A rich table (``rich.table.Table``'s arguments), imported on first use."""
    from rich.table import Table

    return Table(*headers, **options)


def fit(table: Table, console: Console) -> Any:
    """The table for a terminal of the console's width, with no cell cut short.

    A table too wide for the terminal wraps its cells at spaces, its columns as wide as
    their longest word at least (an identifier or a date is never cut); when the longest
    words cannot stand side by side the table loses its box, and when they still cannot,
    each row is shown as a record, one ``column  value`` line per column (like psql's
    expanded display).  A table without a header (a key/value list) folds long values.
    """
    from rich import box
    from rich.console import Group

    for column in table.columns:
        if column.overflow == "ellipsis":
            column.overflow = "fold"
    if not table.show_header or _allot(table, console.width):
        return table  # a key/value list (no header) folds its long values
    if table.box is not None:
        table.box, table.show_edge, table.padding = box.SIMPLE_HEAD, False, (0, 1, 0, 0)
        if _allot(table, console.width):
            return table
    headers = [_plain(column.header) for column in table.columns]
    records: list[Any] = [_plain(table.title)] if table.title else []
    for number, row in enumerate(zip(*(column.cells for column in table.columns),
                                     strict=True), start=1):
        record = new_table(box=None, show_header=False, padding=(0, 2, 0, 0),
                           title=f"[dim]-- {number} --[/dim]", title_justify="left")
        record.add_column(style="bold", no_wrap=True)
        record.add_column(overflow="fold")
        for header, value in zip(headers, row, strict=True):
            record.add_row(header, value)
        records.append(record)
    return Group(*records)


def _allot(table: Table, width: int) -> bool:
    """Give each column a width between its longest word and its longest line so that the
    table is ``width`` wide or less; False when even the longest words do not fit."""
    from rich.cells import cell_len

    texts = [[_plain(column.header), *(_plain(c) for c in column.cells)]
             for column in table.columns]
    longest = [max((cell_len(t) for t in column), default=1) for column in texts]
    words = [max((cell_len(w) for t in column for w in t.split()), default=1)
             for column in texts]
    extra = table._extra_width + sum(table._get_padding_width(i)
                                     for i in range(len(table.columns)))
    if sum(longest) + extra <= width:
        return True
    if sum(words) + extra > width:
        return False
    widths = list(words)
    spare = width - extra - sum(words)
    # first unwrap the columns that need least, then widen the others evenly
    for i in sorted(range(len(widths)), key=lambda i: longest[i] - words[i]):
        if longest[i] - widths[i] <= spare:
            spare -= longest[i] - widths[i]
            widths[i] = longest[i]
    while spare > 0 and any(w < m for w, m in zip(widths, longest, strict=True)):
        for i in range(len(widths)):
            if spare > 0 and widths[i] < longest[i]:
                widths[i] += 1
                spare -= 1
    for column, allotted in zip(table.columns, widths, strict=True):
        column.width = allotted
    return True


def plain_table(table: Table) -> str:
    """The table as plain aligned text: title, header, one line per row, nothing cut."""
    columns = [[_plain(cell) for cell in column.cells] for column in table.columns]
    headers = [_plain(column.header) for column in table.columns]
    lines = [headers] if table.show_header else []
    lines += [list(row) for row in zip(*columns, strict=True)]
    widths = [max((len(line[i]) for line in lines), default=0) for i in range(len(headers))]
    out = [_plain(table.title)] if table.title else []
    for line in lines:
        cells = [text.rjust(width) if column.justify == "right" else text.ljust(width)
                 for text, width, column in zip(line, widths, table.columns, strict=True)]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _plain(value: Any) -> str:
    from rich.errors import MarkupError
    from rich.text import Text

    if isinstance(value, Text):
        text = value.plain
    elif isinstance(value, str):
        try:
            text = Text.from_markup(value).plain
        except MarkupError:
            text = value
    else:
        text = "" if value is None else str(value)
    return " ".join(text.split("\n"))


def cell(value: Any, spec: str = "") -> str:
    """A table cell: empty for None, minutes for times, else ``format(value, spec)``."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return format(value, spec)
