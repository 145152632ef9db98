"""The real pipeline in-process: ingest → spool → history + trail worker → folder → validator."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import orjson
from tests.pipeline import Pipeline, app_event

from trailkeeper.offline import run_validation
from trailkeeper.trails import TrailConfig


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
