"""Store faults during delivery (storage.faults.FaultyStore): writes that fail before they land
and writes that land but whose acknowledgement is lost are retried until they succeed; every
event reaches the trail once, the failure and the recovery are recorded, and the chain holds."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper.api.operations import OPEN_END, OPEN_START
from trailkeeper.history.base import LookupQuery
from trailkeeper.storage.faults import FaultyStore
from trailkeeper.trails import TrailConfig
from trailkeeper.validate.command import run_validation

CASES = {  # name: (key part, fail after the write landed, times)
    "log put fails before landing": ("/CloudTrail/", False, 3),
    "log put lands, its answer is lost": ("/CloudTrail/", True, 3),
    "digest put fails before landing": ("/CloudTrail-Digest/", False, 2),
    "digest put lands, its answer is lost": ("/CloudTrail-Digest/", True, 2),
}


def _delivered(dest: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(dest.rglob("*.json.gz")):
        if "CloudTrail-Digest" not in str(path):
            ids += [r["eventID"] for r in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]]
    return ids


def _recorded(p: Pipeline, name: str) -> int:
    p.service.index_pending()
    return len(p.service.history.lookup(LookupQuery("EventName", name, OPEN_START, OPEN_END)).records)


@pytest.mark.parametrize("case", list(CASES))
def test_store_faults_lose_nothing_double_nothing_and_validate(tmp_path: Path, case: str) -> None:
    part, after, times = CASES[case]
    dest = tmp_path / "dest"
    with open_pipeline(tmp_path, wrap_store=FaultyStore) as p:
        p.service.create_trail(TrailConfig(name="faulty", bucket="faulty-logs", destination=str(dest), validation=True,
                                           flush_interval_s=1, digest_interval_s=60))
        p.service.start_logging("faulty")
        store = p.service.open_store(p.service.get_trail("faulty"))
        assert isinstance(store, FaultyStore)
        store.fail("put", after=after, key_contains=part, times=times)
        ids: list[str] = []
        for minute in range(3):
            ids += p.ingest([app_event(minute * 5 + i, p.clock.now()) for i in range(5)])
            for _ in range(4):  # a failed step waits for the next round
                p.advance(2)
            p.advance(60)
        p.service.stop_logging("faulty")
        for _ in range(4):
            p.advance(2)
        assert store.struck == times, "every injected fault struck"
        delivered = _delivered(dest)
        assert set(ids) <= set(delivered) and len(delivered) == len(set(delivered))
        assert _recorded(p, "TrailDeliveryFailed") >= 1 and _recorded(p, "TrailDeliveryRecovered") >= 1
        report, _ = run_validation(p.service.config, "faulty", p.clock.now() - timedelta(hours=1), p.clock.now(),
                                   now=p.clock.now() + timedelta(hours=2))
        assert report.ok, [(e.key, e.status, e.message) for e in report.entries if e.status != "VALID"]
        assert report.digests_valid >= 3
