"""The SeaweedFS fixture works, and the S3 semantics trailkeeper will rely on hold on it.

Facts recorded here (SeaweedFS 4.48, `weed mini`), for the object-lock storage backend:
- PutObject with `If-None-Match: *` on an existing key → 412 PreconditionFailed, whether the
  bytes are the same or different (no idempotent "same bytes succeed" on the server side);
  the stored object is unchanged. In a versioned bucket the same 412 applies while a current
  version exists; after a delete marker the key counts as absent and the put succeeds.
- CreateBucket(ObjectLockEnabledForBucket=True) turns versioning on ("Enabled") and
  GetObjectLockConfiguration answers ObjectLockEnabled=Enabled (no default retention).
- PutObject with COMPLIANCE mode + RetainUntilDate returns a VersionId; GetObjectRetention and
  HeadObject report the mode and date.
- DeleteObject without VersionId → 204 with DeleteMarker=true and the marker's VersionId; GET
  then answers 404 NoSuchKey; GET with the old VersionId still returns the bytes.
- DeleteObject of the locked version → 403 AccessDenied (also with BypassGovernanceRetention),
  and shortening its COMPLIANCE retention → 403 AccessDenied. AWS answers the delete with 403
  AccessDenied too. A version without retention in the same bucket deletes normally (204).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from tests.seaweed import SeaweedS3, seaweed

__all__ = ["seaweed"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def s3(shared: SeaweedS3) -> Any:
    return shared.client(retries=0)


def _error(e: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Code"]


def _retain(days: int = 1) -> dict[str, Any]:
    return {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=days)}


def test_put_and_get_round_trip_bytes_and_metadata(s3: Any) -> None:
    s3.create_bucket(Bucket="plain-bucket")
    body = bytes(range(256)) * 64
    s3.put_object(Bucket="plain-bucket", Key="AWSLogs/1/CloudTrail/a+b c.json.gz", Body=body,
                  Metadata={"signature": "ab12"})
    got = s3.get_object(Bucket="plain-bucket", Key="AWSLogs/1/CloudTrail/a+b c.json.gz")
    assert got["Body"].read() == body
    assert got["Metadata"] == {"signature": "ab12"}
    listed = s3.list_objects_v2(Bucket="plain-bucket", Prefix="AWSLogs/1/")
    assert [o["Key"] for o in listed["Contents"]] == ["AWSLogs/1/CloudTrail/a+b c.json.gz"]


@pytest.mark.parametrize(("bucket", "second"), [("inm-same", b"first"), ("inm-different", b"other")])
def test_if_none_match_refuses_an_existing_key_with_412(s3: Any, bucket: str, second: bytes) -> None:
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=second, IfNoneMatch="*")
    assert _error(e) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_object_lock_bucket_is_versioned_and_reports_lock(s3: Any) -> None:
    s3.create_bucket(Bucket="lock-config", ObjectLockEnabledForBucket=True)
    assert s3.get_bucket_versioning(Bucket="lock-config")["Status"] == "Enabled"
    config = s3.get_object_lock_configuration(Bucket="lock-config")["ObjectLockConfiguration"]
    assert config["ObjectLockEnabled"] == "Enabled"


def test_compliance_locked_version_survives_delete(s3: Any) -> None:
    s3.create_bucket(Bucket="lock-delete", ObjectLockEnabledForBucket=True)
    put = s3.put_object(Bucket="lock-delete", Key="log.json.gz", Body=b"audit", **_retain())
    version = put["VersionId"]
    assert s3.get_object_retention(Bucket="lock-delete", Key="log.json.gz")["Retention"]["Mode"] == "COMPLIANCE"

    marker = s3.delete_object(Bucket="lock-delete", Key="log.json.gz")
    assert marker["DeleteMarker"] is True and marker["VersionId"] != version
    with pytest.raises(ClientError) as gone:
        s3.get_object(Bucket="lock-delete", Key="log.json.gz")
    assert _error(gone) == (404, "NoSuchKey")
    assert s3.get_object(Bucket="lock-delete", Key="log.json.gz", VersionId=version)["Body"].read() == b"audit"

    for bypass in (False, True):
        with pytest.raises(ClientError) as refused:
            s3.delete_object(Bucket="lock-delete", Key="log.json.gz", VersionId=version,
                             BypassGovernanceRetention=bypass)
        assert _error(refused) == (403, "AccessDenied")
    with pytest.raises(ClientError) as shorten:
        s3.put_object_retention(Bucket="lock-delete", Key="log.json.gz", VersionId=version,
                                Retention={"Mode": "COMPLIANCE",
                                           "RetainUntilDate": datetime.now(UTC) + timedelta(hours=1)})
    assert _error(shorten) == (403, "AccessDenied")
    assert s3.get_object(Bucket="lock-delete", Key="log.json.gz", VersionId=version)["Body"].read() == b"audit"


def test_unlocked_version_in_lock_bucket_can_be_deleted(s3: Any) -> None:
    s3.create_bucket(Bucket="lock-unlocked", ObjectLockEnabledForBucket=True)
    version = s3.put_object(Bucket="lock-unlocked", Key="tmp", Body=b"x")["VersionId"]
    deleted = s3.delete_object(Bucket="lock-unlocked", Key="tmp", VersionId=version)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.list_object_versions(Bucket="lock-unlocked").get("Versions", []) == []


def test_if_none_match_in_versioned_bucket_follows_the_current_version(s3: Any) -> None:
    s3.create_bucket(Bucket="lock-inm", ObjectLockEnabledForBucket=True)
    s3.put_object(Bucket="lock-inm", Key="k", Body=b"a", IfNoneMatch="*", **_retain())
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="lock-inm", Key="k", Body=b"a", IfNoneMatch="*", **_retain())
    assert _error(e) == (412, "PreconditionFailed")
    s3.delete_object(Bucket="lock-inm", Key="k")
    # Behind a delete marker the key is absent, as on AWS: a create-exclusive put succeeds.
    s3.put_object(Bucket="lock-inm", Key="k", Body=b"b", IfNoneMatch="*", **_retain())
    assert s3.get_object(Bucket="lock-inm", Key="k")["Body"].read() == b"b"


def test_stop_and_start_keep_data_and_ports(seaweed: SeaweedS3) -> None:
    client = seaweed.client(retries=0)
    client.create_bucket(Bucket="outage")
    client.put_object(Bucket="outage", Key="k", Body=b"kept")
    endpoint = seaweed.endpoint
    assert seaweed.startup_s < 10

    assert seaweed.stop() == 0
    with pytest.raises(EndpointConnectionError):
        client.get_object(Bucket="outage", Key="k")
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", seaweed.ports["s3.port"])) != 0

    seaweed.start()
    assert seaweed.endpoint == endpoint
    assert seaweed.client().get_object(Bucket="outage", Key="k")["Body"].read() == b"kept"


def test_wrong_secret_is_refused(shared: SeaweedS3, tmp_path: Path) -> None:
    wrong = SeaweedS3(tmp_path / "unused", access_key=shared.access_key, secret_key="not-the-secret")
    wrong.ports = shared.ports
    with pytest.raises(ClientError) as e:
        wrong.client(retries=0).list_buckets()
    assert _error(e) == (403, "SignatureDoesNotMatch")
