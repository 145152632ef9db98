"""Encryption at rest of log events: envelope encryption under a log group's KMS key.

A log group associated with a KMS key has data keys (32 random bytes from GenerateDataKey, kept
only wrapped by the KMS key, with encryption context {"aws:logs:arn": <group ARN>} as CloudWatch
Logs uses). Each event is sealed with AES-256-GCM under the group's current data key; the
associated data binds the group, the stream, the event's seq and the data key's id, so a sealed
message copied to another group, stream or row, or pointed at another data key, fails to open.

This module is pure (sealing, opening, the unwrapped-key cache) apart from `KmsLogKeys`, the
adapter that gives `monitoring.loggroups` trailkeeper's Kms behind its narrow key-provider seam
and turns the Kms's errors into this module's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trailkeeper.errors import KeyProviderUnavailableError, KmsError, TrailkeeperError

if TYPE_CHECKING:
    from trailkeeper.kms import Kms

DATA_KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
TAG_BYTES = 16
SEAL_FORMAT_V1 = b"\x01"  # the first byte of every sealed message: how the rest is laid out
SEAL_OVERHEAD_BYTES = len(SEAL_FORMAT_V1) + NONCE_BYTES + TAG_BYTES
# How long an unwrapped data key is reused before the KMS is asked again. The key's state is
# checked on every request all the same (a key disabled in the KMS stops reads at once); this
# bounds how long a root of trust revoked outside trailkeeper keeps working, as the Kms's own
# DEFAULT_MATERIAL_TTL_S does for key material.
DATA_KEY_CACHE_TTL_S = 300.0
MAX_CACHED_DATA_KEYS = 4096  # the cache's bound whatever the TTL: the least recently added go first
# A group's data key is replaced once this old (at the next PutLogEvents): random 96-bit nonces
# stay safe for 2**32 messages per key, which a day reaches only above ~49,000 events a second.
DATA_KEY_MAX_AGE_MS = 86_400_000
CONTEXT_KEY = "aws:logs:arn"

_AAD_LABEL = "trailkeeper/log-event/v1"


class LogKeyError(TrailkeeperError):
    """The key provider refused or failed; `monitoring.loggroups` answers each kind its own way."""


class KeyNotFoundError(LogKeyError):
    """The KMS key does not exist (never did, is deleted, or the reference names nothing)."""


class KeyUnusableError(LogKeyError):
    """The KMS key exists but may not encrypt or decrypt now (Disabled, PendingDeletion)."""


class KeyUnreachableError(LogKeyError):
    """The KMS could not answer (its root of trust is unreachable): retry later."""


class SealBrokenError(LogKeyError):
    """A sealed message or wrapped data key does not open: tampered, or moved from its row."""


def data_key_context(group_arn: str) -> dict[str, str]:
    return {CONTEXT_KEY: group_arn}


def event_aad(group: str, stream: str, seq: int, data_key: int) -> bytes:
    """What a sealed message is bound to; a JSON array, so no two tuples encode alike."""
    return orjson.dumps([_AAD_LABEL, group, stream, seq, data_key])


def seal_message(key: bytes, aad: bytes, message: str) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return SEAL_FORMAT_V1 + nonce + AESGCM(key).encrypt(nonce, message.encode("utf-8"), aad)


def open_message(key: bytes, aad: bytes, sealed: bytes) -> str:
    if len(sealed) < SEAL_OVERHEAD_BYTES or sealed[:1] != SEAL_FORMAT_V1:
        raise SealBrokenError("the sealed message is truncated or of an unknown format")
    nonce = sealed[1:1 + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, sealed[1 + NONCE_BYTES:], aad).decode("utf-8")
    except InvalidTag as e:
        raise SealBrokenError("the sealed message does not open with its data key: it was altered, or "
                              "moved from another group, stream or row") from e


class DataKeyCache:
    """Unwrapped data keys by id, each for `ttl_s`, at most `max_entries` at once."""

    def __init__(self, ttl_s: float = DATA_KEY_CACHE_TTL_S, max_entries: int = MAX_CACHED_DATA_KEYS,
                 now: Callable[[], float] = time.monotonic) -> None:
        if ttl_s < 0 or max_entries < 1:
            raise ValueError("the data key cache needs ttl_s >= 0 and max_entries >= 1")
        self._ttl = ttl_s
        self._max = max_entries
        self._now = now
        self._keys: dict[int, tuple[bytes, float]] = {}  # id -> (key, expires), oldest added first
        self._lock = threading.Lock()

    def get(self, data_key: int) -> bytes | None:
        with self._lock:
            found = self._keys.get(data_key)
            if found is None:
                return None
            if found[1] <= self._now():
                del self._keys[data_key]
                return None
            return found[0]

    def put(self, data_key: int, key: bytes) -> None:
        with self._lock:
            self._keys.pop(data_key, None)
            while len(self._keys) >= self._max:
                del self._keys[next(iter(self._keys))]
            self._keys[data_key] = (key, self._now() + self._ttl)

    def forget(self, data_keys: set[int]) -> None:
        with self._lock:
            for data_key in data_keys:
                self._keys.pop(data_key, None)


_NOT_FOUND = frozenset({"NotFoundException", "InvalidArnException", "ValidationException"})
_UNUSABLE = frozenset({"DisabledException", "KMSInvalidStateException"})
_BROKEN = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
T = TypeVar("T")


class KmsLogKeys:
    """The key provider of `monitoring.loggroups` over trailkeeper's Kms, which `kms` opens on
    first use (a server whose log groups are never encrypted does not open the KMS for them)."""

    def __init__(self, kms: Callable[[], Kms]) -> None:
        self._kms = kms

    def check_usable(self, key_ref: str) -> str:
        return self._call(lambda kms: kms.check_usable(key_ref))

    def generate_data_key(self, key_arn: str, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        made = self._call(lambda kms: kms.generate_data_key(key_arn, context, DATA_KEY_BYTES))
        return made.plaintext, made.blob

    def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str], key_arn: str) -> bytes:
        return self._call(lambda kms: kms.decrypt(wrapped, context, key_arn).plaintext)

    def _call(self, call: Callable[[Kms], T]) -> T:
        try:
            return call(self._kms())
        except KeyProviderUnavailableError as e:  # before KmsError: the KMS's outage error is both
            raise KeyUnreachableError(str(e)) from e
        except KmsError as e:
            kind: type[LogKeyError] = (KeyNotFoundError if e.code in _NOT_FOUND else KeyUnusableError
                                       if e.code in _UNUSABLE else SealBrokenError if e.code in _BROKEN
                                       else KeyUnreachableError)
            raise kind(f"{e.code}: {e}") from e
