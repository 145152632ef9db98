"""The log files a digest names: present, unchanged, decryptable."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from trailkeeper import digest as digestfmt
from trailkeeper import envelope
from trailkeeper._internal import gzipio
from trailkeeper.errors import EnvelopeError, ObjectNotFoundError
from trailkeeper.storage.base import ObjectStore

if TYPE_CHECKING:
    pass

# cryptography (~30 ms to import) is imported at the first signature check, by which time
# the pool is already hashing log files: start-up overlaps with I/O instead of preceding it.

# A log is delivered at most one flush interval after its events, and a digest
# shortly after its window ends; this covers both with room for a slow store.
from trailkeeper.validate.digests import Problem
from trailkeeper.validate.report import Code, Mode


@dataclass
class _LogResult:
    bucket: str
    key: str
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class _Opener:
    """Decrypts envelope-encrypted log files of one trail (None keys: no KMS at hand)."""

    keys: envelope.DataKeys | None
    trail_arn: str

    def open(self, bucket: str, key: str, data: bytes) -> bytes:
        if self.keys is None:
            header = envelope.read_header(data)
            raise EnvelopeError(envelope.KEY_UNAVAILABLE, f"encrypted with {header.key_arn} version "
                                f"{header.key_version} and no KMS was given to decrypt it",
                                "validate on the server's data directory (its KMS), or use --mode stored")
        return envelope.open_log(self.keys, data, self.trail_arn, bucket, key)


def _check_log(store: ObjectStore, entry: digestfmt.DigestLogFile, mode: Mode, opener: _Opener) -> _LogResult:
    result = _LogResult(entry.s3_bucket, entry.s3_object)
    if entry.s3_bucket != store.bucket:
        result.problems.append((Code.LOG_MISSING, f"not found: bucket {entry.s3_bucket} is not the store being validated"))
        return result
    try:
        if mode == "stored" and entry.stored_hash_value is not None:
            # Stored bytes only: no decompression, no metadata.
            if store.sha256(entry.s3_object) != entry.stored_hash_value:
                result.problems.append((Code.STORED_HASH_MISMATCH, "stored bytes do not match storedHashValue"))
            return result
        data = store.get(entry.s3_object).data
    except ObjectNotFoundError:
        result.problems.append((Code.LOG_MISSING, "not found"))
        return result
    stored_ok = entry.stored_hash_value is None or hashlib.sha256(data).hexdigest() == entry.stored_hash_value
    if envelope.is_envelope(data):
        try:
            data = opener.open(entry.s3_bucket, entry.s3_object, data)
        except EnvelopeError as e:
            result.problems.append((Code.LOG_DECRYPT_FAILED, f"{e.reason}: {e}"))
            return result
    try:
        inflated_sha, _ = gzipio.gunzip_strict_sha256(data)
    except gzipio.GzipFormatError as e:
        result.problems.append((Code(e.code), str(e)))
        return result
    if inflated_sha != entry.hash_value:
        result.problems.append((Code.LOG_HASH_MISMATCH, "hash value doesn't match"))
    elif not stored_ok:
        result.problems.append((Code.STORED_HASH_MISMATCH, "stored bytes do not match storedHashValue (content is intact)"))
    return result
