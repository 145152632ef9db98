"""An ObjectStore on any S3-compatible endpoint (AWS S3, SeaweedFS, MinIO, Ceph) through boto3.

Keys are the bucket's own keys: the store adds no prefix, because digests record each log's
`s3Object` and an AWS CLI validator must find it under exactly that key. The destination's
prefix (`s3://bucket/prefix`) is the trail's S3KeyPrefix, which the layout puts into every key.

Writes are create-only (`If-None-Match: *`). S3 answers 412 for any existing key, even with
identical bytes, so a 412 is followed by a read-back: identical bytes and metadata make the
write a successful retry, anything else is ObjectExistsError.

Listing walks the key tree one "directory" at a time (Delimiter "/") and sorts each level
itself: SeaweedFS 4.48 lists in tree order ("2024/..." before "2024-01") rather than S3's
byte order, and its StartAfter skips the contents of a directory named by the marker.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from trailkeeper.clock import Clock, SystemClock
from trailkeeper.errors import ConfigError, ObjectExistsError, ObjectNotFoundError, StorageError
from trailkeeper.storage.base import ObjectInfo, ObjectVersion, StoredObject
from trailkeeper.storage.folder import validate_key, validate_metadata

# boto3 clients are generated at run time and untyped.
S3Client = Any

# A concurrent conditional write to the same key answers 409 ConditionalRequestConflict;
# AWS documents it as retryable.
CONFLICT_RETRIES = 4
CONFLICT_BACKOFF_S = 0.05
READ_CHUNK = 1 << 20
PAGE_SIZE = 1000  # S3's own maximum per list request
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# Lowercase HTTP token characters: S3 folds metadata names to lowercase, so an uppercase name
# would come back different and make every identical retry look like a conflict.
_META_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")

_HINTS = {
    "NoSuchBucket": "create the bucket (with Object Lock if the trail requires retention) "
    "or fix the trail's s3:// destination",
    "AccessDenied": "check that the [s3] credentials may read, write and list this bucket; "
    "a version under Object Lock can never be deleted or overwritten",
    "InvalidAccessKeyId": "check [s3] access_key_id",
    "SignatureDoesNotMatch": "check [s3] secret_access_key and region",
    "InvalidRequest": "if the trail requires Object Lock, the bucket must be created with "
    "Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket)",
    "ConditionalRequestConflict": "another writer kept writing the same key; retry later",
}
_SERVER_HINT = "the object store is failing; delivery keeps the data and retries: check its health"
_OTHER_HINT = "check the object store's logs for this request"


@dataclass(frozen=True)
class ObjectLockPolicy:
    """Retention every put carries. Only COMPLIANCE is WORM; GOVERNANCE can be bypassed."""

    days: int
    mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"

    def __post_init__(self) -> None:
        if self.mode not in ("COMPLIANCE", "GOVERNANCE"):
            raise ConfigError(
                f"object lock mode {self.mode!r} is unknown",
                "use COMPLIANCE (or GOVERNANCE for tests)",
            )
        if not isinstance(self.days, int) or self.days < 1:
            raise ConfigError(
                f"object lock retention of {self.days!r} days is invalid",
                "use a whole number of days >= 1 (PCI DSS 10.5.1 asks for 365)",
            )

    def retain_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days)


@dataclass(frozen=True)
class S3Settings:
    """Connection settings of the `[s3]` config section; None falls back to boto3's own
    resolution (AWS_* environment variables, shared config files, instance roles)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 3
    sse_kms_key_id: str | None = None  # AWS S3 only: SSE-KMS with this AWS KMS key (for Athena)

    def __post_init__(self) -> None:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ConfigError(
                "[s3] sets only one of access_key_id and secret_access_key",
                "set both, or neither to use the AWS_* environment or profile",
            )
        if self.addressing_style not in ("path", "virtual", "auto"):
            raise ConfigError(
                f"[s3] addressing_style {self.addressing_style!r} is unknown",
                "use path (SeaweedFS, MinIO, Ceph), virtual or auto (AWS)",
            )
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError(
                "[s3] timeouts must be > 0 seconds", "set connect/read timeouts in seconds"
            )
        if self.max_attempts < 1:
            raise ConfigError(
                "[s3] max_attempts must be >= 1", "it counts the first try: 1 means no retry"
            )


def s3_client(settings: S3Settings) -> S3Client:
    """A boto3 S3 client for `settings` (SigV4, standard retry mode)."""
    config = Config(
        s3={"addressing_style": settings.addressing_style},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries={"total_max_attempts": settings.max_attempts, "mode": "standard"},
        signature_version="s3v4",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        config=config,
    )


def s3_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Check `metadata` can round-trip through S3 headers unchanged: lowercase names, ASCII values."""
    clean = validate_metadata(metadata)
    for name, value in clean.items():
        if not _META_NAME.match(name):
            raise StorageError(
                f"metadata name {name!r} cannot be stored on S3 unchanged",
                "S3 folds metadata names to lowercase: use lowercase header-token names",
            )
        if not value.isascii() or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise StorageError(
                f"metadata {name!r} value {value!r} is not printable ASCII",
                "S3 metadata travels in HTTP headers: encode the value (hex, base64)",
            )
    return clean


def error_code(e: ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a ClientError."""
    code = str(e.response.get("Error", {}).get("Code", ""))
    status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


T = TypeVar("T")


class S3Store:
    """ObjectStore (and VersionedStore) on one S3 bucket."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        lock: ObjectLockPolicy | None = None,
        clock: Clock | None = None,
        page_size: int = PAGE_SIZE,
        sse_kms_key_id: str | None = None,
    ) -> None:
        self._client = client
        # Server-side mode for AWS S3: S3 encrypts with this AWS KMS key (SSE-KMS), so Athena
        # and other AWS readers decrypt transparently; trailkeeper's own envelope is not used.
        self._sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": sse_kms_key_id} if sse_kms_key_id else {}
        self._page_size = page_size
        self._bucket = bucket
        self._lock = lock
        self._clock: Clock = clock or SystemClock()

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def lock(self) -> ObjectLockPolicy | None:
        return self._lock

    # -- writes ---------------------------------------------------------

    def put_exclusive(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        validate_key(key)
        meta = s3_metadata(metadata)
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=key,
                    Body=data,
                    Metadata=meta,
                    IfNoneMatch="*",
                    **self._lock_args(),
                    **self._sse,
                )
                return
            except ClientError as e:
                code, status = error_code(e)
                if status == 412 or code == "PreconditionFailed":
                    if self._existing_matches(key, data, meta):
                        return
                    continue  # deleted between the 412 and the read: create it again
                if (
                    status == 409 or code == "ConditionalRequestConflict"
                ) and attempt < CONFLICT_RETRIES:
                    time.sleep(CONFLICT_BACKOFF_S * 2**attempt)
                    continue
                raise self._client_error("write", key, e) from e
            except BotoCoreError as e:
                raise self._unreachable("write", key, e) from e
        raise StorageError(
            f"cannot write s3://{self._bucket}/{key}: the key kept changing under concurrent writers",
            "another process writes the same keys: stop it, then retry",
        )

    def _lock_args(self) -> dict[str, Any]:
        if self._lock is None:
            return {}
        return {
            "ObjectLockMode": self._lock.mode,
            "ObjectLockRetainUntilDate": self._lock.retain_until(self._clock.now()),
        }

    def _existing_matches(self, key: str, data: bytes, meta: dict[str, str]) -> bool:
        """True if the stored object equals the write; False if it vanished; else ObjectExistsError."""
        try:
            existing = self.get(key)
        except ObjectNotFoundError:
            return False
        if existing.data != data:
            raise ObjectExistsError(
                f"object s3://{self._bucket}/{key} already exists with different bytes",
                "stored objects are immutable: write under a new key",
            )
        if {k.lower(): v for k, v in existing.metadata.items()} != meta:
            raise ObjectExistsError(
                f"object s3://{self._bucket}/{key} already exists with different metadata",
                "stored objects are immutable: write under a new key",
            )
        return True

    # -- reads ----------------------------------------------------------

    def get(self, key: str) -> StoredObject:
        validate_key(key)
        response = self._call("read", key, self._client.get_object, Key=key)
        data = self._read_body("read", key, lambda: response["Body"].read())
        return StoredObject(
            key, data, dict(response.get("Metadata", {})), _utc(response["LastModified"])
        )

    def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        response = self._call("read", key, self._client.head_object, Key=key)
        return ObjectInfo(
            key,
            int(response["ContentLength"]),
            _utc(response["LastModified"]),
            dict(response.get("Metadata", {})),
        )

    def sha256(self, key: str) -> str:
        validate_key(key)
        response = self._call("read", key, self._client.get_object, Key=key)

        def digest() -> str:
            h = hashlib.sha256()
            for chunk in response["Body"].iter_chunks(READ_CHUNK):
                h.update(chunk)
            return h.hexdigest()

        return self._read_body("read", key, digest)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Metadata is not returned here (as in S3 ListObjectsV2); use head() for it."""
        after = start_after.encode("utf-8") if start_after is not None else None
        return self._walk(prefix, after, self._object_level, lambda info: info.key)

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker under `prefix`, by key (byte order), newest first.
        Versions written within the same second keep the server's order (S3 dates are coarse)."""
        return self._walk(prefix, None, self._version_level, lambda v: v.key)

    # -- listing --------------------------------------------------------

    def _walk(
        self,
        prefix: str,
        after: bytes | None,
        level: Callable[[str], tuple[builtins.list[T], builtins.list[str]]],
        key_of: Callable[[T], str],
    ) -> Iterator[T]:
        items, dirs = level(prefix)
        groups: dict[bytes, builtins.list[T]] = {}
        for item in items:
            key = key_of(item)
            # A key ending in "/" is a folder placeholder, never a store key: SeaweedFS lists
            # every emptied directory this way, and the AWS console creates them for folders.
            if not key.endswith("/"):
                groups.setdefault(key.encode("utf-8"), []).append(item)
        # A common prefix ends in "/", so it sorts exactly where the keys inside it do.
        entries = [(name, True) for name in groups] + [(d.encode("utf-8"), False) for d in dirs]
        for name, is_key in sorted(entries):
            if is_key:
                if after is None or name > after:
                    yield from groups[name]
            elif after is None or name > after or after.startswith(name):
                yield from self._walk(name.decode("utf-8"), after, level, key_of)

    def _object_level(self, prefix: str) -> tuple[builtins.list[ObjectInfo], builtins.list[str]]:
        items: builtins.list[ObjectInfo] = []
        dirs: builtins.list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call(
                "list",
                prefix,
                self._client.list_objects_v2,
                Prefix=prefix,
                Delimiter="/",
                MaxKeys=self._page_size,
                **token,
            )
            for obj in page.get("Contents", []):
                items.append(ObjectInfo(obj["Key"], int(obj["Size"]), _utc(obj["LastModified"])))
            dirs.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            if not page.get("IsTruncated"):
                return items, dirs
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def _version_level(
        self, prefix: str
    ) -> tuple[builtins.list[ObjectVersion], builtins.list[str]]:
        items: builtins.list[ObjectVersion] = []
        dirs: builtins.list[str] = []
        marker: dict[str, str] = {}
        while True:
            page = self._call(
                "list versions of",
                prefix,
                self._client.list_object_versions,
                Prefix=prefix,
                Delimiter="/",
                MaxKeys=self._page_size,
                **marker,
            )
            items.extend(_version(v, False) for v in page.get("Versions", []))
            items.extend(_version(m, True) for m in page.get("DeleteMarkers", []))
            dirs.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            if not page.get("IsTruncated"):
                # Stable: ties keep the server's order, which is newest first.
                items.sort(key=lambda v: (not v.is_latest, -v.last_modified.timestamp()))
                return items, dirs
            marker = {"KeyMarker": page["NextKeyMarker"]}
            if page.get("NextVersionIdMarker"):
                marker["VersionIdMarker"] = page["NextVersionIdMarker"]

    # -- errors ---------------------------------------------------------

    def _call(self, action: str, key: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return method(Bucket=self._bucket, **kwargs)
        except ClientError as e:
            code, status = error_code(e)
            if action == "read" and (
                code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket")
            ):
                raise ObjectNotFoundError(
                    f"object {key!r} not found in bucket {self._bucket!r}",
                    "check the key and the prefix",
                ) from e
            raise self._client_error(action, key, e) from e
        except BotoCoreError as e:
            raise self._unreachable(action, key, e) from e

    def _read_body(self, action: str, key: str, read: Callable[[], T]) -> T:
        try:
            return read()
        except BotoCoreError as e:  # timeouts and broken connections while streaming
            raise self._unreachable(action, key, e) from e

    def _client_error(self, action: str, key: str, e: ClientError) -> StorageError:
        code, status = error_code(e)
        message = e.response.get("Error", {}).get("Message", "")
        hint = _HINTS.get(code) or (_SERVER_HINT if status >= 500 else _OTHER_HINT)
        return StorageError(
            f"cannot {action} s3://{self._bucket}/{key}: S3 error {code or 'unknown'} "
            f"(HTTP {status}){': ' + message if message else ''}",
            hint,
        )

    def _unreachable(self, action: str, key: str, e: BotoCoreError) -> StorageError:
        endpoint = getattr(getattr(self._client, "meta", None), "endpoint_url", "?")
        return StorageError(
            f"cannot {action} s3://{self._bucket}/{key}: S3 endpoint {endpoint} unreachable "
            f"({type(e).__name__}: {e})",
            "check that the object store is running and [s3] endpoint_url is right; "
            "delivery keeps the data and retries",
        )


def _version(entry: Mapping[str, Any], is_delete_marker: bool) -> ObjectVersion:
    return ObjectVersion(
        key=entry["Key"],
        version_id=str(entry.get("VersionId") or "null"),
        is_latest=bool(entry.get("IsLatest")),
        is_delete_marker=is_delete_marker,
        last_modified=_utc(entry["LastModified"]),
        size=0 if is_delete_marker else int(entry.get("Size", 0)),
    )


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC)
