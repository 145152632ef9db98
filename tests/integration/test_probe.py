"""The Object Lock conformance probe (spec §5.3) against a real SeaweedFS 4.48 and against moto.

Measured: SeaweedFS 4.48 passes every step (its older releases did not block DELETE, which
is why the probe exists); moto 5.2.5 lets a COMPLIANCE retention be shortened (step 3), so
the probe refuses to call it WORM.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from tests.seaweed import SeaweedS3, free_ports

from trailkeeper.errors import StorageError
from trailkeeper.storage.probe import PROBE_ROOT, ProbeReport, run_probe
from trailkeeper.storage.s3 import S3Settings, s3_client

REQUIRED = [
    "1 versioning Enabled and Object Lock on",
    "2 locked version: delete refused",
    "3 locked version: shorter retention refused",
    "4 delete without version: delete marker only",
    "5 legal hold: delete refused",
    "8 If-None-Match overwrite: 412",
]
DEFAULT_STEP = "6 default retention: delete refused"
GOVERNANCE_STEP = "7 GOVERNANCE: bypass allowed (informational)"
DEFAULT_RULE = {
    "ObjectLockEnabled": "Enabled",
    "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as s3:
        yield s3


@pytest.fixture
def raw(server: SeaweedS3) -> Any:
    return server.client(retries=0)


def outcome(report: ProbeReport) -> dict[str, tuple[bool, bool]]:
    """step name -> (passed, required)"""
    return {step.name: (step.passed, step.required) for step in report.steps}


def remaining(client: Any, bucket: str) -> list[tuple[str, bool]]:
    """(key, is delete marker) of every version left, without SeaweedFS folder placeholders."""
    listed = client.list_object_versions(Bucket=bucket)
    entries = [(v["Key"], False) for v in listed.get("Versions", [])]
    entries += [(m["Key"], True) for m in listed.get("DeleteMarkers", [])]
    return sorted(e for e in entries if not e[0].endswith("/"))


def lock_bucket(client: Any, name: str, default_retention: bool = False) -> str:
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    if default_retention:
        client.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=DEFAULT_RULE)
    return name


def test_seaweedfs_lock_bucket_is_worm(raw: Any) -> None:
    bucket = lock_bucket(raw, "probe-lock")
    report = run_probe(raw, bucket, datetime.now(UTC))
    steps = outcome(report)
    assert report.worm, [s for s in report.steps if not s.passed]
    assert all(steps[name] == (True, True) for name in REQUIRED)
    assert steps[DEFAULT_STEP] == (False, False)  # no default rule: not run, not required
    assert steps[GOVERNANCE_STEP] == (True, False)
    assert "not run" in next(s.detail for s in report.steps if s.name == DEFAULT_STEP)
    assert "403 AccessDenied" in report.steps[1].detail


def test_probe_writes_only_under_its_prefix_and_leaves_only_locked_versions(raw: Any) -> None:
    bucket = lock_bucket(raw, "probe-cleanup")
    raw.put_object(Bucket=bucket, Key="AWSLogs/keep.json.gz", Body=b"x")
    report = run_probe(raw, bucket, datetime.now(UTC))
    assert report.prefix.startswith(f"{PROBE_ROOT}/") and report.prefix.endswith("/")
    left = remaining(raw, bucket)
    probe_left = [
        key.removeprefix(report.prefix) for key, marker in left if key != "AWSLogs/keep.json.gz"
    ]
    assert all(key.startswith(report.prefix) for key, _ in left if key != "AWSLogs/keep.json.gz")
    # The three COMPLIANCE versions (retain-until now + 1 day) stay; the delete marker, the
    # released legal hold, the GOVERNANCE and the create-only objects are gone.
    assert probe_left == ["locked", "marker", "shorten"]
    assert all(not marker for _, marker in left)
    assert (
        sorted(entry.split()[0].removeprefix(report.prefix) for entry in report.leftovers)
        == probe_left
    )


def test_seaweedfs_default_retention_step(raw: Any) -> None:
    bucket = lock_bucket(raw, "probe-default", default_retention=True)
    report = run_probe(raw, bucket, datetime.now(UTC))
    assert report.worm
    assert outcome(report)[DEFAULT_STEP] == (True, True)
    assert all(step.passed for step in report.steps)


def test_plain_bucket_is_not_worm_and_probe_cleans_up(raw: Any) -> None:
    raw.create_bucket(Bucket="probe-plain")
    report = run_probe(raw, "probe-plain", datetime.now(UTC))
    steps = outcome(report)
    assert not report.worm
    assert steps["1 versioning Enabled and Object Lock on"] == (False, True)
    assert "versioning is off" in report.steps[0].detail
    assert "InvalidRequest" in report.steps[1].detail
    assert steps["8 If-None-Match overwrite: 412"] == (True, True)
    assert report.leftovers == [] and remaining(raw, "probe-plain") == []


def test_versioned_bucket_without_object_lock_is_not_worm(raw: Any) -> None:
    raw.create_bucket(Bucket="probe-versioned")
    raw.put_bucket_versioning(
        Bucket="probe-versioned", VersioningConfiguration={"Status": "Enabled"}
    )
    report = run_probe(raw, "probe-versioned", datetime.now(UTC))
    assert not report.worm
    assert (
        not report.steps[0].passed and "ObjectLockConfigurationNotFound" in report.steps[0].detail
    )


def test_unreachable_endpoint_raises() -> None:
    (port,) = free_ports(1)
    client = s3_client(
        S3Settings(
            endpoint_url=f"http://127.0.0.1:{port}",
            region="us-east-1",
            access_key_id="a",
            secret_access_key="b",
            connect_timeout=1,
            read_timeout=1,
            max_attempts=1,
        )
    )
    with pytest.raises(StorageError, match="cannot reach the S3 endpoint"):
        run_probe(client, "any-bucket", datetime.now(UTC))


@pytest.fixture
def moto_client() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1")


def test_moto_allows_shortening_compliance_retention(moto_client: Any) -> None:
    report = run_probe(moto_client, lock_bucket(moto_client, "probe-moto"), datetime.now(UTC))
    failed = [step for step in report.steps if not step.passed]
    assert [step.name for step in failed] == [
        "3 locked version: shorter retention refused",
        DEFAULT_STEP,
    ]
    assert failed[0].detail == "the store allowed it"
    assert not report.worm


def test_moto_default_retention_step(moto_client: Any) -> None:
    bucket = lock_bucket(moto_client, "probe-moto-default", default_retention=True)
    report = run_probe(moto_client, bucket, datetime.now(UTC))
    assert outcome(report)[DEFAULT_STEP] == (True, True)
    assert [s.name for s in report.steps if not s.passed] == [
        "3 locked version: shorter retention refused"
    ]


class IgnoresLocks:
    """A store that accepts Object Lock settings and ignores them, the failure the spec
    reports for older SeaweedFS releases (seaweedfs#7194): built on moto by dropping them."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kwargs: Any) -> Any:
        for name in ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus"):
            kwargs.pop(name, None)
        return self._client.put_object(**kwargs)

    def put_object_legal_hold(self, **kwargs: Any) -> Any:
        return {}

    def put_object_retention(self, **kwargs: Any) -> Any:
        return {}


def test_store_that_ignores_locks_is_not_worm(moto_client: Any) -> None:
    bucket = lock_bucket(moto_client, "probe-ignores")
    report = run_probe(IgnoresLocks(moto_client), bucket, datetime.now(UTC))
    steps = outcome(report)
    assert not report.worm
    assert steps["2 locked version: delete refused"] == (False, True)
    assert steps["5 legal hold: delete refused"] == (False, True)
    assert report.steps[1].detail == "the store allowed it"
    assert steps["3 locked version: shorter retention refused"] == (False, True)
    assert steps["4 delete without version: delete marker only"] == (True, True)
    assert steps["8 If-None-Match overwrite: 412"] == (True, True)
    assert report.leftovers == [] and remaining(moto_client, bucket) == []
