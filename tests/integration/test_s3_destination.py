"""A real SeaweedFS bucket with Object Lock as a trail destination, on the real pipeline:
create-only locked writes, validation, and the tamperings only a versioned store shows
(catalogue rows 20-21: a delete marker over a locked object, an overwritten key)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.pipeline import Pipeline, app_event, open_pipeline
from tests.seaweed import SeaweedS3

from trailkeeper.storage.s3 import S3Settings
from trailkeeper.trails import TrailConfig
from trailkeeper.validate import Code, Status, ValidationReport
from trailkeeper.validate.command import run_validation

BUCKET = "worm-trail"


@dataclass
class Built:
    pipeline: Pipeline
    client: Any
    ids: list[str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("s3dest")
    with SeaweedS3(tmp / "seaweed") as s3:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        settings = S3Settings(endpoint_url=s3.endpoint, region="us-east-1", access_key_id=s3.access_key,
                              secret_access_key=s3.secret_key)
        with open_pipeline(tmp, s3=settings) as p:
            p.service.create_trail(TrailConfig(name="worm", bucket=BUCKET, destination=f"s3://{BUCKET}",
                                               validation=True, flush_interval_s=1, digest_interval_s=60,
                                               object_lock_days=1))
            p.service.start_logging("worm")
            ids: list[str] = []
            for _ in range(4):
                ids += p.ingest([app_event(i, p.clock.now()) for i in range(20)])
                p.advance(2)
                p.advance(58)
            p.service.stop_logging("worm")
            p.advance(3)
            yield Built(p, client, ids)


def _keys(client: Any, digest: bool) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="AWSLogs/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return sorted(k for k in keys if ("CloudTrail-Digest" in k) == digest)


def _validate(b: Built) -> ValidationReport:
    now = b.pipeline.clock.now()
    report, _ = run_validation(b.pipeline.service.config, "worm", now - timedelta(hours=1), now,
                               now=now + timedelta(hours=2))
    return report


def _invalid(report: ValidationReport) -> list[tuple[str, Code | None]]:
    return [(e.key, e.code) for e in report.entries if e.status is Status.INVALID]


def test_every_file_is_locked_in_compliance_mode_and_the_trail_validates(built: Built) -> None:
    logs, digests = _keys(built.client, False), _keys(built.client, True)
    assert len(logs) >= 4 and len(digests) >= 4
    for key in logs + digests:
        retention = built.client.get_object_retention(Bucket=BUCKET, Key=key)["Retention"]
        assert retention["Mode"] == "COMPLIANCE"
    report = _validate(built)
    assert report.ok, _invalid(report)


def test_locked_files_cannot_be_deleted_by_version(built: Built) -> None:
    key = _keys(built.client, False)[0]
    version = built.client.head_object(Bucket=BUCKET, Key=key)["VersionId"]
    with pytest.raises(Exception) as refused:
        built.client.delete_object(Bucket=BUCKET, Key=key, VersionId=version)
    assert "AccessDenied" in str(refused.value)


def test_create_only_writes_refuse_other_bytes_on_the_real_store(built: Built) -> None:
    store = built.pipeline.service.open_store(built.pipeline.service.trails.get("worm"))
    key = _keys(built.client, False)[0]
    with pytest.raises(Exception) as refused:
        store.put_exclusive(key, b"other bytes", {})
    assert "exists" in str(refused.value)
    store.put_exclusive(key, store.get(key).data, {})  # an identical retry succeeds


def test_delete_marker_then_overwrite_are_reported(built: Built) -> None:
    # Rows 20 and 21 on the real store; run in this order because neither can be undone
    # (the locked versions stay; that is the point of WORM).
    log_key = _keys(built.client, False)[1]
    built.client.delete_object(Bucket=BUCKET, Key=log_key)  # no version id: only a delete marker
    digest_key = _keys(built.client, True)[1]
    original = built.client.get_object(Bucket=BUCKET, Key=digest_key)
    built.client.put_object(Bucket=BUCKET, Key=digest_key, Body=original["Body"].read(),
                            Metadata=original["Metadata"])  # same bytes, a second version
    found = _invalid(_validate(built))
    assert (log_key, Code.DELETE_MARKER) in found, found
    assert (digest_key, Code.OVERWRITTEN) in found, found
    assert not [k for k, c in found if k == log_key and c is Code.LOG_MISSING]


def test_the_probe_ran_when_the_trail_was_created_and_status_calls_the_bucket_worm(built: Built) -> None:
    from trailkeeper.api.operations import CLOUDTRAIL, get_trail_status

    worm = built.pipeline.service.worm[BUCKET]
    assert worm.verified is True, worm.detail
    status = get_trail_status(CLOUDTRAIL.context(built.pipeline.service), None, {"Name": "worm"})  # type: ignore[arg-type]
    assert status["WormVerified"] is True


def test_a_bucket_without_object_lock_is_not_called_worm(tmp_path: Path) -> None:
    from trailkeeper.api.operations import OPEN_END, OPEN_START
    from trailkeeper.history.base import LookupQuery

    with SeaweedS3(tmp_path / "seaweed") as s3:
        s3.client().create_bucket(Bucket="plain-trail")
        settings = S3Settings(endpoint_url=s3.endpoint, region="us-east-1", access_key_id=s3.access_key,
                              secret_access_key=s3.secret_key)
        with open_pipeline(tmp_path, s3=settings) as p:
            p.service.create_trail(TrailConfig(name="plain", bucket="plain-trail", destination="s3://plain-trail",
                                               validation=True, flush_interval_s=1, digest_interval_s=60,
                                               object_lock_days=1))
            worm = p.service.worm["plain-trail"]
            assert worm.verified is False and "versioning" in worm.detail.lower()
            p.service.index_pending()
            alarm = p.service.history.lookup(LookupQuery("EventName", "StorageProbeFailed", OPEN_START, OPEN_END))
            assert alarm.records and alarm.records[0]["serviceEventDetails"]["bucket"] == "plain-trail"
