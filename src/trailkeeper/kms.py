"""A KMS inside trailkeeper: customer master keys with versioned key material, aliases, key
states, rotation and the symmetric operations, with AWS KMS semantics and error codes.

Key material is 32 random bytes per version, stored only sealed by the root of trust
(`keys.keyring.KeyProvider`) with context b"kms-key:<key-id>:<version>". Unsealed material
is cached in memory for `material_ttl_s` (a version never changes once written); the key's
state is read from the database on every call, so a key disabled here stops working at once,
and a root-of-trust key disabled in OpenBao/Vault/AWS stops it within the cache lifetime.

Ciphertext blob (`pack_blob` / `unpack_blob`, integers big-endian):

    magic b"TKK1" | key-id length (1 byte) | key id (ASCII) | key version (4) | nonce (12)
    | AES-256-GCM ciphertext and tag (16)

The associated data is the header (magic to version) followed by the canonical encryption
context (sorted-key JSON), so a blob whose key, version or context was changed fails to
authenticate, and the key version is known without trial decryption.

Keys whose deletion date has passed are deleted (state row gone, sealed material erased,
a tombstone kept so decrypting old data says why it fails) only by `delete_due` /
`maintain`, which the service runs periodically together with `rotate_due`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Generic, TypeVar

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trailkeeper._internal.sqlite import Database
from trailkeeper.clock import Clock
from trailkeeper.errors import KeyProviderUnavailableError, KmsError, SigningKeyError
from trailkeeper.keys.keyring import KeyProvider
from trailkeeper.state.schema import STATE_SCHEMA

MAGIC = b"TKK1"
NONCE_BYTES = 12
TAG_BYTES = 16
MATERIAL_BYTES = 32
MAX_KEY_ID_BYTES = 64
MIN_PENDING_DAYS, MAX_PENDING_DAYS, DEFAULT_PENDING_DAYS = 7, 30, 30
MIN_ROTATION_DAYS, MAX_ROTATION_DAYS, DEFAULT_ROTATION_DAYS = 90, 2560, 365
MAX_PLAINTEXT_BYTES = 4096
MAX_DATA_KEY_BYTES = 1024
MAX_LIMIT, DEFAULT_LIMIT = 1000, 100
MAX_TAGS = 50
ENABLED, DISABLED, PENDING_DELETION = "Enabled", "Disabled", "PendingDeletion"
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ALIAS_RE = re.compile(r"alias/[a-zA-Z0-9/_-]+")
_RESERVED_ALIAS_PREFIX = "alias/aws/"
_MAX_ALIAS_LEN = 256
_HEADER_FIXED = struct.Struct(">4sB")
_VERSION = struct.Struct(">I")
_DAY_US = 86_400_000_000

_KEY_COLUMNS = ("key_id, description, created_us, state, current_version, deletion_us, pending_days,"
                " rotation_enabled, rotation_days, rotation_anchor_us")

T = TypeVar("T")


# ---- errors ---------------------------------------------------------------------------------
class KmsUnavailableError(KmsError, KeyProviderUnavailableError):
    """The root of trust could not seal or unseal key material (outage, refusal).

    On the wire it is DependencyTimeoutException (503); it is also a
    KeyProviderUnavailableError (so a StorageError), which delivery treats as "wait and retry".
    """

    def __init__(self, message: str) -> None:
        KmsError.__init__(self, "DependencyTimeoutException", message, 503)


def _invalid_ciphertext(why: str) -> KmsError:
    return KmsError("InvalidCiphertextException",
                    f"The ciphertext is invalid: {why}. Pass the unmodified CiphertextBlob and the "
                    "exact EncryptionContext it was encrypted with.")


def _validation(message: str) -> KmsError:
    return KmsError("ValidationException", message)


def _not_found(message: str) -> KmsError:
    return KmsError("NotFoundException", message)


# ---- pure formats ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Ciphertext:
    key_id: str
    key_version: int
    nonce: bytes
    sealed: bytes  # AES-GCM ciphertext followed by its tag

    def header(self) -> bytes:
        kid = self.key_id.encode("ascii")
        return _HEADER_FIXED.pack(MAGIC, len(kid)) + kid + _VERSION.pack(self.key_version)


def pack_blob(ct: Ciphertext) -> bytes:
    if not 0 < len(ct.key_id.encode("ascii")) <= MAX_KEY_ID_BYTES or len(ct.nonce) != NONCE_BYTES:
        raise ValueError("key id must be 1-64 ASCII characters and the nonce 12 bytes")
    return ct.header() + ct.nonce + ct.sealed


def unpack_blob(blob: bytes) -> Ciphertext:
    """Parse a ciphertext blob; any malformation is InvalidCiphertextException."""
    if len(blob) < _HEADER_FIXED.size or blob[:4] != MAGIC:
        raise _invalid_ciphertext("it is not a trailkeeper KMS ciphertext blob")
    kid_len = blob[4]
    body = _HEADER_FIXED.size + kid_len + _VERSION.size
    if not 0 < kid_len <= MAX_KEY_ID_BYTES or len(blob) < body + NONCE_BYTES + TAG_BYTES:
        raise _invalid_ciphertext("it is truncated or its header is corrupt")
    try:
        key_id = blob[_HEADER_FIXED.size : _HEADER_FIXED.size + kid_len].decode("ascii")
    except UnicodeDecodeError as e:
        raise _invalid_ciphertext("its key id is not ASCII") from e
    (version,) = _VERSION.unpack_from(blob, body - _VERSION.size)
    if version < 1:
        raise _invalid_ciphertext("its key version is 0")
    return Ciphertext(key_id, version, blob[body : body + NONCE_BYTES], blob[body + NONCE_BYTES :])


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    """The encryption context as bound to a blob: JSON with sorted keys, b"{}" when empty."""
    items = dict(context or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in items.items()):
        raise _validation("EncryptionContext keys and values must be strings.")
    try:
        return orjson.dumps(items, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:
        raise _validation(f"EncryptionContext is not valid Unicode text: {e}") from e


def seal(material: bytes, key_id: str, version: int, nonce: bytes, plaintext: bytes,
         context: Mapping[str, str] | None) -> bytes:
    """Encrypt `plaintext` into a blob naming (key_id, version); `nonce` must be fresh."""
    header = Ciphertext(key_id, version, nonce, b"")
    sealed = AESGCM(material).encrypt(nonce, plaintext, header.header() + canonical_context(context))
    return pack_blob(Ciphertext(key_id, version, nonce, sealed))


def open_blob(material: bytes, ct: Ciphertext, context: Mapping[str, str] | None) -> bytes:
    try:
        return AESGCM(material).decrypt(ct.nonce, ct.sealed, ct.header() + canonical_context(context))
    except InvalidTag as e:
        raise _invalid_ciphertext("it failed authentication (modified, or a different "
                                  "EncryptionContext than at encryption)") from e


def material_id(key_id: str, version: int) -> str:
    """A stable public name of one key-material version (AWS KeyMaterialId: 64 hex chars)."""
    return hashlib.sha256(f"kms-key-material:{key_id}:{version}".encode()).hexdigest()


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def alias_arn(region: str, account_id: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{alias_name}"


def _seal_context(key_id: str, version: int) -> bytes:
    return f"kms-key:{key_id}:{version}".encode()


# ---- results --------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyMetadata:
    key_id: str
    arn: str
    account_id: str
    created: datetime
    description: str
    state: str
    current_version: int
    deletion_date: datetime | None = None
    pending_window_days: int | None = None

    @property
    def enabled(self) -> bool:
        return self.state == ENABLED

    @property
    def current_material_id(self) -> str:
        return material_id(self.key_id, self.current_version)


@dataclass(frozen=True)
class RotationStatus:
    key_arn: str
    enabled: bool
    period_days: int | None
    next_rotation: datetime | None


@dataclass(frozen=True)
class AliasEntry:
    name: str
    arn: str
    target_key_id: str
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    arn: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_marker: str | None


@dataclass(frozen=True)
class Encrypted:
    blob: bytes
    key_arn: str
    key_version: int


@dataclass(frozen=True)
class DataKey:
    plaintext: bytes
    blob: bytes
    key_arn: str
    key_version: int


@dataclass(frozen=True)
class Decrypted:
    plaintext: bytes
    key_arn: str
    key_version: int


@dataclass(frozen=True)
class ReEncrypted:
    blob: bytes
    key_arn: str
    key_version: int
    source_key_arn: str
    source_key_version: int


@dataclass(frozen=True)
class Maintenance:
    rotated: list[str] = field(default_factory=list)  # key ARNs given new material
    deleted: list[str] = field(default_factory=list)  # key ARNs whose material was destroyed
    blocked: list[str] = field(default_factory=list)  # due for deletion but used by a logging trail


@dataclass(frozen=True)
class _Key:
    key_id: str
    arn: str
    description: str
    created_us: int
    state: str
    current_version: int
    deletion_us: int | None
    pending_days: int | None
    rotation_enabled: bool
    rotation_days: int | None
    rotation_anchor_us: int | None


def _to_us(when: datetime) -> int:
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _validation(f"{name} must be an integer from {low} to {high}, not {value!r}.")


# ---- the service ----------------------------------------------------------------------------
# How long unsealed key material is reused before the root of trust is asked again: bounds
# how long a key disabled at the root (OpenBao/Vault/AWS KMS) keeps working here.
DEFAULT_MATERIAL_TTL_S = 300.0


class Kms:
    def __init__(self, db_path: Path, root: KeyProvider, clock: Clock, account_id: str, region: str,
                 in_use: Callable[[str], list[str]] = lambda arn: [],
                 material_ttl_s: float = DEFAULT_MATERIAL_TTL_S) -> None:
        STATE_SCHEMA.ensure(db_path)
        self._db = Database(db_path)
        # Pages freed by deleting sealed key material are zeroed, not left in the file.
        self._db.conn.execute("PRAGMA secure_delete=ON")
        self._root = root
        self._clock = clock
        self.account_id = account_id
        self.region = region
        self._in_use = in_use
        self._cache: dict[tuple[str, int], tuple[bytes, float]] = {}  # -> (material, expires, monotonic)
        self._cache_lock = threading.Lock()
        self._ttl = material_ttl_s

    def close(self) -> None:
        self._db.close()

    # --- references -----------------------------------------------------------------------
    def resolve(self, key_ref: str) -> str:
        """Key ARN of a key id, key ARN, alias name or alias ARN; NotFoundException otherwise."""
        return self._key(key_ref).arn

    def _key(self, key_ref: str) -> _Key:
        kind, value = self._parse_ref(key_ref)
        key_id = self._alias_target(value) if kind == "alias" else value
        rows = self._db.query(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE key_id = ?", (key_id,))
        if not rows:
            raise self._missing_key(key_id)
        return self._row(rows[0])

    def _parse_ref(self, key_ref: str) -> tuple[str, str]:
        if not isinstance(key_ref, str) or not key_ref:
            raise _validation("KeyId must be a non-empty key id, key ARN, alias name or alias ARN.")
        if key_ref.startswith("arn:"):
            return self._parse_arn(key_ref)
        if key_ref.startswith("alias/"):
            return "alias", key_ref
        if _UUID_RE.fullmatch(key_ref):
            return "key", key_ref
        raise _not_found(f"Invalid keyId '{key_ref}': give a key id (uuid), key ARN, alias/name or alias ARN.")

    def _parse_arn(self, arn: str) -> tuple[str, str]:
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms" or "/" not in parts[5]:
            raise KmsError("InvalidArnException", f"'{arn}' is not a KMS key or alias ARN "
                           "(arn:aws:kms:<region>:<account>:key/<id> or ...:alias/<name>).")
        if (parts[3], parts[4]) != (self.region, self.account_id):
            raise _not_found(f"Key '{arn}' does not exist: this KMS serves region {self.region} "
                             f"of account {self.account_id}.")
        resource = parts[5]
        if resource.startswith("key/"):
            return "key", resource[4:]
        if resource.startswith("alias/"):
            return "alias", resource
        raise KmsError("InvalidArnException", f"'{arn}' names neither key/<id> nor alias/<name>.")

    def _alias_target(self, name: str) -> str:
        rows = self._db.query("SELECT key_id FROM kms_aliases WHERE name = ?", (name,))
        if not rows:
            raise _not_found(f"Alias {alias_arn(self.region, self.account_id, name)} is not found.")
        return str(rows[0][0])

    def _missing_key(self, key_id: str) -> KmsError:
        arn = key_arn(self.region, self.account_id, key_id)
        deleted = self._deleted_on(key_id)
        if deleted is not None:
            return _not_found(f"Key '{arn}' was deleted on {deleted.isoformat()}; its key material is "
                              "destroyed and data encrypted under it cannot be decrypted.")
        return _not_found(f"Key '{arn}' does not exist.")

    def _deleted_on(self, key_id: str) -> datetime | None:
        rows = self._db.query("SELECT deleted_us FROM kms_deleted_keys WHERE key_id = ?", (key_id,))
        return _from_us(int(rows[0][0])) if rows else None

    def _row(self, row: sqlite3.Row) -> _Key:
        return _Key(row["key_id"], key_arn(self.region, self.account_id, row["key_id"]), row["description"],
                    row["created_us"], row["state"], row["current_version"], row["deletion_us"],
                    row["pending_days"], bool(row["rotation_enabled"]), row["rotation_days"],
                    row["rotation_anchor_us"])

    def _metadata(self, key: _Key) -> KeyMetadata:
        deletion = _from_us(key.deletion_us) if key.deletion_us is not None else None
        return KeyMetadata(key.key_id, key.arn, self.account_id, _from_us(key.created_us), key.description,
                           key.state, key.current_version, deletion, key.pending_days)

    # --- the root of trust ----------------------------------------------------------------
    def _root_call(self, what: str, call: Callable[[], bytes]) -> bytes:
        try:
            return call()
        except KeyProviderUnavailableError as e:
            raise KmsUnavailableError(f"the root of trust could not {what}: {e}; retry when it is "
                                      "reachable again") from e
        except SigningKeyError as e:
            raise KmsError("KMSInternalException", f"the root of trust could not {what}: {e}; check "
                           "that trailkeeper uses the root of trust that sealed this key", 500) from e

    def _new_material(self, key_id: str, version: int) -> tuple[bytes, bytes]:
        material = secrets.token_bytes(MATERIAL_BYTES)
        sealed = self._root_call(f"seal key material {version} of key {key_id}",
                                 lambda: self._root.encrypt(material, _seal_context(key_id, version)))
        return material, sealed

    def _material(self, key_id: str, version: int) -> bytes:
        with self._cache_lock:
            cached = self._cache.get((key_id, version))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        rows = self._db.query("SELECT sealed FROM kms_key_material WHERE key_id = ? AND version = ?",
                              (key_id, version))
        if not rows:
            raise _invalid_ciphertext(f"it names key material version {version} of key {key_id}, "
                                      "which does not exist")
        sealed = bytes(rows[0][0])
        material = self._root_call(f"unseal key material {version} of key {key_id}",
                                   lambda: self._root.decrypt(sealed, _seal_context(key_id, version)))
        self._remember(key_id, version, material)
        return material

    def _remember(self, key_id: str, version: int, material: bytes) -> None:
        with self._cache_lock:
            self._cache[(key_id, version)] = (material, time.monotonic() + self._ttl)

    # --- keys -----------------------------------------------------------------------------
    def create_key(self, description: str = "", tags: Mapping[str, str] | None = None) -> KeyMetadata:
        if not isinstance(description, str) or len(description) > 8192:
            raise _validation("Description must be a string of at most 8192 characters.")
        checked = _check_tags(tags or {})
        key_id = str(uuid.uuid4())
        material, sealed = self._new_material(key_id, 1)
        now_us = _to_us(self._clock.now())
        with self._db.tx() as conn:
            conn.execute("INSERT INTO kms_keys (key_id, description, created_us, state, current_version)"
                         " VALUES (?, ?, ?, ?, 1)", (key_id, description, now_us, ENABLED))
            conn.execute("INSERT INTO kms_key_material VALUES (?, 1, ?, ?, 0)", (key_id, sealed, now_us))
            conn.executemany("INSERT INTO kms_tags VALUES (?, ?, ?)",
                             [(key_id, k, v) for k, v in checked.items()])
        self._remember(key_id, 1, material)
        return self.describe_key(key_id)

    def describe_key(self, key_ref: str) -> KeyMetadata:
        return self._metadata(self._key(key_ref))

    def list_keys(self, limit: int = DEFAULT_LIMIT, marker: str | None = None) -> Page[KeyEntry]:
        _check_range("Limit", limit, 1, MAX_LIMIT)
        if marker is not None and not _UUID_RE.fullmatch(marker):
            raise KmsError("InvalidMarkerException", "Marker is not one this KMS returned; pass NextMarker unchanged.")
        rows = self._db.query("SELECT key_id FROM kms_keys WHERE key_id > ? ORDER BY key_id LIMIT ?",
                              (marker or "", limit + 1))
        entries = [KeyEntry(r[0], key_arn(self.region, self.account_id, r[0])) for r in rows[:limit]]
        return Page(entries, entries[-1].key_id if len(rows) > limit else None)

    def list_resource_tags(self, key_ref: str) -> dict[str, str]:
        key = self._key(key_ref)
        rows = self._db.query("SELECT tag_key, tag_value FROM kms_tags WHERE key_id = ? ORDER BY tag_key",
                              (key.key_id,))
        return {str(k): str(v) for k, v in rows}

    def _update_state(self, key_ref: str, check: Callable[[_Key], None], sql: str,
                      args: tuple[object, ...] = ()) -> _Key:
        """Check the key's state and update it in one transaction (no lost concurrent update)."""
        key = self._key(key_ref)
        with self._db.tx() as conn:
            row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE key_id = ?", (key.key_id,)).fetchone()
            if row is None:
                raise self._missing_key(key.key_id)
            check(self._row(row))
            conn.execute(f"UPDATE kms_keys SET {sql} WHERE key_id = ?", (*args, key.key_id))
        return self._key(key.key_id)

    def enable_key(self, key_ref: str) -> KeyMetadata:
        return self._metadata(self._update_state(key_ref, _not_pending, "state = ?", (ENABLED,)))

    def disable_key(self, key_ref: str) -> KeyMetadata:
        return self._metadata(self._update_state(key_ref, _not_pending, "state = ?", (DISABLED,)))

    def schedule_key_deletion(self, key_ref: str, days: int = DEFAULT_PENDING_DAYS) -> KeyMetadata:
        """PendingDeletion for `days` (7-30). Refused with KMSInvalidStateException while a
        logging trail encrypts with the key: that is a state of the key that makes the request
        invalid (the AWS meaning of that code), and botocore models it for this operation."""
        _check_range("PendingWindowInDays", days, MIN_PENDING_DAYS, MAX_PENDING_DAYS)
        key = self._key(key_ref)
        trails = self._in_use(key.arn)
        if trails:
            raise KmsError("KMSInvalidStateException",
                           f"{key.arn} is used by logging trail(s) {', '.join(sorted(trails))}; "
                           "point those trails at another KMS key (UpdateTrail KmsKeyId) or stop their "
                           "logging before scheduling its deletion.")
        deletion = _to_us(self._clock.now() + timedelta(days=days))
        return self._metadata(self._update_state(
            key.key_id, _not_pending, "state = ?, deletion_us = ?, pending_days = ?",
            (PENDING_DELETION, deletion, days)))

    def cancel_key_deletion(self, key_ref: str) -> KeyMetadata:
        """As AWS: the key comes back Disabled, to be enabled explicitly."""
        return self._metadata(self._update_state(
            key_ref, _pending_only, "state = ?, deletion_us = NULL, pending_days = NULL", (DISABLED,)))

    # --- rotation -------------------------------------------------------------------------
    def enable_key_rotation(self, key_ref: str, period_days: int = DEFAULT_ROTATION_DAYS) -> RotationStatus:
        """The first automatic rotation is `period_days` after rotation was enabled; changing
        the period of an enabled rotation keeps that anchor, as AWS does."""
        _check_range("RotationPeriodInDays", period_days, MIN_ROTATION_DAYS, MAX_ROTATION_DAYS)
        now_us = _to_us(self._clock.now())
        self._update_state(key_ref, _enabled_only, "rotation_days = ?, rotation_anchor_us = CASE"
                           " WHEN rotation_enabled = 1 THEN rotation_anchor_us ELSE ? END,"
                           " rotation_enabled = 1", (period_days, now_us))
        return self.get_key_rotation_status(key_ref)

    def disable_key_rotation(self, key_ref: str) -> RotationStatus:
        self._update_state(key_ref, _enabled_only, "rotation_enabled = 0")
        return self.get_key_rotation_status(key_ref)

    def get_key_rotation_status(self, key_ref: str) -> RotationStatus:
        key = self._key(key_ref)
        if not key.rotation_enabled or key.rotation_days is None or key.rotation_anchor_us is None:
            return RotationStatus(key.arn, False, None, None)
        due = _from_us(key.rotation_anchor_us + key.rotation_days * _DAY_US)
        return RotationStatus(key.arn, True, key.rotation_days, due)

    def rotate_key_on_demand(self, key_ref: str) -> int:
        """New key material now (the automatic schedule is unchanged); returns its version."""
        key = self._key(key_ref)
        _enabled_only(key)
        return self._rotate(key.key_id, automatic=False)

    def _rotate(self, key_id: str, automatic: bool) -> int:
        # Sealing happens inside the write transaction: the version number is part of the
        # sealing context, and two concurrent rotations must not both claim it.
        now_us = _to_us(self._clock.now())
        with self._db.tx() as conn:
            row = conn.execute("SELECT current_version FROM kms_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                raise self._missing_key(key_id)
            version = int(row[0]) + 1
            material, sealed = self._new_material(key_id, version)
            conn.execute("INSERT INTO kms_key_material VALUES (?, ?, ?, ?, ?)",
                         (key_id, version, sealed, now_us, int(not automatic)))
            anchor = ", rotation_anchor_us = ?" if automatic else ""
            conn.execute(f"UPDATE kms_keys SET current_version = ?{anchor} WHERE key_id = ?",
                         (version, now_us, key_id) if automatic else (version, key_id))
        self._remember(key_id, version, material)
        return version

    def rotate_due(self, now: datetime) -> list[str]:
        """Automatic rotation of Enabled keys whose rotation date is at or before `now`;
        returns their ARNs. A disabled key rotates once it is enabled again."""
        rows = self._db.query(
            "SELECT key_id FROM kms_keys WHERE rotation_enabled = 1 AND state = ?"
            " AND rotation_anchor_us + rotation_days * ? <= ? ORDER BY key_id",
            (ENABLED, _DAY_US, _to_us(now)))
        rotated = []
        for row in rows:
            self._rotate(str(row[0]), automatic=True)
            rotated.append(key_arn(self.region, self.account_id, str(row[0])))
        return rotated

    def delete_due(self, now: datetime) -> tuple[list[str], list[str]]:
        """Delete keys whose deletion date is at or before `now`: state, aliases, tags and
        sealed material go, a tombstone stays. Returns (deleted ARNs, blocked ARNs): a key that
        a logging trail uses again is kept PendingDeletion until it is released."""
        rows = self._db.query("SELECT key_id FROM kms_keys WHERE state = ? AND deletion_us <= ? ORDER BY key_id",
                              (PENDING_DELETION, _to_us(now)))
        deleted, blocked = [], []
        for row in rows:
            key_id = str(row[0])
            arn = key_arn(self.region, self.account_id, key_id)
            if self._in_use(arn):
                blocked.append(arn)
                continue
            self._destroy(key_id, now)
            deleted.append(arn)
        return deleted, blocked

    def _destroy(self, key_id: str, now: datetime) -> None:
        with self._db.tx() as conn:
            for table in ("kms_key_material", "kms_aliases", "kms_tags", "kms_keys"):
                conn.execute(f"DELETE FROM {table} WHERE key_id = ?", (key_id,))
            conn.execute("INSERT OR REPLACE INTO kms_deleted_keys VALUES (?, ?)", (key_id, _to_us(now)))
        with self._cache_lock:
            for cached in [c for c in self._cache if c[0] == key_id]:
                del self._cache[cached]

    def maintain(self, now: datetime) -> Maintenance:
        """The periodic duty: automatic rotations, then deletions that are due."""
        rotated = self.rotate_due(now)
        deleted, blocked = self.delete_due(now)
        return Maintenance(rotated, deleted, blocked)

    # --- aliases --------------------------------------------------------------------------
    def create_alias(self, alias_name: str, target_key_ref: str) -> AliasEntry:
        _check_alias_name(alias_name)
        if target_key_ref.startswith("alias/") or ":alias/" in target_key_ref:
            raise _validation("Aliases must refer to keys, not aliases: give TargetKeyId as a key id or key ARN.")
        key = self._key(target_key_ref)
        _not_pending(key)
        now_us = _to_us(self._clock.now())
        try:
            with self._db.tx() as conn:
                conn.execute("INSERT INTO kms_aliases VALUES (?, ?, ?, ?)", (alias_name, key.key_id, now_us, now_us))
        except sqlite3.IntegrityError as e:
            raise KmsError("AlreadyExistsException", f"An alias with the name "
                           f"{alias_arn(self.region, self.account_id, alias_name)} already exists; "
                           "delete it first or choose another name.") from e
        return AliasEntry(alias_name, alias_arn(self.region, self.account_id, alias_name), key.key_id,
                          _from_us(now_us), _from_us(now_us))

    def delete_alias(self, alias_name: str) -> None:
        if not isinstance(alias_name, str) or not alias_name.startswith("alias/"):
            raise _validation(f"AliasName '{alias_name}' must start with alias/.")
        with self._db.tx() as conn:
            if conn.execute("DELETE FROM kms_aliases WHERE name = ?", (alias_name,)).rowcount == 0:
                raise _not_found(f"Alias {alias_arn(self.region, self.account_id, alias_name)} is not found.")

    def list_aliases(self, key_ref: str | None = None, limit: int = DEFAULT_LIMIT,
                     marker: str | None = None) -> Page[AliasEntry]:
        _check_range("Limit", limit, 1, MAX_LIMIT)
        if marker is not None and not marker.startswith("alias/"):
            raise KmsError("InvalidMarkerException", "Marker is not one this KMS returned; pass NextMarker unchanged.")
        where, args = "name > ?", [marker or ""]
        if key_ref is not None:
            where += " AND key_id = ?"
            args.append(self._key(key_ref).key_id)
        rows = self._db.query(f"SELECT name, key_id, created_us, updated_us FROM kms_aliases WHERE {where}"
                              " ORDER BY name LIMIT ?", (*args, limit + 1))
        entries = [AliasEntry(r[0], alias_arn(self.region, self.account_id, r[0]), r[1], _from_us(r[2]),
                              _from_us(r[3])) for r in rows[:limit]]
        return Page(entries, entries[-1].name if len(rows) > limit else None)

    # --- cryptographic operations ---------------------------------------------------------
    def check_usable(self, key_ref: str) -> str:
        """Key ARN if the key may encrypt/decrypt now (DisabledException / KMSInvalidStateException)."""
        key = self._key(key_ref)
        _usable(key)
        return key.arn

    def encrypt(self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None) -> Encrypted:
        if not 1 <= len(plaintext) <= MAX_PLAINTEXT_BYTES:
            raise _validation(f"Plaintext must be 1 to {MAX_PLAINTEXT_BYTES} bytes, not {len(plaintext)}; "
                              "encrypt larger data with a data key (GenerateDataKey).")
        key = self._key(key_ref)
        _usable(key)
        blob = seal(self._material(key.key_id, key.current_version), key.key_id, key.current_version,
                    secrets.token_bytes(NONCE_BYTES), plaintext, context)
        return Encrypted(blob, key.arn, key.current_version)

    def generate_data_key(self, key_ref: str, context: Mapping[str, str] | None = None,
                          number_of_bytes: int = 32) -> DataKey:
        _check_range("NumberOfBytes", number_of_bytes, 1, MAX_DATA_KEY_BYTES)
        plaintext = secrets.token_bytes(number_of_bytes)
        encrypted = self.encrypt(key_ref, plaintext, context)
        return DataKey(plaintext, encrypted.blob, encrypted.key_arn, encrypted.key_version)

    def decrypt(self, blob: bytes, context: Mapping[str, str] | None = None,
                key_ref: str | None = None) -> Decrypted:
        ct = unpack_blob(blob)
        key = self._blob_key(ct)
        if key_ref is not None and self.resolve(key_ref) != key.arn:
            raise KmsError("IncorrectKeyException", f"The ciphertext was encrypted under {key.arn}, not "
                           f"under the KeyId given ({key_ref}); pass that key or omit KeyId.")
        _usable(key)
        if ct.key_version > key.current_version:
            raise _invalid_ciphertext(f"it names key material version {ct.key_version} of {key.arn}, "
                                      f"which has only {key.current_version}")
        plaintext = open_blob(self._material(key.key_id, ct.key_version), ct, context)
        return Decrypted(plaintext, key.arn, ct.key_version)

    def _blob_key(self, ct: Ciphertext) -> _Key:
        if not _UUID_RE.fullmatch(ct.key_id):
            raise _invalid_ciphertext("its key id is not a KMS key id")
        rows = self._db.query(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE key_id = ?", (ct.key_id,))
        if rows:
            return self._row(rows[0])
        if self._deleted_on(ct.key_id) is not None:
            raise self._missing_key(ct.key_id)
        raise _invalid_ciphertext(f"it names key {ct.key_id}, which this KMS never held")

    def re_encrypt(self, blob: bytes, destination_key_ref: str,
                   source_context: Mapping[str, str] | None = None,
                   destination_context: Mapping[str, str] | None = None,
                   source_key_ref: str | None = None) -> ReEncrypted:
        self.check_usable(destination_key_ref)
        opened = self.decrypt(blob, source_context, source_key_ref)
        encrypted = self.encrypt(destination_key_ref, opened.plaintext, destination_context)
        return ReEncrypted(encrypted.blob, encrypted.key_arn, encrypted.key_version,
                           opened.key_arn, opened.key_version)


# ---- state rules (AWS key-state table) --------------------------------------------------------
def _not_pending(key: _Key) -> None:
    if key.state == PENDING_DELETION:
        raise KmsError("KMSInvalidStateException", f"{key.arn} is pending deletion; cancel it with "
                       "CancelKeyDeletion first.")


def _pending_only(key: _Key) -> None:
    if key.state != PENDING_DELETION:
        raise KmsError("KMSInvalidStateException", f"{key.arn} is not pending deletion (state {key.state}).")


def _enabled_only(key: _Key) -> None:
    _not_pending(key)
    if key.state == DISABLED:
        raise KmsError("DisabledException", f"{key.arn} is disabled; enable it with EnableKey first.")


def _usable(key: _Key) -> None:
    """Encrypt/Decrypt/GenerateDataKey/ReEncrypt need an Enabled key."""
    _enabled_only(key)


def _check_alias_name(name: str) -> None:
    if not isinstance(name, str) or not name.startswith("alias/"):
        raise _validation(f"AliasName '{name}' must start with alias/.")
    if name.startswith(_RESERVED_ALIAS_PREFIX):
        raise KmsError("NotAuthorizedException", f"Alias names beginning with {_RESERVED_ALIAS_PREFIX} "
                       "are reserved for AWS managed keys; choose another name.")
    if len(name) > _MAX_ALIAS_LEN or not _ALIAS_RE.fullmatch(name):
        raise KmsError("InvalidAliasNameException", f"AliasName '{name}' must be alias/ followed by 1 to "
                       f"{_MAX_ALIAS_LEN - 6} characters of a-z A-Z 0-9 / _ -.")


def _check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise KmsError("TagException", f"A key may have at most {MAX_TAGS} tags, not {len(tags)}.")
    for k, v in tags.items():
        if not isinstance(k, str) or not isinstance(v, str) or not 1 <= len(k) <= 128 or len(v) > 256:
            raise KmsError("TagException", f"Tag {k!r}: keys must be 1-128 and values 0-256 characters.")
        if k.lower().startswith("aws:"):
            raise KmsError("TagException", f"Tag key {k!r}: the aws: prefix is reserved.")
    return dict(tags)
