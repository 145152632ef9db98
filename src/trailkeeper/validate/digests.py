"""One digest file: read, parsed, its metadata and signature checked against the key history."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trailkeeper import digest as digestfmt
from trailkeeper._internal import gzipio
from trailkeeper.clock import iso_seconds, parse_iso_seconds
from trailkeeper.errors import ObjectNotFoundError
from trailkeeper.keys.signing import PublicKeyInfo
from trailkeeper.storage.base import ObjectStore

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

# cryptography (~30 ms to import) is imported at the first signature check, by which time
# the pool is already hashing log files: start-up overlaps with I/O instead of preceding it.

# A log is delivered at most one flush interval after its events, and a digest
# shortly after its window ends; this covers both with room for a slow store.
from trailkeeper.validate.report import BACKFILL_TIMESTAMP_META, Code

Problem = tuple[Code, str]


@dataclass
class _Digest:
    """One stored digest object and what its checks found."""

    key: str
    end: datetime  # from the key
    backfill: bool
    doc: digestfmt.DigestDoc | None = None
    start: datetime | None = None  # digestStartTime, parsed
    doc_end: datetime | None = None  # digestEndTime, parsed
    inflated_sha: str = ""
    signature: str = ""
    problems: list[Problem] = field(default_factory=list)
    trusted: bool = False  # parsed, signed by a known key, at its own location
    moved: bool = False  # parsed, but found at another key than the one it names for itself
    authentic: bool = False  # its signature verifies (trusted, or moved with its content intact)

    def fail(self, code: Code, message: str) -> None:
        self.problems.append((code, message))


class _KeyRing:
    """Public keys by fingerprint, loaded lazily; SPKI is refused like the AWS CLI refuses it."""

    def __init__(self, keys: Sequence[PublicKeyInfo]) -> None:
        self._infos: dict[str, list[PublicKeyInfo]] = {}
        for info in keys:
            self._infos.setdefault(info.fingerprint, []).append(info)
        self._loaded: dict[bytes, rsa.RSAPublicKey | None] = {}

    def find(
        self, fp: str, end: datetime, region: str, allowance: timedelta
    ) -> tuple[PublicKeyInfo | None, Problem | None]:
        """The key that may have signed a digest ending at `end`.

        A digest is signed when it is delivered, up to `allowance` after its
        end, so the key may be newer than `end` by that much; it must not have
        been retired before `end`.
        """
        infos = self._infos.get(fp)
        if not infos:
            return None, (Code.KEY_UNKNOWN, f"public key not found in region {region} for fingerprint {fp}")
        for info in infos:
            if info.valid_from <= end + allowance and (info.valid_to is None or end <= info.valid_to):
                return info, None
        spans = ", ".join(f"{iso_seconds(i.valid_from)}..{_iso_or_open(i.valid_to)}" for i in infos)
        return None, (
            Code.KEY_UNKNOWN,
            f"public key {fp} is valid {spans}, which does not cover digestEndTime {iso_seconds(end)}",
        )

    def load(self, info: PublicKeyInfo) -> rsa.RSAPublicKey | None:
        if info.der_pkcs1 not in self._loaded:
            self._loaded[info.der_pkcs1] = _load_pkcs1(info.der_pkcs1)
        return self._loaded[info.der_pkcs1]


def _iso_or_open(when: datetime | None) -> str:
    return "open" if when is None else iso_seconds(when)


def _load_pkcs1(der: bytes) -> rsa.RSAPublicKey | None:
    """The key if `der` is exactly a DER PKCS#1 RSAPublicKey, else None."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_der_public_key(der)
    except ValueError:
        return None
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    # cryptography also accepts SubjectPublicKeyInfo; re-encoding tells them apart.
    pkcs1 = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return key if pkcs1 == der else None


def _check_digest_file(store: ObjectStore, d: _Digest) -> bool:
    """The checks before the signature, in the AWS CLI's order; False at the first failure."""
    try:
        obj = store.get(d.key)
    except ObjectNotFoundError:
        d.fail(Code.DIGEST_MISSING, "not found (deleted while validating)")
        return False
    if not _parse_digest(d, obj.data) or not _check_metadata(d, obj.metadata):
        return False
    assert d.doc is not None
    if d.doc.bucket != store.bucket or d.doc.key != d.key:
        d.fail(Code.DIGEST_MOVED, f"has been moved from its original location s3://{d.doc.bucket}/{d.doc.key}")
        d.moved = True
        return False
    if d.doc_end != d.end:
        d.fail(Code.INVALID_FORMAT, f"invalid format: digestEndTime {d.doc.end_time} differs from the time in the key")
        return False
    return True


def _parse_digest(d: _Digest, data: bytes) -> bool:
    try:
        inflated = gzipio.gunzip_strict(data)
    except gzipio.GzipFormatError as e:
        d.fail(Code(e.code), str(e))
        return False
    d.inflated_sha = hashlib.sha256(inflated).hexdigest()
    try:
        d.doc = digestfmt.parse_digest(inflated)
        d.start = parse_iso_seconds(d.doc.start_time)
        doc_end = parse_iso_seconds(d.doc.end_time)
    except digestfmt.DigestFormatError as e:
        d.fail(Code.INVALID_FORMAT, f"invalid format: {e}")
        return False
    except ValueError as e:
        d.fail(Code.INVALID_FORMAT, f"invalid format: digest times are not YYYY-MM-DDTHH:MM:SSZ ({e})")
        return False
    d.doc_end = doc_end
    return True


def _check_metadata(d: _Digest, metadata: Mapping[str, str]) -> bool:
    # Exact lowercase names only: the AWS CLI looks them up verbatim (formats spec §3.3).
    signature = metadata.get(digestfmt.META_SIGNATURE)
    algorithm = metadata.get(digestfmt.META_SIGNATURE_ALGORITHM)
    if signature is None or algorithm is None:
        d.fail(Code.DIGEST_NO_SIGNATURE, "signature verification failed: lowercase signature metadata is missing")
        return False
    if d.backfill and BACKFILL_TIMESTAMP_META not in metadata:
        d.fail(Code.INVALID_FORMAT, f"invalid format: backfill digest without {BACKFILL_TIMESTAMP_META} metadata")
        return False
    if algorithm != digestfmt.SIGNATURE_ALGORITHM:
        d.fail(Code.DIGEST_BAD_SIGNATURE, f"signature verification failed: unsupported algorithm {algorithm!r}")
        return False
    d.signature = signature
    return True


def _check_signature(d: _Digest, keys: _KeyRing, region: str, allowance: timedelta) -> bool:
    problem = _signature_problem(d, keys, region, allowance)
    if problem is not None:
        d.fail(*problem)
    d.authentic = problem is None
    return d.authentic


def _signature_problem(d: _Digest, keys: _KeyRing, region: str, allowance: timedelta) -> Problem | None:
    """Why the digest's signature does not verify, or None when it does."""
    assert d.doc is not None and d.doc_end is not None
    fp = d.doc.fingerprint
    # The signing key is looked up for the window the digest names (a moved digest's key lies).
    info, problem = keys.find(fp, d.doc_end, region, allowance)
    if info is None:
        assert problem is not None
        return problem
    public = keys.load(info)
    if public is None:
        return Code.KEY_FORMAT, f"Unable to load PKCS #1 key with fingerprint {fp}"
    message = digestfmt.string_to_sign(
        d.doc.end_time, d.doc.bucket, d.doc.key, d.inflated_sha, d.doc.previous_signature
    )
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        public.verify(bytes.fromhex(d.signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return Code.DIGEST_BAD_SIGNATURE, "signature verification failed"
    return None


def _check_moved_signature(d: _Digest, keys: _KeyRing, region: str, allowance: timedelta) -> None:
    """A moved digest is already reported; if its content is intact, the window it names is
    proven to have had a digest (evidence, not trust: its logs are not verified through it)."""
    if d.moved and d.doc is not None and d.signature and d.doc_end is not None:
        d.authentic = _signature_problem(d, keys, region, allowance) is None
