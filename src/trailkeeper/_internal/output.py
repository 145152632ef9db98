"""Printing helpers of the command-line interface: JSON documents and rich tables."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
import orjson

from trailkeeper._internal.text import visible
from trailkeeper.clock import iso_seconds

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

# rich is imported where it is used: it costs ~40 ms at start-up, which scripted commands
# printing JSON or plain lines (validate in CI jobs) should not pay.

# API answers carry times as epoch seconds; these key suffixes mark them for display.
_TIME_KEY_SUFFIXES = ("Time", "Date", "Timestamp")


def print_json(document: object) -> None:
    """Print one JSON document to stdout, keys in the order the API gave them."""
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def stdout_console() -> Console:
    # A fresh console per call binds to the current sys.stdout (pytest and CliRunner swap it).
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def epoch_to_iso(value: object) -> str:
    """Render an epoch-seconds number as YYYY-MM-DDTHH:MM:SSZ; other values as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return iso_seconds(datetime.fromtimestamp(value, UTC))


def format_cell(key: str, value: object) -> str:
    """Text for one table cell: times readable, missing values as '-', nested values as JSON,
    control characters shown as escapes (what a record says must not drive the terminal)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if key.endswith(_TIME_KEY_SUFFIXES) and isinstance(value, int | float):
        return epoch_to_iso(value)
    if isinstance(value, dict | list):
        return visible(orjson.dumps(value).decode())
    return visible(str(value))


def _cell(text: str) -> Text:
    # A Text, not a str: rich would read "[red]..." in a record as its own markup.
    from rich.text import Text

    return Text(text)


def print_table(
    columns: Sequence[str], rows: Iterable[Mapping[str, Any]], title: str | None = None
) -> None:
    """One row per mapping, showing the named keys as columns; when the rows would not fit the
    terminal's width, one block of `Column: value` lines per row instead (folded cells of a
    too-narrow table are unreadable)."""
    from rich.table import Table

    cells = [[format_cell(column, row.get(column)) for column in columns] for row in rows]
    console = stdout_console()
    if _natural_width(columns, cells) > console.width:
        _print_blocks(columns, cells, title)
        return
    table = Table(title=title and visible(title), show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row_cells in cells:
        table.add_row(*(_cell(text) for text in row_cells))
    console.print(table)


def _natural_width(columns: Sequence[str], cells: Sequence[Sequence[str]]) -> int:
    widths = [max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)]
    return sum(widths) + 3 * len(columns) + 1  # a cell's padding and the borders


def _print_blocks(columns: Sequence[str], cells: Sequence[Sequence[str]], title: str | None) -> None:
    if title:
        click.echo(visible(title))
    label = max(len(column) for column in columns)
    for number, row_cells in enumerate(cells):
        if number or title:
            click.echo("")
        for column, text in zip(columns, row_cells, strict=True):
            click.echo(f"{column.ljust(label)}  {text}")


def print_mapping(document: Mapping[str, Any], title: str | None = None) -> None:
    """A two-column Field/Value table of one mapping; nested mappings and lists of mappings
    are spelled out as dotted fields (`Trails[0].Name`), not dumped as JSON."""
    from rich.table import Table

    table = Table(title=title and visible(title), show_header=True)
    table.add_column("Field", style="bold")
    table.add_column("Value", overflow="fold")
    for key, value in _flatten(document):
        table.add_row(_cell(visible(key)), _cell(format_cell(key, value)))
    stdout_console().print(table)


def _flatten(document: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                yield from _flatten(item, f"{name}[{i}].")
        else:
            yield name, value


def print_message(text: str) -> None:
    """A plain line for humans on stdout."""
    click.echo(visible(text))


def print_note(text: str) -> None:
    """A remark for humans on stderr, so that stdout stays parseable."""
    click.echo(visible(text), err=True)


def print_error(text: str) -> None:
    """`error: ...` on stderr, escaped like every other human-readable line."""
    click.echo(f"error: {visible(text)}", err=True)
