"""Events in and out: record (files of any length, in batches) and lookup."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from trailkeeper._internal.output import (
    print_json,
    print_message,
    print_note,
    print_table,
    stderr_console,
)
from trailkeeper.cli.parsing import ATTRIBUTE, TIME, load_records_placed
from trailkeeper.cli.root import (
    _client_options,
    _json_option,
    _make_client,
    main,
)
from trailkeeper.errors import ConfigError, TrailkeeperError
from trailkeeper.records import MAX_BATCH_RECORDS

# Below this many records an upload is quick enough that a progress bar is only noise.
PROGRESS_BAR_MIN_RECORDS = 1000

if TYPE_CHECKING:
    from trailkeeper.client import ApiError, Client


@main.command()
@_client_options
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    default="-",
    help="Records: a JSON array, {\"Records\": [...]} or NDJSON ('-' = stdin, the default).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH_RECORDS),
    default=MAX_BATCH_RECORDS,
    show_default=True,
)
@click.option(
    "--idempotency-key-prefix",
    help="Send batch i with Idempotency-Key PREFIX-i, so a re-run stores nothing twice.",
)
@_json_option
@click.pass_context
def record(
    ctx: click.Context,
    file: str,
    batch_size: int,
    idempotency_key_prefix: str | None,
    as_json: bool,
) -> None:
    """Send audit records to the server (PutEvents), in batches of any number of records.

    Each batch carries an idempotency key made from the file and the batch's own records
    (or --idempotency-key-prefix and its number), so running the same command again, also
    after fixing a refused record, stores no batch twice."""
    source = "stdin" if file == "-" else file
    data = sys.stdin.buffer.read() if file == "-" else _read_file(Path(file))
    records, places = load_records_placed(data, source)
    origin = "stdin" if file == "-" else str(Path(file).resolve())
    client = _make_client(ctx)
    event_ids = _send_records(client, records, places, batch_size, idempotency_key_prefix, origin)
    if as_json:
        print_json({"Count": len(event_ids), "EventIds": event_ids})
        return
    batches = -(-len(records) // batch_size)
    print_message(f"recorded {len(event_ids)} events in {batches} batch(es)")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}", hint="check the --file path") from e


def _send_records(client: Client, records: Sequence[dict[str, Any]], places: Sequence[str], batch_size: int,
                  prefix: str | None, origin: str) -> list[str]:
    from trailkeeper.client import ApiError

    starts = range(0, len(records), batch_size)
    progress = _RecordProgress(len(records))
    event_ids: list[str] = []
    with progress:
        for number, start in enumerate(starts):
            batch = records[start:start + batch_size]
            key = f"{prefix}-{number}" if prefix else _batch_key(origin, number, batch)
            try:
                event_ids.extend(client.put_events(batch, idempotency_key=key))
            except ApiError as e:
                raise _partly_stored(e, len(event_ids), places, start) from e
            progress.advance(len(batch))
    return event_ids


def _batch_key(origin: str, number: int, batch: Sequence[dict[str, Any]]) -> str:
    """Same file, same batch, same records: same key (a fixed record changes only its batch's)."""
    digest = hashlib.sha256(origin.encode() + b"\0" + orjson.dumps(batch)).hexdigest()[:40]
    return f"record-{number}-{digest}"


def _partly_stored(error: ApiError, stored: int, places: Sequence[str], start: int) -> TrailkeeperError:
    where = f" at {places[start + error.index]}" if error.index is not None else ""
    refused = TrailkeeperError(
        f"{stored} record(s) stored; the batch from {places[start]} was refused{where}: {error.message}",
        "fix that record and run the same command again: batches already stored are not stored twice")
    return refused


class _RecordProgress:
    """A progress bar on stderr for long uploads to a terminal; nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _RecordProgress:
        if self.total > PROGRESS_BAR_MIN_RECORDS and sys.stdout.isatty():
            from rich.progress import Progress

            self._bar = Progress(console=stderr_console(), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("recording", total=self.total)
        return self

    def advance(self, count: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, count)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


@main.command()
@_client_options
@click.option(
    "--attribute", "attributes", multiple=True, type=ATTRIBUTE, help="e.g. Username=alice."
)
@click.option("--start-time", type=TIME, help="ISO 8601 or epoch seconds.")
@click.option("--end-time", type=TIME, help="ISO 8601 or epoch seconds.")
@click.option("--max-results", type=click.IntRange(min=1), help="Events per page.")
@click.option("--next-token", help="Continue from a previous page.")
@click.option("--all", "fetch_all", is_flag=True, help="Follow NextToken and print every page.")
@_json_option
@click.pass_context
def lookup(
    ctx: click.Context,
    attributes: tuple[tuple[str, str], ...],
    start_time: datetime | None,
    end_time: datetime | None,
    max_results: int | None,
    next_token: str | None,
    fetch_all: bool,
    as_json: bool,
) -> None:
    """Search the event history (LookupEvents)."""
    client = _make_client(ctx)
    if fetch_all:
        events = list(client.iter_lookup_events(attributes, start_time, end_time, max_results))
        token = None
    else:
        page = client.lookup_events(attributes, start_time, end_time, max_results, next_token)
        events, token = list(page.get("Events", [])), page.get("NextToken")
    if as_json:
        print_json({"Events": events, "NextToken": token})
        return
    columns = ["EventTime", "Received", "EventName", "Username", "EventSource", "EventId"]
    print_table(columns, [{**e, "Received": _received(e)} for e in events], title=f"{len(events)} event(s)")
    if token:
        print_note(f"more events: repeat with --next-token {token} (or use --all)")


def _received(event: dict[str, Any]) -> str:
    """When the server received the record (`metadata.ingestionTime`): eventTime is the writer's word."""
    try:
        record = orjson.loads(event.get("CloudTrailEvent") or "{}")
    except orjson.JSONDecodeError:
        return ""
    metadata = record.get("metadata") if isinstance(record, dict) else None
    received = metadata.get("ingestionTime") if isinstance(metadata, dict) else None
    return received if isinstance(received, str) else ""
