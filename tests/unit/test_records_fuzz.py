"""Property tests: ingest validation only ever raises RecordError, and is all-or-nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import find, given, settings
from hypothesis import strategies as st

from trailkeeper.errors import RecordError
from trailkeeper.records import (
    MAX_EVENT_BYTES,
    Caller,
    IngestContext,
    is_reserved_source,
    normalize_batch,
    parse_batch,
)

RECEIVED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
CALLERS = [
    Caller(
        "111122223333", "IAMUser", "u", "AIDAU", "arn:aws:iam::111122223333:user/u", "AKIAU", role
    )
    for role in ("administrator", "auditor", "writer", "forwarder")
]
CONTEXTS = st.sampled_from(
    [IngestContext(c, "eu-west-1", "192.0.2.1", "ua", RECEIVED) for c in CALLERS]
)


def json_like(integers: st.SearchStrategy[int]) -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | st.booleans()
        | integers
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=30)
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
        ),
        max_leaves=20,
    )


# Python callers can hand over integers JSON cannot carry; decoded bodies never hold them.
json_values = json_like(st.integers())
decodable_values = json_like(st.integers(-(2**63), 2**64 - 1))

FIELDS = [
    "eventName", "eventSource", "eventTime", "errorCode", "errorMessage", "sourceIPAddress",
    "resources", "requestParameters", "responseElements", "userIdentity", "readOnly",
    "managementEvent", "userAgent", "eventID", "eventVersion", "awsRegion", "additionalEventData",
    "serviceEventDetails", "eventCategory", "eventType",
]  # fmt: skip

# What any caller may send: at most max_event_age (7 days) before the request, 5 minutes after.
times = st.datetimes(
    min_value=datetime(2024, 12, 26, 3, 4, 5), max_value=datetime(2025, 1, 2, 3, 9, 5), timezones=st.just(UTC)
)
# What a forwarder may relay: anything from 1970 on.
relayed_times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2025, 1, 2, 3, 9, 5), timezones=st.just(UTC)
)
# Printable names: a name made only of Unicode whitespace (U+0085, U+2000...) is "empty".
names = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF), min_size=1, max_size=40).filter(
    lambda text: bool(text.strip())
)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {
        "eventName": draw(names),
        "eventSource": draw(st.lists(labels, min_size=2, max_size=4).map(".".join).filter(
            lambda source: not is_reserved_source(source))),
        "eventTime": draw(times).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requestParameters": draw(
            st.none() | st.dictionaries(st.text(max_size=8), decodable_values, max_size=3)
        ),
    }
    if draw(st.booleans()):
        record["errorCode"] = draw(names)
        record["errorMessage"] = draw(st.text(max_size=60))
    if draw(st.booleans()):
        record["resources"] = [{"ARN": draw(names), "type": draw(names)}]
    if draw(st.booleans()):
        record["readOnly"] = draw(st.booleans())
    return record


@st.composite
def mutated_records(draw: st.DrawFn) -> object:
    record: dict[str, Any] = draw(valid_records())
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(FIELDS) | st.text(max_size=8))
        if draw(st.booleans()):
            record.pop(key, None)
        else:
            record[key] = draw(json_values)
    return record


def outcome(records: list[object], ctx: IngestContext) -> list[bytes] | None:
    """The accepted records, or None when the batch was refused with a RecordError."""
    try:
        out = normalize_batch(records, ctx)
    except RecordError as e:
        assert e.index is None or 0 <= e.index < len(records)
        return None
    assert len(out) == len(records)
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, max_size=5), CONTEXTS)
def test_random_json_only_raises_record_error(records: list[object], ctx: IngestContext) -> None:
    outcome(records, ctx)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | decodable_values.map(orjson.dumps))
def test_parse_batch_only_raises_record_error(body: bytes) -> None:
    try:
        records = parse_batch(body)
    except RecordError:
        return
    assert 1 <= len(records) <= 100
    assert all(isinstance(r, dict) for r in records)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(valid_records(), max_size=3),
    mutated_records(),
    st.lists(valid_records(), max_size=3),
    CONTEXTS,
)
def test_mutated_record_is_all_or_nothing(
    before: list[object], mutant: object, after: list[object], ctx: IngestContext
) -> None:
    batch = [*before, mutant, *after]
    try:
        out = normalize_batch(batch, ctx)
    except RecordError as e:
        # Nothing is returned, and the refusal names the mutant, never a valid neighbour.
        assert e.index == len(before), f"record {e.index} blamed, the mutant is {len(before)}: {e}"
        return
    assert len(out) == len(batch)
    for data in out:
        record = orjson.loads(data)
        assert orjson.dumps(record) == data
        assert len(data) <= MAX_EVENT_BYTES


def test_the_mutations_make_both_accepted_and_refused_records() -> None:
    # The all-or-nothing property has a branch for each: the strategy must reach both.
    ctx = IngestContext(CALLERS[2], "eu-west-1", "192.0.2.1", "ua", RECEIVED)
    quick = settings(database=None, max_examples=2000)
    assert outcome([find(mutated_records(), lambda r: outcome([r], ctx) is not None, settings=quick)], ctx)
    assert outcome([find(mutated_records(), lambda r: outcome([r], ctx) is None, settings=quick)], ctx) is None


@settings(max_examples=150, deadline=None)
@given(st.lists(valid_records(), min_size=1, max_size=5), CONTEXTS)
def test_valid_records_round_trip(records: list[dict[str, Any]], ctx: IngestContext) -> None:
    out = normalize_batch(list(records), ctx)
    for original, data in zip(records, out, strict=True):
        stored = orjson.loads(data)
        assert orjson.dumps(stored) == data
        for key, value in original.items():
            assert stored[key] == value
        assert stored["eventID"] and stored["eventVersion"] == "1.11"


@settings(max_examples=100, deadline=None)
@given(relayed_times, st.sampled_from(["Z", "+00:00"]), st.integers(0, 999_999))
def test_time_forms_normalise_to_seconds(when: datetime, zone: str, micros: int) -> None:
    text = when.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}" + zone
    record = {"eventName": "X", "eventSource": "a.b", "eventTime": text, "requestParameters": None}
    ctx = IngestContext(CALLERS[3], "r", "192.0.2.1", "ua", RECEIVED + timedelta(days=1))
    [data] = normalize_batch([record], ctx)
    assert orjson.loads(data)["eventTime"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
