"""No record stops the trail: a record a consumer cannot process is quarantined, recorded and
counted, and every record after it is still indexed and delivered.

The damaged records are appended straight to the spool, below ingest's checks, as a spool
written by an older release (3-digit years) or damaged on disk (not JSON) would hold them.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper.history.base import LookupQuery
from trailkeeper.quarantine import Quarantine
from trailkeeper.trails import TrailConfig

LEGACY = orjson.dumps({**app_event(0, datetime(2026, 1, 1)), "eventTime": "999-12-31T23:59:59Z",
                       "eventName": "LegacyYear", "eventID": "legacy-1"})
NOT_JSON = b'{"eventName": "Torn", \xff\x00'
NOT_OBJECT = b"[1, 2, 3]"


def _lookup(p: Pipeline, key: str | None, value: str | None) -> list[dict[str, Any]]:
    now = p.clock.now()
    page = p.service.history.lookup(LookupQuery(key, value, now - timedelta(days=400), now + timedelta(days=1), 50))
    return [orjson.loads(r) for r in page.events]


def _delivered(dest: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(dest.rglob("*.json.gz")):
        if "CloudTrail-Digest" not in str(path):
            found.extend(orjson.loads(gzip.decompress(path.read_bytes()))["Records"])
    return found


def test_damaged_records_are_quarantined_and_the_rest_flows(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with open_pipeline(tmp_path) as p:
        p.service.create_trail(TrailConfig(name="poison", bucket="poison-logs", destination=str(dest), flush_interval_s=1))
        p.service.start_logging("poison")
        p.ingest([app_event(i, p.clock.now(), "Before") for i in range(3)])
        bad = p.service.spool.append([LEGACY, NOT_JSON, NOT_OBJECT])
        p.ingest([app_event(i, p.clock.now(), "After") for i in range(3)])
        p.advance(2)
        p.advance(2)

        seqs = list(range(bad.first_seq, bad.first_seq + 3))
        entries = Quarantine(p.service.config.quarantine_dir).entries()
        by_consumer = {(e.consumer, e.seq) for e in entries}
        # The indexer cannot read any of the three; the trail delivers the legacy record (an
        # object: its bytes go into the log as acknowledged) and sets the other two aside, as
        # does the event-rules consumer (which offers the legacy object to the rules).
        assert by_consumer == {("history-indexer", s) for s in seqs} | {
            (consumer, s) for consumer in ("trail-poison", "event-rules") for s in seqs[1:]}
        assert all(e.reason for e in entries)
        kept = orjson.loads(next(e.path for e in entries if e.seq == seqs[1]).read_bytes())
        assert kept["recordBase64"] and kept["consumer"] in ("history-indexer", "trail-poison", "event-rules")

        assert len(_lookup(p, "EventName", "After")) == 3  # the records after the damage are searchable
        delivered = [r.get("eventName") for r in _delivered(dest)]
        assert delivered.count("After") == 3 and delivered.count("Before") == 3 and "LegacyYear" in delivered

        reported = _lookup(p, "EventName", "RecordQuarantined")
        details = sorted((r["serviceEventDetails"]["consumer"], r["serviceEventDetails"]["seq"]) for r in reported)
        assert details == sorted(by_consumer)  # each recorded once
        assert p.service.report_quarantine() == 0
        assert p.service.quarantine.counts() == {"history-indexer": 3, "trail-poison": 2, "event-rules": 2}


def test_a_report_lost_in_a_crash_is_made_at_the_next_start_exactly_once(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as p:
        bad = p.service.spool.append([NOT_JSON])
        # As if the process died after the entry was kept but before the event was made durable.
        p.service.quarantine.put("history-indexer", bad.first_seq, NOT_JSON, "not JSON", p.clock.now())
        assert p.service.report_quarantine() == 1
        p.service.pump()  # the other consumers meet the record themselves: each reports its own
        assert p.service.report_quarantine() == 0
        reported = _lookup(p, "EventName", "RecordQuarantined")
        assert sorted(r["serviceEventDetails"]["consumer"] for r in reported) == ["event-rules", "history-indexer"]
