"""No poison records: what ingest accepts, every consumer reads back the same.

Whatever eventTime a caller sends (any year from 0001 to 9999, any accepted form), the record
is either refused naming `eventTime`, or stored in the one canonical form that each consumer
of the spool parses back to the same values: the history indexer (its epoch and lookup keys),
a trail worker (selection, the log file, the event-time bounds it puts in the digest), the
validator (those bounds read back from the digest) and the CloudWatch Logs message forwarding
will send (the record re-serialised byte for byte, its time in epoch milliseconds).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper import digest as digestfmt
from trailkeeper.clock import iso_seconds, parse_iso_seconds
from trailkeeper.delivery import _event_time_bounds, build_log_file
from trailkeeper.errors import RecordError
from trailkeeper.history.sqlite import _KeyCache, _rows_for
from trailkeeper.records import (
    EARLIEST_EVENT_TIME,
    MAX_FUTURE_SKEW,
    Caller,
    IngestContext,
    normalize_batch,
)
from trailkeeper.trails import DEFAULT_SELECTORS, selects

RECEIVED = datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)
CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)
CALLERS = {
    role: Caller("111122223333", "IAMUser", "u", "AIDAU", "arn:aws:iam::111122223333:user/u", "AKIAU", role)
    for role in ("writer", "forwarder")
}

any_time = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),
                        timezones=st.just(UTC))
recent = st.datetimes(min_value=datetime(2026, 11, 28, 7), max_value=datetime(2026, 12, 5, 7, 5),
                      timezones=st.just(UTC))


@st.composite
def event_times(draw: st.DrawFn) -> str:
    when = draw(any_time | recent)
    fraction = draw(st.sampled_from(["", ".5", ".250", ".123456789"]))
    zone = draw(st.sampled_from(["Z", "+00:00"]))
    return f"{when.year:04d}-{when:%m-%dT%H:%M:%S}{fraction}{zone}"


def _accepted(event_time: str, role: str) -> bytes | None:
    record = {"eventName": "Probe", "eventSource": "app.example.com", "eventTime": event_time,
              "requestParameters": {"k": "v"}}
    ctx = IngestContext(CALLERS[role], "eu-west-1", "192.0.2.1", "ua", RECEIVED)
    try:
        [body] = normalize_batch([record], ctx)
    except RecordError as e:
        assert e.path == "eventTime", e
        return None
    return body


def _every_consumer_reads(body: bytes) -> None:
    record: dict[str, Any] = orjson.loads(body)
    text = record["eventTime"]
    assert CANONICAL.fullmatch(text)
    when = parse_iso_seconds(text)
    assert iso_seconds(when) == text
    # The history indexer: the same epoch, every lookup attribute present.
    events, keys, ids = _rows_for([(7, body)], _KeyCache())
    assert events == [(7, int(when.timestamp()), body)] and ids and len(keys) >= 4
    # A trail worker: selected, embedded unchanged in the log file, its time bounds readable.
    assert selects(DEFAULT_SELECTORS, record)
    assert orjson.loads(build_log_file([body]))["Records"] == [record]
    assert _event_time_bounds([record]) == (when, when)
    # The validator: those bounds, written into a digest and read back.
    entry = digestfmt.LogFileEntry("b", "k", "0" * 64, "0" * 64, when, when)
    doc = digestfmt.parse_digest(digestfmt.build_digest("111122223333", RECEIVED, RECEIVED + timedelta(hours=1),
                                                        "b", "d", "f" * 32, [entry], None))
    assert doc.newest_event_time == doc.oldest_event_time == text
    assert doc.log_files[0].newest_event_time == text
    # Forwarding to a log group: the record re-serialises byte for byte, its time in epoch ms >= 0.
    assert orjson.dumps(record) == body
    assert int(when.timestamp() * 1000) >= 0


@settings(max_examples=300, deadline=None)
@given(event_times(), st.sampled_from(["writer", "forwarder"]))
def test_every_accepted_record_reads_back_identically_in_every_consumer(event_time: str, role: str) -> None:
    body = _accepted(event_time, role)
    when = datetime.fromisoformat(event_time).replace(microsecond=0)
    earliest = EARLIEST_EVENT_TIME if role == "forwarder" else RECEIVED - timedelta(days=7)
    assert (body is not None) == (earliest <= when <= RECEIVED + MAX_FUTURE_SKEW), (event_time, role)
    if body is not None:
        _every_consumer_reads(body)


def test_the_years_that_stopped_the_trail_are_refused_not_spooled() -> None:
    for text in ("0001-01-01T00:00:00Z", "0500-06-15T12:00:00.250Z", "0999-12-31T23:59:59Z", "1000-01-01T00:00:00Z"):
        for role in ("writer", "forwarder"):
            assert _accepted(text, role) is None


def test_iso_seconds_always_writes_four_year_digits() -> None:
    assert iso_seconds(datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)) == "0999-12-31T23:59:59Z"
    assert iso_seconds(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"
    assert parse_iso_seconds("0999-12-31T23:59:59Z") == datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC)
