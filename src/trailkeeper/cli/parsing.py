"""Command-line values and record files, parsed (pure functions and click types around them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
import orjson

from trailkeeper.errors import RecordError

# -- value parsers ---------------------------------------------------------------

_EPOCH_RE = re.compile(r"-?\d+(\.\d+)?")
_DURATION_RE = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str) -> datetime:
    """ISO 8601 (with Z or an offset; no offset means UTC), a date alone, or epoch seconds."""
    text = text.strip()
    if _EPOCH_RE.fullmatch(text):
        return datetime.fromtimestamp(float(text), UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2024-05-01T12:00:00Z, 2024-05-01) "
            "or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_duration(text: str) -> int:
    """Seconds in `90`, `30s`, `1m`, `2h` or `1d`; must be positive."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use e.g. 90, 30s, 1m or 2h")
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return seconds


def parse_attribute(text: str) -> tuple[str, str]:
    """`Key=Value` of a LookupEvents attribute; the value may itself contain '='."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text!r} is not Key=Value (e.g. Username=alice, EventName=PutObject)")
    return key.strip(), value


def _input_error(message: str, index: int | None = None) -> RecordError:
    error = RecordError(message, index=index)
    error.hint = 'give a JSON array, {"Records": [...]}, or one JSON object per line'
    return error


def load_records(data: bytes, source: str) -> list[dict[str, Any]]:
    """Records of a JSON array, a `{"Records": [...]}` document, or NDJSON."""
    return load_records_placed(data, source)[0]


def load_records_placed(data: bytes, source: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The records and where each stands in the input ("line 7 of f.ndjson", "record 151 of
    f.json"), so that a refusal names the place in the file, not in a batch."""
    text = data.strip()
    if not text:
        raise _input_error(f"{source} holds no records")
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        return _load_ndjson(text, source), [f"line {n} of {source}" for n in lines]
    records = _load_document(text, source)
    return records, [f"record {i} of {source}" for i in range(1, len(records) + 1)]


def _load_document(text: bytes, source: str) -> list[dict[str, Any]]:
    document = orjson.loads(text)
    if isinstance(document, dict) and "Records" in document:
        document = document["Records"]
    elif isinstance(document, dict):
        document = [document]
    if not isinstance(document, list):
        raise _input_error(f"{source} is JSON but neither an array nor an object")
    for index, record in enumerate(document):
        if not isinstance(record, dict):
            raise _input_error(f"is a {type(record).__name__}, not a JSON object", index)
    if not document:
        raise _input_error(f"{source} holds no records")
    return document


def _load_ndjson(text: bytes, source: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise _input_error(f"line {number} of {source} is not valid JSON: {e}") from e
        if not isinstance(record, dict):
            raise _input_error(f"line {number} of {source} is not a JSON object")
        records.append(record)
    return records


if TYPE_CHECKING:
    _ParamBase = click.ParamType[Any]
else:
    # click < 8.4 has no subscriptable ParamType; pyproject allows click >= 8.1.
    _ParamBase = click.ParamType


class _ParsedParam(_ParamBase):
    """A click type around one of the pure parsers above (bad values are usage errors)."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


TIME = _ParsedParam("time", parse_time)
DURATION = _ParsedParam("duration", parse_duration)
ATTRIBUTE = _ParsedParam("key=value", parse_attribute)
