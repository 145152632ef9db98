"""The tamper catalogue's trail, written by the real delivery pipeline, and its facts read back.

Shared by the integration catalogue run (tests/integration/test_tamper_pipeline.py) and the
comparison with the unmodified AWS CLI (tests/e2e/test_validate_vs_awscli.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from tests.pipeline import Pipeline, app_event

from trailkeeper import digest as digestfmt
from trailkeeper._internal.gzipio import gunzip_strict
from trailkeeper.clock import parse_iso_seconds
from trailkeeper.storage.folder import FolderStore
from trailkeeper.trails import TrailConfig
from trailkeeper.validate.command import trail_info

sys.path.insert(0, str(Path(__file__).resolve().parent / "unit"))
import tamper_scenarios as ts

TRAIL = "tamper"
BUCKET = "tamper-bucket"
# Longer than the whole trail: validated at once, every window is younger than its allowance.
YOUNG_ALLOWANCE = timedelta(minutes=20)


@dataclass
class Built:
    facts: ts.TrailFacts
    objects: ts.Objects

    def copy(self) -> ts.Objects:
        return {k: ts.Obj(v.data, dict(v.metadata)) for k, v in self.objects.items()}


def _minute(p: Pipeline, events: int) -> None:
    if events:
        p.ingest([app_event(i, p.clock.now()) for i in range(events)])
    p.advance(2)
    p.advance(58)


def build(p: Pipeline, dest: Path, stop_at_end: bool = False) -> Built:
    """Two logging periods of 1-minute digests (an empty one, a logged two-minute gap); run
    the pipeline with key_rotation="4m" for a key rotation inside the trail."""
    p.service.create_trail(TrailConfig(name=TRAIL, bucket=BUCKET, destination=str(dest),
                                       validation=True, flush_interval_s=1, digest_interval_s=60))
    p.service.start_logging(TRAIL)
    for events in (3, 4, 0, 5, 2):  # one quiet minute: an empty digest
        _minute(p, events)
    p.service.stop_logging(TRAIL)
    p.advance(3)
    p.advance(120)  # a logged gap: stopped for two minutes
    p.service.start_logging(TRAIL)
    for events in (2, 3, 4, 2, 3, 1):
        _minute(p, events)
    if stop_at_end:
        p.service.stop_logging(TRAIL)
        p.advance(3)
    store = FolderStore(dest, BUCKET)
    trail = p.service.trails.get(TRAIL)
    info = trail_info(p.service.trails, trail, p.service.account.account_id, p.service.account.region)
    digests = []
    for obj in store.list("AWSLogs/"):
        if "CloudTrail-Digest" not in obj.key:
            continue
        doc = digestfmt.parse_digest(gunzip_strict(store.get(obj.key).data))
        digests.append(ts.DigestFact(obj.key, parse_iso_seconds(doc.start_time), parse_iso_seconds(doc.end_time),
                                     doc.fingerprint, tuple(f.s3_object for f in doc.log_files), doc.is_starting))
    digests.sort(key=lambda d: d.end)
    # "now" is chosen so the newest digest is not due yet and the ones before it are.
    now = digests[-1].end + info.delivery_allowance - timedelta(seconds=1)
    keys = p.service.keys.all_public_keys()
    facts = ts.TrailFacts(info, keys, digests, digests[0].start, now, now, p.service.keys.sign, [])
    return Built(facts, ts.snapshot(store))


def young(built: Built) -> Built:
    """The same trail validated five seconds after its newest digest, with an allowance longer
    than the trail: every window is younger than its allowance, so age proves nothing."""
    f = built.facts
    now = f.digests[-1].end + timedelta(seconds=5)
    trail = replace(f.trail, delivery_allowance=YOUNG_ALLOWANCE)
    assert all(d.end + trail.delivery_allowance > now for d in f.digests)
    return Built(replace(f, trail=trail, end=now, now=now), built.objects)


def due(built: Built) -> Built:
    """The same trail validated once every window, the newest included, is past its allowance."""
    f = built.facts
    now = f.digests[-1].end + f.trail.delivery_allowance + f.trail.digest_interval
    return Built(replace(f, end=now, now=now), built.objects)
