"""The tamper catalogue again, this time on a trail written by the real delivery pipeline.

The scenario table (tests/unit/tamper_scenarios.py) only needs the facts of a trail; here
those facts are read back from what the service wrote: its digests, its keys, its
logging history. Each scenario is one named, data-driven case.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper import digest as digestfmt
from trailkeeper._internal.gzipio import gunzip_strict
from trailkeeper.clock import parse_iso_seconds
from trailkeeper.offline import trail_info
from trailkeeper.storage.folder import FolderStore
from trailkeeper.storage.memory import MemoryStore
from trailkeeper.trails import TrailConfig
from trailkeeper.validate import validate_trail
from trailkeeper.validate_report import exit_code

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import tamper_scenarios as ts


@dataclass
class Built:
    facts: ts.TrailFacts
    objects: ts.Objects


def _minute(p: Pipeline, events: int) -> None:
    if events:
        p.ingest([app_event(i, p.clock.now()) for i in range(events)])
    p.advance(2)
    p.advance(58)


def _build(p: Pipeline, dest: Path) -> Built:
    p.service.create_trail(TrailConfig(name="tamper", bucket="tamper-bucket", destination=str(dest),
                                       validation=True, flush_interval_s=1, digest_interval_s=60))
    p.service.start_logging("tamper")
    for events in (3, 4, 0, 5, 2):  # one quiet minute: an empty digest
        _minute(p, events)
    p.service.stop_logging("tamper")
    p.advance(3)
    p.advance(120)  # a logged gap: stopped for two minutes
    p.service.start_logging("tamper")
    for events in (2, 3, 4, 2, 3, 1):
        _minute(p, events)
    store = FolderStore(dest, "tamper-bucket")
    trail = p.service.trails.get("tamper")
    info = trail_info(p.service.trails, trail, p.service.account.account_id, p.service.account.region)
    digests = []
    for obj in store.list("AWSLogs/"):
        if "CloudTrail-Digest" not in obj.key:
            continue
        doc = digestfmt.parse_digest(gunzip_strict(store.get(obj.key).data))
        digests.append(ts.DigestFact(obj.key, parse_iso_seconds(doc.start_time), parse_iso_seconds(doc.end_time),
                                     doc.fingerprint, tuple(f.s3_object for f in doc.log_files), doc.is_starting))
    digests.sort(key=lambda d: d.end)
    # "now" is chosen so the newest digest is not due yet and the two before it are.
    now = digests[-1].end + info.digest_interval + info.delivery_allowance - timedelta(seconds=1)
    keys = p.service.keys.all_public_keys()
    facts = ts.TrailFacts(info, keys, digests, digests[0].start, now, now, p.service.keys.sign, [])
    return Built(facts, ts.snapshot(store))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("pipeline-tamper")
    with open_pipeline(tmp, key_rotation="4m") as p:
        yield _build(p, tmp / "dest")


def _run(built: Built, objects: ts.Objects, keys: list | None = None) -> object:  # type: ignore[type-arg]
    store = MemoryStore("tamper-bucket")
    ts.restore(objects, store)
    f = built.facts
    return validate_trail(store, f.trail, keys or f.public_keys, f.start, f.end, f.now)


def _copy(built: Built) -> ts.Objects:
    return {k: ts.Obj(v.data, dict(v.metadata)) for k, v in built.objects.items()}


def test_pipeline_trail_has_what_the_scenarios_need(built: Built) -> None:
    f = built.facts
    assert len({d.fingerprint for d in f.digests}) >= 2, "no key rotation happened"
    assert sum(d.starting for d in f.digests) == 2, "expected one restart"
    assert any(not d.log_keys for d in f.digests), "expected an empty digest"
    assert f.run_of(3) >= 1
    report = _run(built, _copy(built))
    assert report.ok, [e for e in report.entries if e.status != "VALID"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("scenario", ts.SCENARIOS, ids=[s.name for s in ts.SCENARIOS])
def test_tamper_scenario_on_pipeline_trail(built: Built, scenario: ts.Scenario) -> None:
    f = built.facts
    keys = scenario.keys(list(f.public_keys), f) if scenario.keys else f.public_keys
    objects = _copy(built)
    scenario.tamper(objects, f)
    report = _run(built, objects, keys)
    assert ts.counts(report.codes()) == ts.nonzero(scenario.expected(f))  # type: ignore[attr-defined]
    assert exit_code(report) == 1  # type: ignore[arg-type]
