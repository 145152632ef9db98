"""S3Store against a real SeaweedFS (and moto): the ObjectStore contract, create-only writes,
Object Lock retention on every put, version listing, and outages as StorageError."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from tests.contract.test_object_store import (
    keys,
    test_bad_keys_refused,
    test_bucket_name,
    test_date_partitioned_prefix,
    test_different_bytes_refused,
    test_directory_like_prefix_is_not_an_object,
    test_identical_retry_succeeds,
    test_list_does_not_return_metadata,
    test_listing_is_bytewise_order,
    test_listing_order_is_utf8_not_utf16,
    test_missing_object,
    test_prefix_and_start_after,
    test_put_then_get_and_head,
)
from tests.seaweed import SeaweedS3, seaweed

from trailkeeper.clock import FrozenClock
from trailkeeper.errors import ConfigError, ObjectExistsError, ObjectNotFoundError, StorageError
from trailkeeper.storage import s3 as s3_module
from trailkeeper.storage.base import ObjectVersion, VersionedStore
from trailkeeper.storage.destinations import parse_destination
from trailkeeper.storage.s3 import (
    ObjectLockPolicy,
    S3Settings,
    S3Store,
    s3_client,
    s3_metadata,
)

# The shared ObjectStore contract (tests/contract), run here against S3Store. Left out:
# metadata-name case preservation, which S3 cannot do (names are folded to lowercase);
# S3Store refuses non-lowercase names instead (test_uppercase_metadata_names_refused).
__all__ = [
    "seaweed",
    "test_bad_keys_refused",
    "test_bucket_name",
    "test_date_partitioned_prefix",
    "test_different_bytes_refused",
    "test_directory_like_prefix_is_not_an_object",
    "test_identical_retry_succeeds",
    "test_list_does_not_return_metadata",
    "test_listing_is_bytewise_order",
    "test_listing_order_is_utf8_not_utf16",
    "test_missing_object",
    "test_prefix_and_start_after",
    "test_put_then_get_and_head",
]

CONTRACT_BUCKET = "bucket-a"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3(tmp_path_factory.mktemp("seaweed")) as s3:
        s3.client().create_bucket(Bucket=CONTRACT_BUCKET)
        yield s3


@pytest.fixture
def raw(server: SeaweedS3) -> Any:
    return server.client(retries=0)


def _empty(client: Any, bucket: str) -> None:
    listed = client.list_object_versions(Bucket=bucket)
    for entry in listed.get("Versions", []) + listed.get("DeleteMarkers", []):
        client.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])


@pytest.fixture(params=["seaweed", "moto"])
def store(request: pytest.FixtureRequest) -> Iterator[S3Store]:
    """An empty bucket 'bucket-a'; small pages so every listing crosses page boundaries."""
    if request.param == "seaweed":
        client = request.getfixturevalue("server").client(retries=0)
        _empty(client, CONTRACT_BUCKET)
        yield S3Store(client, CONTRACT_BUCKET, page_size=2)
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=CONTRACT_BUCKET)
        yield S3Store(client, CONTRACT_BUCKET, page_size=2)


def _bucket(raw: Any, name: str, lock: bool = False) -> str:
    raw.create_bucket(Bucket=name, ObjectLockEnabledForBucket=lock)
    return name


# -- contract additions specific to S3 ------------------------------------


def test_different_metadata_refused(store: S3Store) -> None:
    store.put_exclusive("k", b"x", {"signature": "aa"})
    with pytest.raises(ObjectExistsError, match="different metadata"):
        store.put_exclusive("k", b"x", {"signature": "bb"})
    with pytest.raises(ObjectExistsError, match="different metadata"):
        store.put_exclusive("k", b"x", {"signature": "aa", "extra": "1"})
    assert dict(store.head("k").metadata) == {"signature": "aa"}


def test_uppercase_metadata_names_refused(store: S3Store) -> None:
    with pytest.raises(StorageError, match="'Signature' cannot be stored on S3 unchanged"):
        store.put_exclusive("k", b"x", {"Signature": "aa"})
    with pytest.raises(ObjectNotFoundError):
        store.head("k")


def test_digest_metadata_round_trips(store: S3Store) -> None:
    meta = {"signature": "ab" * 256, "signature-algorithm": "SHA256withRSA"}
    store.put_exclusive("d.json.gz", b"digest", meta)
    assert dict(store.get("d.json.gz").metadata) == meta
    store.put_exclusive("d.json.gz", b"digest", meta)


def test_sha256_streams_large_objects(store: S3Store) -> None:
    data = bytes(range(256)) * (3 * 4096 + 7)  # > 3 MiB: several 1 MiB chunks
    store.put_exclusive("big", data, {})
    assert store.sha256("big") == hashlib.sha256(data).hexdigest()
    with pytest.raises(ObjectNotFoundError):
        store.sha256("absent")


def test_start_after_a_directory_name_keeps_its_contents(store: S3Store) -> None:
    # SeaweedFS's own StartAfter skips "2024/01/02/x" here; the store's walk must not.
    for key in ["2024/01/02/x", "2024/01/10/x", "2024/01/2", "2024-01"]:
        store.put_exclusive(key, b"x", {})
    assert keys(store, "2024/01/", "2024/01/02") == ["2024/01/02/x", "2024/01/10/x", "2024/01/2"]
    assert keys(store, "", "2024") == ["2024-01", "2024/01/02/x", "2024/01/10/x", "2024/01/2"]


def test_store_is_versioned(store: S3Store) -> None:
    assert isinstance(store, VersionedStore)


# -- create-only writes and Object Lock on SeaweedFS -------------------------


def test_identical_retry_writes_no_second_version(raw: Any) -> None:
    bucket = _bucket(raw, "retry-versions", lock=True)
    store = S3Store(raw, bucket, lock=ObjectLockPolicy(days=1))
    store.put_exclusive("log.json.gz", b"same", {"m": "1"})
    store.put_exclusive("log.json.gz", b"same", {"m": "1"})
    with pytest.raises(ObjectExistsError, match="different bytes"):
        store.put_exclusive("log.json.gz", b"other", {"m": "1"})
    assert [v.is_latest for v in store.list_versions()] == [True]


def test_lock_policy_sets_compliance_retention(raw: Any) -> None:
    bucket = _bucket(raw, "retention", lock=True)
    start = datetime.now(UTC).replace(microsecond=0)
    store = S3Store(raw, bucket, lock=ObjectLockPolicy(days=3), clock=FrozenClock(start))
    store.put_exclusive("AWSLogs/1/CloudTrail/f.json.gz", b"audit", {})
    retention = raw.get_object_retention(Bucket=bucket, Key="AWSLogs/1/CloudTrail/f.json.gz")[
        "Retention"
    ]
    assert retention["Mode"] == "COMPLIANCE"
    assert retention["RetainUntilDate"] == start + timedelta(days=3)
    version = next(store.list_versions()).version_id
    with pytest.raises(ClientError, match="AccessDenied"):
        raw.delete_object(Bucket=bucket, Key="AWSLogs/1/CloudTrail/f.json.gz", VersionId=version)


def test_lock_policy_on_a_bucket_without_object_lock(raw: Any) -> None:
    bucket = _bucket(raw, "no-lock")
    store = S3Store(raw, bucket, lock=ObjectLockPolicy(days=1))
    with pytest.raises(StorageError, match="InvalidRequest") as caught:
        store.put_exclusive("k", b"x", {})
    assert "s3://no-lock/k" in str(caught.value)
    assert "Object Lock" in caught.value.hint


def test_list_versions_shows_delete_marker(raw: Any) -> None:
    bucket = _bucket(raw, "marker", lock=True)
    store = S3Store(raw, bucket, lock=ObjectLockPolicy(days=1))
    store.put_exclusive("logs/a.json.gz", b"a", {})
    store.put_exclusive("logs/b.json.gz", b"b", {})
    raw.delete_object(Bucket=bucket, Key="logs/a.json.gz")  # the tamper: no version id
    versions = list(store.list_versions("logs/"))
    assert [(v.key, v.is_delete_marker, v.is_latest) for v in versions] == [
        ("logs/a.json.gz", True, True),
        ("logs/a.json.gz", False, False),
        ("logs/b.json.gz", False, True),
    ]
    assert versions[0].size == 0 and versions[1].size == 1
    assert all(v.last_modified.tzinfo is UTC for v in versions)
    with pytest.raises(ObjectNotFoundError):
        store.get("logs/a.json.gz")


def test_list_versions_shows_an_overwrite(raw: Any) -> None:
    bucket = _bucket(raw, "overwrite", lock=True)
    store = S3Store(raw, bucket, page_size=1)
    store.put_exclusive("d/x.json.gz", b"original", {})
    # The tamper: a plain PUT without If-None-Match adds a version on top.
    raw.put_object(Bucket=bucket, Key="d/x.json.gz", Body=b"forged")
    versions = list(store.list_versions())
    assert [(v.key, v.is_latest, v.size) for v in versions] == [
        ("d/x.json.gz", True, len(b"forged")),
        ("d/x.json.gz", False, len(b"original")),
    ]
    assert versions[0].version_id != versions[1].version_id
    assert isinstance(versions[0], ObjectVersion)


def test_list_versions_orders_keys_bytewise_across_pages(raw: Any) -> None:
    bucket = _bucket(raw, "version-order", lock=True)
    store = S3Store(raw, bucket, page_size=2)
    names = ["p/2024/01/02/x", "p/2024-01", "p/2024/01/2", "p/a", "p/a-b", "p/é"]
    for key in names:
        store.put_exclusive(key, b"x", {})
    assert [v.key for v in store.list_versions("p/")] == sorted(names, key=lambda k: k.encode())


# -- failures ---------------------------------------------------------------


def test_missing_bucket_is_a_storage_error_not_not_found(raw: Any) -> None:
    store = S3Store(raw, "does-not-exist")
    with pytest.raises(StorageError, match="NoSuchBucket") as caught:
        store.get("k")
    assert not isinstance(caught.value, ObjectNotFoundError)
    assert "s3://does-not-exist/k" in str(caught.value)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        list(store.list())


def test_wrong_secret_names_the_setting(server: SeaweedS3) -> None:
    client = s3_client(
        S3Settings(
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id=server.access_key,
            secret_access_key="wrong",
            max_attempts=1,
        )
    )
    with pytest.raises(StorageError, match="SignatureDoesNotMatch") as caught:
        S3Store(client, CONTRACT_BUCKET).put_exclusive("k", b"x", {})
    assert "secret_access_key" in caught.value.hint


def test_stopped_store_fails_fast_then_recovers(seaweed: SeaweedS3) -> None:
    # Its own server: a restart re-registers every bucket's volumes, slow on the shared one.
    server = seaweed
    client = s3_client(
        S3Settings(
            endpoint_url=server.endpoint,
            region="us-east-1",
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            connect_timeout=1,
            read_timeout=2,
            max_attempts=1,
        )
    )
    store = S3Store(client, _bucket(client, "outage"))
    store.put_exclusive("before", b"1", {})
    server.stop()
    try:
        started = time.perf_counter()
        with pytest.raises(StorageError, match="unreachable") as caught:
            store.put_exclusive("during", b"2", {})
        with pytest.raises(StorageError, match=server.endpoint):
            store.get("before")
        with pytest.raises(StorageError, match=server.endpoint):
            list(store.list())
        with pytest.raises(StorageError, match=server.endpoint):
            list(store.list_versions())
        elapsed = time.perf_counter() - started
    finally:
        server.start()
    assert elapsed < 3.0
    assert "s3://outage/during" in str(caught.value) and "endpoint_url" in caught.value.hint
    store.put_exclusive("during", b"2", {})
    assert keys(store) == ["before", "during"]


# -- error mapping with a stubbed client (no server) --------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Store, Stubber]]:
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(client) as stub:
        yield S3Store(client, "b"), stub
        stub.assert_no_pending_responses()


def test_conditional_conflict_409_is_retried(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stub = stubbed
    stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
    stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
    stub.add_response("put_object", {})
    store.put_exclusive("k", b"x", {})


def test_conflict_that_never_ends_is_an_error(
    stubbed: tuple[S3Store, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "CONFLICT_BACKOFF_S", 0.0)
    store, stub = stubbed
    for _ in range(5):
        stub.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
    with pytest.raises(StorageError, match="ConditionalRequestConflict"):
        store.put_exclusive("k", b"x", {})


def test_412_then_vanished_writes_again(stubbed: tuple[S3Store, Stubber]) -> None:
    store, stub = stubbed
    stub.add_client_error("put_object", "PreconditionFailed", http_status_code=412)
    stub.add_client_error("get_object", "NoSuchKey", http_status_code=404)
    stub.add_response("put_object", {})
    store.put_exclusive("k", b"x", {})


@pytest.mark.parametrize(
    ("code", "status", "hint"),
    [
        ("InternalError", 500, "delivery keeps the data and retries"),
        ("AccessDenied", 403, "credentials"),
        ("SlowDown", 503, "delivery keeps the data and retries"),
        ("Weird", 400, "logs"),
    ],
)
def test_server_errors_become_storage_errors(
    stubbed: tuple[S3Store, Stubber], code: str, status: int, hint: str
) -> None:
    store, stub = stubbed
    stub.add_client_error("put_object", code, f"{code} message", http_status_code=status)
    with pytest.raises(
        StorageError, match=f"s3://b/k: S3 error {code} \\(HTTP {status}\\)"
    ) as caught:
        store.put_exclusive("k", b"x", {})
    assert not isinstance(caught.value, ObjectExistsError)
    assert hint in caught.value.hint


# -- pure helpers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://trail-bucket", ("trail-bucket", "")),
        ("s3://trail-bucket/", ("trail-bucket", "")),
        ("s3://trail.bucket-1/audit", ("trail.bucket-1", "audit")),
        ("s3://abc/audit/prod/", ("abc", "audit/prod")),
    ],
)
def test_parse_destination(url: str, expected: tuple[str, str]) -> None:
    assert parse_destination(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("trail-bucket/x", "not an s3:// URL"),
        ("https://trail-bucket/x", "not an s3:// URL"),
        ("s3://", "bucket name ''"),
        ("s3://ab/x", "bucket name 'ab'"),
        ("s3://Trail/x", "bucket name 'Trail'"),
        ("s3://trail_bucket", "bucket name 'trail_bucket'"),
        ("s3://-trail", "bucket name '-trail'"),
        ("s3://a..b", "adjacent"),
        ("s3://192.168.1.10", "IP address"),
        ("s3://" + "a" * 64, "is not 3-63"),
        ("s3://bucket//x", "empty"),
        ("s3://bucket/a/../b", "'..'"),
    ],
)
def test_parse_destination_refuses(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace(".", "\\.")):
        parse_destination(url)


def test_settings_validation() -> None:
    with pytest.raises(ConfigError, match="only one of access_key_id"):
        S3Settings(access_key_id="a")
    with pytest.raises(ConfigError, match="addressing_style"):
        S3Settings(addressing_style="sideways")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeouts"):
        S3Settings(read_timeout=0)
    with pytest.raises(ConfigError, match="max_attempts"):
        S3Settings(max_attempts=0)


def test_s3_client_applies_settings() -> None:
    client = s3_client(
        S3Settings(
            endpoint_url="http://127.0.0.1:1",
            region="eu-west-1",
            access_key_id="a",
            secret_access_key="b",
            connect_timeout=1.5,
            read_timeout=7,
            max_attempts=2,
        )
    )
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.s3 == {"addressing_style": "path"}
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (1.5, 7)
    assert client.meta.config.retries == {"total_max_attempts": 2, "mode": "standard"}


def test_lock_policy_validation() -> None:
    assert ObjectLockPolicy(days=365).retain_until(datetime(2025, 1, 1, tzinfo=UTC)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    with pytest.raises(ConfigError, match="0 days"):
        ObjectLockPolicy(days=0)
    with pytest.raises(ConfigError, match="mode 'LEGAL'"):
        ObjectLockPolicy(days=1, mode="LEGAL")  # type: ignore[arg-type]


def test_metadata_values_must_be_printable_ascii() -> None:
    assert s3_metadata({"a": "b c"}) == {"a": "b c"}
    for value in ("é", "line\nbreak"):
        with pytest.raises(StorageError, match="printable ASCII"):
            s3_metadata({"a": value})
