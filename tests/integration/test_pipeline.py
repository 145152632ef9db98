"""The real pipeline in-process: ingest → spool → history + trail worker → folder → validator."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import orjson
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper.api.operations import OPEN_END, OPEN_START
from trailkeeper.history.base import LookupQuery
from trailkeeper.trails import TrailConfig
from trailkeeper.validate.command import run_validation


def _trail(pipeline: Pipeline, tmp_path: Path, name: str = "main") -> TrailConfig:
    config = TrailConfig(name=name, bucket="audit-bucket", destination=str(tmp_path / "dest"), validation=True,
                         flush_interval_s=1, digest_interval_s=60)
    pipeline.service.create_trail(config)
    pipeline.service.start_logging(name)
    return config


def _delivered_records(dest: Path) -> list[dict[str, object]]:
    out = []
    for path in sorted((dest).rglob("*.json.gz")):
        if "CloudTrail-Digest" in str(path):
            continue
        out.extend(orjson.loads(gzip.decompress(path.read_bytes()))["Records"])
    return out


def test_events_reach_log_files_exactly_once_and_validate(pipeline: Pipeline, tmp_path: Path) -> None:
    _trail(pipeline, tmp_path)
    ids: list[str] = []
    for _minute in range(4):
        now = pipeline.clock.now()
        ids += pipeline.ingest([app_event(i, now) for i in range(25)])
        pipeline.advance(2)
        pipeline.advance(61)
    pipeline.service.stop_logging("main")
    pipeline.advance(1)
    pipeline.advance(2)
    records = _delivered_records(tmp_path / "dest")
    delivered = [r["eventID"] for r in records]
    assert set(ids) <= set(delivered)
    assert len(delivered) == len(set(delivered))
    report, _ = run_validation(pipeline.service.config, "main", pipeline.clock.now() - timedelta(hours=1),
                               pipeline.clock.now(), now=pipeline.clock.now() + timedelta(hours=2))
    assert report.ok, "\n".join(f"{e.kind} {e.key} {e.status} {e.code} {e.message}" for e in report.entries if e.status != "VALID")
    assert report.digests_valid >= 5


def test_a_trail_stopped_before_its_worker_ran_still_seals_what_it_delivers(pipeline: Pipeline, tmp_path: Path) -> None:
    # Seen under load: start, record and stop all came before the worker's first step; the chain
    # never started and the delivered log file had no digest at all.
    _trail(pipeline, tmp_path)
    ids = pipeline.ingest([app_event(0, pipeline.clock.now())])
    pipeline.service.stop_logging("main")
    pipeline.advance(1)
    pipeline.advance(3)
    state = pipeline.service.get_trail("main").state
    assert not state.is_logging and state.chain is not None
    assert set(ids) <= {r["eventID"] for r in _delivered_records(tmp_path / "dest")}
    report, _ = run_validation(pipeline.service.config, "main", pipeline.clock.now() - timedelta(hours=1),
                               pipeline.clock.now(), now=pipeline.clock.now() + timedelta(hours=2))
    assert report.ok and report.digests_valid == 1 and report.logs_valid >= 1, report.entries


def test_signing_key_rotation_keeps_the_chain_valid(tmp_path: Path) -> None:
    with open_pipeline(tmp_path, key_rotation="2m") as p:
        _trail(p, tmp_path)
        for _ in range(6):
            p.ingest([app_event(0, p.clock.now())])
            p.advance(2)
            p.advance(59)
        p.service.stop_logging("main")
        p.advance(3)
        fingerprints = {k.fingerprint for k in p.service.keys.all_public_keys()}
        assert len(fingerprints) >= 3, "keys did not rotate on schedule"
        used = {orjson.loads(gzip.decompress(path.read_bytes()))["digestPublicKeyFingerprint"]
                for path in (tmp_path / "dest").rglob("*CloudTrail-Digest*.json.gz")}
        assert len(used) >= 3, "digests were not signed by the rotated keys"
        report, _ = run_validation(p.service.config, "main", p.clock.now() - timedelta(hours=1), p.clock.now(),
                                   now=p.clock.now() + timedelta(hours=2))
        assert report.ok, [e for e in report.entries if e.status != "VALID"]


def test_history_purge_enforces_retention_and_is_recorded(tmp_path: Path) -> None:
    with open_pipeline(tmp_path, retention="1d") as p:
        old = p.clock.now()
        p.ingest([app_event(1, old, "Ancient")])
        p.advance(1)
        p.clock.advance(timedelta(days=2))
        p.ingest([app_event(2, p.clock.now(), "Recent")])
        removed = p.service.purge_history()
        p.advance(1)
        assert removed >= 1
        page = p.service.history.lookup(LookupQuery("EventName", "Ancient", OPEN_START, OPEN_END))
        assert page.events == []
        assert p.service.history.lookup(LookupQuery("EventName", "Recent", OPEN_START, OPEN_END)).events
        [purge] = p.service.history.lookup(LookupQuery("EventName", "PurgeEventHistory", OPEN_START, OPEN_END)).events
        assert orjson.loads(purge)["serviceEventDetails"]["eventsRemoved"] == removed


def test_event_selectors_choose_what_a_trail_delivers(pipeline: Pipeline, tmp_path: Path) -> None:
    from dataclasses import replace

    from trailkeeper.trails import validate_selectors

    config = _trail(pipeline, tmp_path)
    pipeline.service.update_trail(replace(config, selectors=validate_selectors([{"ReadWriteType": "WriteOnly"}])))
    now = pipeline.clock.now()
    reads = pipeline.ingest([app_event(i, now, "GetThing") for i in range(3)])
    writes = pipeline.ingest([app_event(i, now, "PutThing") for i in range(3)])
    pipeline.advance(0)  # the worker sees the events ...
    pipeline.advance(2)  # ... and delivers once the flush interval has passed
    delivered = {r["eventID"] for r in _delivered_records(tmp_path / "dest")}
    assert set(writes) <= delivered and not set(reads) & delivered


def test_a_full_batch_is_delivered_before_the_flush_interval(tmp_path: Path) -> None:
    with open_pipeline(tmp_path, max_batch_events=50) as p:
        p.service.create_trail(TrailConfig(name="big", bucket="big-bucket", destination=str(tmp_path / "dest"),
                                           flush_interval_s=60, digest_interval_s=3600))
        p.service.start_logging("big")
        now = p.clock.now()
        for _ in range(3):
            p.ingest([app_event(i, now) for i in range(40)])
        p.service.pump()  # no time passes
        files = [f for f in (tmp_path / "dest").rglob("*.json.gz")]
        assert len(files) == 2 and len(_delivered_records(tmp_path / "dest")) == 100
        p.advance(61)  # the remaining 20 wait for the flush interval
        assert len(_delivered_records(tmp_path / "dest")) == 120
