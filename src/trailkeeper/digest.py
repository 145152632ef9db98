"""Digest files: build, sign and parse CloudTrail digest JSON (formats spec §3).

Pure functions except for the signing callback. The JSON bytes built here are
frozen once signed: the signature covers their SHA-256, so nothing may re-encode
them afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from trailkeeper.clock import iso_seconds

SIGNATURE_ALGORITHM = "SHA256withRSA"
HASH_ALGORITHM = "SHA-256"
STORED_HASH_FIELD = (
    "storedHashValue"  # trailkeeper extension: sha256 of the stored (gzipped) object
)
META_SIGNATURE = "signature"
META_SIGNATURE_ALGORITHM = "signature-algorithm"
# What the AWS CLI requires before it validates a digest (DigestTraverser.required_digest_keys).
REQUIRED_DIGEST_KEYS: tuple[str, ...] = (
    "digestPublicKeyFingerprint",
    "digestS3Bucket",
    "digestS3Object",
    "previousDigestSignature",
    "digestEndTime",
    "digestStartTime",
)


class DigestFormatError(ValueError):
    """Digest bytes are not a digest document (bad JSON, missing or mistyped field)."""


@dataclass(frozen=True)
class LogFileEntry:
    s3_bucket: str
    s3_object: str
    hash_value: str  # hex sha256 of the inflated log file
    stored_hash_value: str  # hex sha256 of the stored (gzipped) bytes
    newest_event_time: datetime | None
    oldest_event_time: datetime | None


@dataclass(frozen=True)
class ChainLink:
    """Where the previous digest is and what it was, for the next digest's previous* fields."""

    bucket: str
    key: str
    hash_value: str  # hex sha256 of the previous digest's inflated bytes
    signature: str  # the previous digest's hex signature


def _iso(when: datetime) -> str:
    # A naive datetime would silently be taken as local time by astimezone().
    if when.tzinfo is None:
        raise ValueError(f"time {when!r} has no timezone; pass a timezone-aware UTC datetime")
    return iso_seconds(when)


def _iso_or_none(when: datetime | None) -> str | None:
    return None if when is None else _iso(when)


def _log_file_dict(entry: LogFileEntry) -> dict[str, Any]:
    return {
        "s3Bucket": entry.s3_bucket,
        "s3Object": entry.s3_object,
        "hashValue": entry.hash_value,
        "hashAlgorithm": HASH_ALGORITHM,
        "newestEventTime": _iso_or_none(entry.newest_event_time),
        "oldestEventTime": _iso_or_none(entry.oldest_event_time),
        STORED_HASH_FIELD: entry.stored_hash_value,
    }


def _event_bounds(log_files: list[LogFileEntry]) -> tuple[datetime | None, datetime | None]:
    newest = [e.newest_event_time for e in log_files if e.newest_event_time is not None]
    oldest = [e.oldest_event_time for e in log_files if e.oldest_event_time is not None]
    return (max(newest) if newest else None, min(oldest) if oldest else None)


def build_digest(
    account: str,
    start: datetime,
    end: datetime,
    bucket: str,
    key: str,
    fingerprint: str,
    log_files: list[LogFileEntry],
    previous: ChainLink | None,
) -> bytes:
    """UTF-8 compact JSON with the fields in spec §3.1 order; `previous=None` makes a starting digest."""
    start_text, end_text = _iso(start), _iso(end)
    if end < start:
        raise ValueError(
            f"digest window ends before it starts (start {start_text}, end {end_text})"
        )
    newest, oldest = _event_bounds(log_files)
    doc: dict[str, Any] = {
        "awsAccountId": account,
        "digestStartTime": start_text,
        "digestEndTime": end_text,
        "digestS3Bucket": bucket,
        "digestS3Object": key,
        "digestPublicKeyFingerprint": fingerprint,
        "digestSignatureAlgorithm": SIGNATURE_ALGORITHM,
        "newestEventTime": _iso_or_none(newest),
        "oldestEventTime": _iso_or_none(oldest),
        "previousDigestS3Bucket": previous.bucket if previous else None,
        "previousDigestS3Object": previous.key if previous else None,
        "previousDigestHashValue": previous.hash_value if previous else None,
        "previousDigestHashAlgorithm": HASH_ALGORITHM if previous else None,
        "previousDigestSignature": previous.signature if previous else None,
        "logFiles": [_log_file_dict(e) for e in log_files],
    }
    return orjson.dumps(doc)


def string_to_sign(
    digest_end_time: str,
    bucket: str,
    key: str,
    digest_sha256_hex: str,
    previous_signature: str | None,
) -> bytes:
    """The four lines of spec §3.3, joined by newline, no trailing newline."""
    previous = "null" if previous_signature is None else previous_signature
    return f"{digest_end_time}\n{bucket}/{key}\n{digest_sha256_hex}\n{previous}".encode()


def sign_digest(
    json_bytes: bytes,
    end_time_str: str,
    bucket: str,
    key: str,
    previous_signature: str | None,
    signer: Callable[[bytes], str],
) -> str:
    """Hex signature over the digest bytes exactly as they will be stored (inflated)."""
    sha = hashlib.sha256(json_bytes).hexdigest()
    return signer(string_to_sign(end_time_str, bucket, key, sha, previous_signature))


def digest_metadata(signature_hex: str) -> dict[str, str]:
    """Object metadata for a digest; names are lowercase because the AWS CLI looks them up verbatim."""
    return {META_SIGNATURE: signature_hex.lower(), META_SIGNATURE_ALGORITHM: SIGNATURE_ALGORITHM}


@dataclass(frozen=True)
class DigestLogFile:
    s3_bucket: str
    s3_object: str
    hash_value: str
    hash_algorithm: str | None
    newest_event_time: str | None
    oldest_event_time: str | None
    stored_hash_value: str | None  # None in digests written by CloudTrail itself
    raw: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class DigestDoc:
    """A parsed digest; times are kept verbatim because the signature covers them as text."""

    account: str | None
    start_time: str
    end_time: str
    bucket: str
    key: str
    fingerprint: str
    signature_algorithm: str | None
    newest_event_time: str | None
    oldest_event_time: str | None
    previous_bucket: str | None
    previous_key: str | None
    previous_hash_value: str | None
    previous_hash_algorithm: str | None
    previous_signature: str | None
    log_files: list[DigestLogFile]
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def is_starting(self) -> bool:
        return self.previous_bucket is None or self.previous_key is None


def _required(obj: Mapping[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        state = "missing" if name not in obj else f"a {type(value).__name__}, not a string"
        raise DigestFormatError(f"{where} field {name!r} is {state}")
    return value


def _optional(obj: Mapping[str, Any], name: str, where: str) -> str | None:
    """A string field that may be absent or JSON null."""
    return None if obj.get(name) is None else _required(obj, name, where)


def _parse_log_file(index: int, obj: Any) -> DigestLogFile:
    where = f"logFiles[{index}]"
    if not isinstance(obj, dict):
        raise DigestFormatError(f"{where} is not a JSON object")
    return DigestLogFile(
        s3_bucket=_required(obj, "s3Bucket", where),
        s3_object=_required(obj, "s3Object", where),
        hash_value=_required(obj, "hashValue", where),
        hash_algorithm=_optional(obj, "hashAlgorithm", where),
        newest_event_time=_optional(obj, "newestEventTime", where),
        oldest_event_time=_optional(obj, "oldestEventTime", where),
        stored_hash_value=_optional(obj, STORED_HASH_FIELD, where),
        raw=obj,
    )


def _load_object(data: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise DigestFormatError(f"digest is not UTF-8 JSON: {e}") from e
    if not isinstance(obj, dict):
        raise DigestFormatError("digest JSON is not an object")
    return obj


def parse_digest(data: bytes) -> DigestDoc:
    """Parse inflated digest bytes; unknown fields are kept in `raw`.

    Requires the fields the AWS CLI requires plus a `logFiles` list.
    """
    obj = _load_object(data)
    where = "digest"
    for name in REQUIRED_DIGEST_KEYS:
        if name not in obj:
            raise DigestFormatError(f"digest field {name!r} is missing")
    log_files = obj.get("logFiles")
    if not isinstance(log_files, list):
        raise DigestFormatError("digest field 'logFiles' is missing or not a list")
    return DigestDoc(
        account=_optional(obj, "awsAccountId", where),
        start_time=_required(obj, "digestStartTime", where),
        end_time=_required(obj, "digestEndTime", where),
        bucket=_required(obj, "digestS3Bucket", where),
        key=_required(obj, "digestS3Object", where),
        fingerprint=_required(obj, "digestPublicKeyFingerprint", where),
        signature_algorithm=_optional(obj, "digestSignatureAlgorithm", where),
        newest_event_time=_optional(obj, "newestEventTime", where),
        oldest_event_time=_optional(obj, "oldestEventTime", where),
        previous_bucket=_optional(obj, "previousDigestS3Bucket", where),
        previous_key=_optional(obj, "previousDigestS3Object", where),
        previous_hash_value=_optional(obj, "previousDigestHashValue", where),
        previous_hash_algorithm=_optional(obj, "previousDigestHashAlgorithm", where),
        previous_signature=_optional(obj, "previousDigestSignature", where),
        log_files=[_parse_log_file(i, entry) for i, entry in enumerate(log_files)],
        raw=obj,
    )
