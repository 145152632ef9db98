"""Envelope encryption of delivered log files: one AES-256-GCM data key per file, wrapped by a KMS key.

Layout of an encrypted file (all integers big-endian):

    MAGIC (6 bytes, b"TKENC1") | header length (4 bytes) | header | ciphertext || GCM tag

The header is canonical JSON (sorted keys, no spaces) naming the algorithm, the KMS key ARN
and the **key-material version** that wrapped the data key, the encryption context, the nonce
and the wrapped data key. Auditors can read which key protects a file without decrypting it.

Everything before the ciphertext is the GCM associated data, and the KMS binds the same
context to the wrapped data key. So a file moved to another key path, a header edited to name
another key version, or a single flipped ciphertext byte each fail with their own reason.
"""

from __future__ import annotations

import base64
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import orjson

from trailkeeper.errors import EnvelopeError, KeyProviderUnavailableError, KmsError

MAGIC = b"TKENC1"
ALGORITHM = "AES-256-GCM"
DATA_KEY_BYTES = 32
NONCE_BYTES = 12
_LENGTH = struct.Struct(">I")
_PREFIX_BYTES = len(MAGIC) + _LENGTH.size
# A header holds a few ARNs and a wrapped 32-byte key; anything far larger is not ours.
MAX_HEADER_BYTES = 16 * 1024

# Reasons carried by EnvelopeError.reason (the validator reports them).
FORMAT = "ENVELOPE_FORMAT"
CONTEXT_MISMATCH = "CONTEXT_MISMATCH"
HEADER_MISMATCH = "HEADER_MISMATCH"
KEY_UNWRAP_FAILED = "KEY_UNWRAP_FAILED"
KEY_UNAVAILABLE = "KEY_UNAVAILABLE"
CIPHERTEXT_TAMPERED = "CIPHERTEXT_TAMPERED"


class DataKey(Protocol):
    @property
    def plaintext(self) -> bytes: ...
    @property
    def blob(self) -> bytes: ...
    @property
    def key_arn(self) -> str: ...
    @property
    def key_version(self) -> int: ...


class Unwrapped(Protocol):
    @property
    def plaintext(self) -> bytes: ...
    @property
    def key_arn(self) -> str: ...
    @property
    def key_version(self) -> int: ...


class DataKeys(Protocol):
    """What envelope encryption needs from a KMS (trailkeeper.kms.Kms satisfies it)."""

    def generate_data_key(self, key_ref: str, context: Mapping[str, str], number_of_bytes: int = 32) -> DataKey: ...

    def decrypt(self, blob: bytes, context: Mapping[str, str], key_ref: str | None = None) -> Unwrapped: ...


@dataclass(frozen=True)
class EnvelopeHeader:
    key_arn: str
    key_version: int
    context: Mapping[str, str]
    nonce: bytes
    wrapped_key: bytes
    algorithm: str = ALGORITHM

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "alg": self.algorithm,
            "context": dict(self.context),
            "keyArn": self.key_arn,
            "keyVersion": self.key_version,
            "nonce": base64.b64encode(self.nonce).decode(),
            "wrappedKey": base64.b64encode(self.wrapped_key).decode(),
        }, option=orjson.OPT_SORT_KEYS)


def log_context(trail_arn: str, bucket: str, key: str) -> dict[str, str]:
    """The encryption context of a log file: its trail and its exact location (as S3's SSE-KMS
    and CloudTrail name them), so a copy at any other key or bucket does not decrypt."""
    return {"aws:cloudtrail:arn": trail_arn, "aws:s3:arn": f"arn:aws:s3:::{bucket}/{key}"}


def open_log(keys: DataKeys, data: bytes, trail_arn: str, bucket: str, key: str) -> bytes:
    """Decrypt a trail's log file read at `bucket`/`key` (every reader goes through here)."""
    return open_(keys, data, log_context(trail_arn, bucket, key))


def is_envelope(data: bytes) -> bool:
    return data.startswith(MAGIC)


def seal(keys: DataKeys, key_ref: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
    """Encrypt `plaintext` under a fresh data key from `key_ref`, bound to `context`."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key = keys.generate_data_key(key_ref, context, DATA_KEY_BYTES)
    header = EnvelopeHeader(data_key.key_arn, data_key.key_version, dict(context),
                            secrets.token_bytes(NONCE_BYTES), data_key.blob)
    prefix = _prefix(header.to_bytes())
    return prefix + AESGCM(data_key.plaintext).encrypt(header.nonce, plaintext, prefix)


def read_header(data: bytes) -> EnvelopeHeader:
    """The header of an encrypted file, without decrypting anything."""
    return _split(data)[0]


def open_(keys: DataKeys, data: bytes, expected_context: Mapping[str, str]) -> bytes:
    """Decrypt a file sealed by `seal`; EnvelopeError with a reason for every way it can fail."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header, prefix, body = _split(data)
    if dict(header.context) != dict(expected_context):
        raise EnvelopeError(CONTEXT_MISMATCH, f"file was encrypted for {_where(header.context)}, "
                            f"but is stored at {_where(expected_context)}: it was moved or copied")
    unwrapped = _unwrap(keys, header)
    if (unwrapped.key_arn, unwrapped.key_version) != (header.key_arn, header.key_version):
        raise EnvelopeError(HEADER_MISMATCH, f"header names {header.key_arn} version {header.key_version}, but the "
                            f"data key was wrapped by {unwrapped.key_arn} version {unwrapped.key_version}: "
                            "the header was altered")
    try:
        return AESGCM(unwrapped.plaintext).decrypt(header.nonce, body, prefix)
    except InvalidTag as e:
        raise EnvelopeError(CIPHERTEXT_TAMPERED, "ciphertext failed authentication: the file's bytes were "
                            "changed after encryption") from e


def _unwrap(keys: DataKeys, header: EnvelopeHeader) -> Unwrapped:
    try:
        return keys.decrypt(header.wrapped_key, header.context, None)
    except KeyProviderUnavailableError as e:
        raise EnvelopeError(KEY_UNAVAILABLE, f"cannot unwrap the data key: {e}", e.hint) from e
    except KmsError as e:
        if e.code in ("InvalidCiphertextException", "IncorrectKeyException"):
            raise EnvelopeError(KEY_UNWRAP_FAILED, f"the wrapped data key does not open under "
                                f"{header.key_arn} with this file's context: {e}") from e
        raise EnvelopeError(KEY_UNAVAILABLE, f"key {header.key_arn} cannot decrypt now ({e.code}): {e}",
                            "enable the key, or ask its administrator for kms:Decrypt") from e


def _prefix(header: bytes) -> bytes:
    return MAGIC + _LENGTH.pack(len(header)) + header


def _split(data: bytes) -> tuple[EnvelopeHeader, bytes, bytes]:
    if not is_envelope(data) or len(data) < _PREFIX_BYTES:
        raise EnvelopeError(FORMAT, "not a trailkeeper encrypted file (magic bytes missing)")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if length > MAX_HEADER_BYTES or _PREFIX_BYTES + length > len(data):
        raise EnvelopeError(FORMAT, f"envelope header length {length} does not fit the file")
    raw = data[_PREFIX_BYTES:_PREFIX_BYTES + length]
    return _parse_header(raw), data[:_PREFIX_BYTES + length], data[_PREFIX_BYTES + length:]


def _parse_header(raw: bytes) -> EnvelopeHeader:
    try:
        doc = orjson.loads(raw)
        context = doc["context"]
        if not isinstance(context, dict) or not all(isinstance(v, str) for v in context.values()):
            raise TypeError("context is not a map of strings")
        header = EnvelopeHeader(
            key_arn=_text(doc["keyArn"]), key_version=_version(doc["keyVersion"]), context=context,
            nonce=base64.b64decode(_text(doc["nonce"]), validate=True),
            wrapped_key=base64.b64decode(_text(doc["wrappedKey"]), validate=True), algorithm=_text(doc["alg"]),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise EnvelopeError(FORMAT, f"envelope header is malformed: {e}") from e
    if header.algorithm != ALGORITHM or len(header.nonce) != NONCE_BYTES:
        raise EnvelopeError(FORMAT, f"envelope header names algorithm {header.algorithm!r} with a "
                            f"{len(header.nonce)}-byte nonce; only {ALGORITHM} with {NONCE_BYTES} bytes is written")
    return header


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TypeError(f"keyVersion must be a positive integer, got {value!r}")
    return value


def _where(context: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(context.items())) or "an empty context"
