"""Event history: the LookupEvents index over spooled records (HistoryStore protocol)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from trailkeeper.errors import HistoryError

LOOKUP_ATTRIBUTES = (
    "EventId",
    "EventName",
    "ReadOnly",
    "Username",
    "ResourceType",
    "ResourceName",
    "EventSource",
    "AccessKeyId",
)
MAX_LOOKUP_RESULTS = 50
MAX_ATTRIBUTE_VALUE_CHARS = 2000

INVALID_ATTRIBUTES = "InvalidLookupAttributesException"
INVALID_TIME_RANGE = "InvalidTimeRangeException"
INVALID_MAX_RESULTS = "InvalidMaxResultsException"
INVALID_NEXT_TOKEN = "InvalidNextTokenException"


class LookupRequestError(HistoryError):
    """A LookupEvents request is invalid; `code` is the CloudTrail exception name."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class LookupQuery:
    """One LookupEvents page request; `start` and `end` are inclusive, timezone-aware."""

    attribute_key: str | None
    attribute_value: str | None
    start: datetime
    end: datetime
    max_results: int = MAX_LOOKUP_RESULTS
    next_token: str | None = None


@dataclass(frozen=True)
class LookupPage:
    """Full records (JSON bytes), newest first; `next_token` is None on the last page.

    `records[i]` is `events[i]` decoded and `times[i]` its eventTime in epoch seconds. A store
    decodes every candidate anyway (to rule out index hash collisions), so the API shapes its
    answer from these instead of parsing each record a second time.
    """

    events: list[bytes]
    next_token: str | None
    records: list[dict[str, Any]]
    times: list[int]


class HistoryStore(Protocol):
    def index(self, entries: Sequence[tuple[int, bytes]],
              on_poison: Callable[[int, bytes, str], None] | None = None) -> int:
        """Index (seq, record JSON) pairs in seq order; seqs <= last_indexed_seq() are skipped.
        A record that cannot be indexed goes to `on_poison(seq, body, reason)` (which keeps it
        durably) and is skipped; the count of those is returned. Without it, such a record raises."""
        ...

    def last_indexed_seq(self) -> int:
        """Highest seq indexed, or -1 when nothing has been indexed."""
        ...

    def lookup(self, query: LookupQuery) -> LookupPage: ...

    def purge(self, older_than: datetime) -> int:
        """Remove events whose eventTime is before `older_than`; returns how many."""
        ...

    def count(self) -> int: ...

    def close(self) -> None: ...


def check_query(query: LookupQuery) -> None:
    """Raise LookupRequestError with the CloudTrail code for an invalid request."""
    key, value = query.attribute_key, query.attribute_value
    if (key is None) != (value is None):
        raise LookupRequestError(
            INVALID_ATTRIBUTES, "give both AttributeKey and AttributeValue, or neither"
        )
    if key is not None and key not in LOOKUP_ATTRIBUTES:
        raise LookupRequestError(
            INVALID_ATTRIBUTES, f"AttributeKey {key!r} is not one of {', '.join(LOOKUP_ATTRIBUTES)}"
        )
    if value is not None and not 1 <= len(value) <= MAX_ATTRIBUTE_VALUE_CHARS:
        raise LookupRequestError(
            INVALID_ATTRIBUTES,
            f"AttributeValue must be 1 to {MAX_ATTRIBUTE_VALUE_CHARS} characters, got {len(value)}",
        )
    if key == "ReadOnly" and value not in ("true", "false"):
        raise LookupRequestError(
            INVALID_ATTRIBUTES, f"ReadOnly must be 'true' or 'false', got {value!r}"
        )
    if query.start.tzinfo is None or query.end.tzinfo is None:
        raise LookupRequestError(INVALID_TIME_RANGE, "StartTime and EndTime must carry a time zone")
    if query.start > query.end:
        raise LookupRequestError(
            INVALID_TIME_RANGE,
            f"StartTime {query.start.isoformat()} is after EndTime {query.end.isoformat()}",
        )
    if isinstance(query.max_results, bool) or not 1 <= query.max_results <= MAX_LOOKUP_RESULTS:
        raise LookupRequestError(
            INVALID_MAX_RESULTS,
            f"MaxResults must be 1 to {MAX_LOOKUP_RESULTS}, got {query.max_results}",
        )
