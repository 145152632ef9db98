"""Trust in the record, over HTTP against a real server: eventTimes that once stopped the trail,
sources only trailkeeper writes, the receipt time on every record, real AWS records relayed as
AWS wrote them, and damaged spool records quarantined without stopping anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.harness import Server, running_server, wait_until

from trailkeeper.client import ApiError, Client
from trailkeeper.records import RESERVED_EVENT_SOURCES
from trailkeeper.spool import Spool

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "cloudtrail-samples" / "stratus-red-team"
POISON_TIMES = ["0001-01-01T00:00:00Z", "0500-06-15T12:00:00.250Z", "0999-12-31T23:59:59Z", "1000-01-01T00:00:00Z"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from running_server(tmp_path_factory.mktemp("provenance") / "data")


def _client(server: Server, name: str, role: str) -> Client:
    server.cli_json("user", "create", name, "--role", role)
    key = server.cli_json("key", "create", name)
    return server.client(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def writer(server: Server) -> Client:
    return _client(server, "wanda", "writer")


@pytest.fixture(scope="module")
def forwarder(server: Server) -> Client:
    return _client(server, "felix", "forwarder")


def _event(name: str, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"eventName": name, "eventSource": "app.example.com", "eventTime": now,
            "sourceIPAddress": "198.51.100.4", "requestParameters": {"x": 1}, **extra}


def _found(server: Server, key: str, value: str) -> list[dict[str, Any]]:
    events = server.client().iter_lookup_events([(key, value)], datetime(2010, 1, 1, tzinfo=UTC))
    return [json.loads(e["CloudTrailEvent"]) for e in events]


def _refused(client: Client, records: list[dict[str, Any]]) -> ApiError:
    with pytest.raises(ApiError) as info:
        client.put_events(records)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize("when", POISON_TIMES)
def test_times_that_stopped_the_trail_are_refused_and_ingest_keeps_flowing(
        server: Server, writer: Client, forwarder: Client, when: str) -> None:
    for client in (writer, forwarder):
        assert _refused(client, [_event("Poison", eventTime=when)]).path == "eventTime"
    [event_id] = writer.put_events([_event(f"AfterPoison{when[:4]}")])
    assert wait_until(lambda: [e["eventID"] for e in _found(server, "EventId", event_id)] == [event_id], 5)


@pytest.mark.parametrize("source", sorted(RESERVED_EVENT_SOURCES))
def test_a_writer_naming_a_reserved_source_is_refused_and_recorded(
        server: Server, writer: Client, source: str) -> None:
    error = _refused(writer, [_event("StopLogging", eventSource=source)])
    assert error.path == "eventSource" and error.index == 0

    def refusal() -> list[dict[str, Any]]:
        return [r for r in _found(server, "Username", "wanda") if r["eventName"] == "PutEvents"
                and r.get("errorCode") == "InvalidRecord"
                and r["requestParameters"]["reservedEventSources"][0]["eventSource"] == source]

    assert wait_until(lambda: len(refusal()) == 1, 5)
    assert refusal()[0]["requestParameters"]["reservedEventSources"][0]["eventName"] == "StopLogging"


def test_a_forwarders_relayed_record_is_marked(server: Server, forwarder: Client) -> None:
    relayed = _event("StopLogging", eventSource="cloudtrail.amazonaws.com",
                     userIdentity={"type": "IAMUser", "principalId": "AIDAX", "userName": "mallory"})
    [event_id] = forwarder.put_events([relayed])
    assert wait_until(lambda: len(_found(server, "EventId", event_id)) == 1, 5)
    [stored] = _found(server, "EventId", event_id)
    assert stored["additionalEventData"]["forwardedBy"]["userName"] == "felix"
    own = [r for r in _found(server, "EventSource", "cloudtrail.amazonaws.com") if r["eventName"] == "LookupEvents"]
    assert own and all("forwardedBy" not in (r.get("additionalEventData") or {}) for r in own)


def test_a_writers_event_eight_days_old_is_refused(writer: Client, forwarder: Client) -> None:
    old = (datetime.now(UTC) - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _refused(writer, [_event("Late", eventTime=old)]).path == "eventTime"
    assert forwarder.put_events([_event("Late", eventTime=old)])  # a relay of history is not bounded


def test_real_samples_are_accepted_through_a_forwarder_as_aws_wrote_them(server: Server, forwarder: Client) -> None:
    originals = [r for path in sorted(SAMPLES.glob("*.json")) for r in json.loads(path.read_text())]
    ids = [i for start in range(0, len(originals), 100) for i in forwarder.put_events(originals[start:start + 100])]
    assert len(ids) == len(originals) == 310
    assert wait_until(lambda: len(_found(server, "EventId", ids[-1])) == 1, 5)
    [stored] = _found(server, "EventId", ids[-1])
    original = originals[-1]
    assert stored["metadata"]["originalEventID"] == original["eventID"]
    assert {k: stored[k] for k in original if k not in ("eventID", "additionalEventData")} == \
        {k: v for k, v in original.items() if k not in ("eventID", "additionalEventData")}


def test_every_record_carries_the_time_the_server_received_it(server: Server, writer: Client) -> None:
    writer.put_events([_event("Stamped")])
    records = [json.loads(e["CloudTrailEvent"]) for e in server.client().iter_lookup_events(
        start_time=datetime.now(UTC) - timedelta(days=30))]
    assert len(records) > 50
    missing = [r["eventName"] for r in records if not r.get("metadata", {}).get("ingestionTime")]
    assert missing == []
    shown = server.cli("lookup", "--attribute", "EventName=Stamped").stdout
    assert "received" in shown.lower()


def test_damaged_spool_records_are_quarantined_and_everything_after_flows(server: Server, writer: Client) -> None:
    """A spool from an older release (3-digit years) or damaged on disk, found at start."""
    assert server.terminate() == 0
    legacy = json.dumps({**_event("LegacyYear"), "eventTime": "999-12-31T23:59:59Z"}).encode()
    with Spool(server.data_dir / "spool") as spool:
        bad = spool.append([legacy, b"\xff not json"])
    server.start()
    [after] = writer.put_events([_event("AfterDamage")])
    assert wait_until(lambda: len(_found(server, "EventId", after)) == 1, 10)
    # The indexer can read neither; the event-rules consumer offers the legacy object to the
    # rules and sets the unreadable one aside.
    expected = {("history-indexer", bad.first_seq), ("history-indexer", bad.first_seq + 1),
                ("event-rules", bad.first_seq + 1)}

    def reported() -> set[tuple[str, int]]:
        return {(r["serviceEventDetails"]["consumer"], r["serviceEventDetails"]["seq"])
                for r in _found(server, "EventName", "RecordQuarantined")}

    assert wait_until(lambda: reported() == expected, 10), reported()
    assert server.client().get_server_status()["Quarantined"] == {"history-indexer": 2, "event-rules": 1}
    kept = sorted((server.data_dir / "quarantine" / "history-indexer").glob("*.json"))
    assert [json.loads(p.read_text())["seq"] for p in kept] == [bad.first_seq, bad.first_seq + 1]
