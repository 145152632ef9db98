"""The ingest fast path never accepts what the full check refuses (differential, hypothesis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import find, given, settings
from hypothesis import strategies as st

from trailkeeper.records import (
    Caller,
    IngestContext,
    _BatchMemo,
    _finish,
    check_record,
    normalize_batch,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "cloudtrail-samples" / "stratus-red-team"
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
WRITER = Caller("123456789012", "IAMUser", "alice", "AIDAEXAMPLEEXAMPLE01", "arn:aws:iam::123456789012:user/alice",
                "AKIAEXAMPLEEXAMPLE01", "writer")


def _ctx() -> IngestContext:
    return IngestContext(WRITER, "us-east-1", "203.0.113.1", "pytest", NOW, new_event_id=lambda: "fixed-id")


def _base() -> dict[str, Any]:
    return {"eventName": "Login", "eventSource": "app.example.com", "eventTime": "2026-11-27T09:59:00Z",
            "sourceIPAddress": "198.51.100.1", "requestParameters": {"a": 1},
            "resources": [{"ARN": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}]}


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) \
    | st.sampled_from(["", " ", "x" * 1025, "2026-11-27T09:59:00Z", "2026-11-27T10:06:00Z", "2026-11-27T09:59:00+01:00",
                       "app.example.com", "not a host!", "10.0.0.1", "::1", "AWS Internal"])
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["ARN", "type", "accountId", "ARNPrefix", "x"]) | st.text(max_size=4),
                                        inner, max_size=3), max_leaves=8)
field_names = st.sampled_from([
    "eventName", "eventSource", "eventTime", "sourceIPAddress", "userAgent", "errorCode", "errorMessage",
    "requestParameters", "responseElements", "resources", "readOnly", "managementEvent", "eventType",
    "additionalEventData", "serviceEventDetails", "userIdentity", "eventID", "tlsDetails", "eventCategory", "other",
])


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    record = _base()
    for _ in range(draw(st.integers(0, 3))):
        name = draw(field_names)
        if draw(st.booleans()):
            record.pop(name, None)
        else:
            record[name] = draw(values)
    return record


@settings(max_examples=1500, deadline=None)
@given(record=mutated())
def test_fast_path_never_accepts_what_the_full_check_refuses(record: dict[str, Any]) -> None:
    ctx = _ctx()
    fast = _BatchMemo(ctx).plainly_valid(record)
    assert not fast or check_record(record, ctx) == []
    if fast:
        assert _finish(record, ctx, _BatchMemo(ctx)) == _finish(record, ctx)


def test_the_property_reaches_the_fast_path_with_mutated_records() -> None:
    # The property above asserts only on records the fast path takes: the strategy must make
    # such records with real mutations, and records it refuses, or the property checks nothing.
    ctx = _ctx()
    taken = find(mutated(), lambda r: r != _base() and _BatchMemo(ctx).plainly_valid(r),
                 settings=settings(database=None, max_examples=2000))
    assert check_record(taken, ctx) == []
    left = find(mutated(), lambda r: not _BatchMemo(ctx).plainly_valid(r), settings=settings(database=None, max_examples=2000))
    assert left != _base()


def test_fast_path_takes_the_common_records() -> None:
    assert _BatchMemo(_ctx()).plainly_valid(_base())


def test_fast_path_agrees_on_real_cloudtrail_samples() -> None:
    forwarder = IngestContext(Caller(**{**WRITER.__dict__, "role": "forwarder"}), "us-east-1", "203.0.113.1", "pytest",
                              NOW + timedelta(days=3650), new_event_id=lambda: "fixed-id")
    checked = 0
    for path in sorted(SAMPLES.glob("*.json")):
        for record in json.loads(path.read_text()):
            stripped = {k: v for k, v in record.items()
                        if k not in ("eventID", "eventVersion", "recipientAccountId", "awsRegion", "userIdentity")}
            fast = _BatchMemo(forwarder).plainly_valid(stripped)
            full = check_record(stripped, forwarder) == []
            assert not fast or full
            if full:
                normalize_batch([stripped], forwarder)
            checked += 1
    assert checked > 100


def test_event_ids_are_unique_time_ordered_rfc9562_version_7() -> None:
    import uuid

    from trailkeeper.records import _new_event_id

    ids = [_new_event_id() for _ in range(3000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:300]:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    heads = [int(text[:8] + text[9:13], 16) for text in ids]
    assert heads == sorted(heads), "IDs must be ordered by their millisecond prefix"


def test_fields_come_out_in_cloudtrail_order_with_unknown_fields_last() -> None:
    import orjson

    record = {"zeta": 1, "resources": [{"ARN": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}],
              "eventTime": "2026-11-27T09:59:00.250+00:00", "alpha": 2, "eventSource": "app.example.com",
              "eventName": "GetThing", "requestParameters": None}
    [body] = normalize_batch([record], _ctx())
    keys = list(orjson.loads(body))
    assert keys == ["eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
                    "sourceIPAddress", "userAgent", "requestParameters", "eventID", "readOnly", "resources",
                    "eventType", "managementEvent", "recipientAccountId", "eventCategory", "metadata", "zeta",
                    "alpha"]
    assert orjson.loads(body)["eventTime"] == "2026-11-27T09:59:00Z"
    assert orjson.loads(body)["readOnly"] is True


def test_lookup_has_agrees_with_lookup_pairs_on_real_samples() -> None:
    from trailkeeper.history.attributes import lookup_has, lookup_pairs

    checked = 0
    for path in sorted(SAMPLES.glob("*.json")):
        for record in json.loads(path.read_text()):
            pairs = lookup_pairs(record)
            for attribute, value in pairs:
                assert lookup_has(record, attribute, value)
                assert not lookup_has(record, attribute, value + "x")
                checked += 1
    assert checked > 1000
