"""The Kms: customer master keys with versioned key material, aliases, key states, rotation
and the symmetric operations, with AWS KMS semantics and error codes, kept in a KmsRepository.

Key material is 32 random bytes per version, stored only sealed by the root of trust
(`keys.keyring.KeyProvider`) with context b"kms-key:<key-id>:<version>". Unsealed material
is cached in memory for `material_ttl_s` (a version never changes once written); the key's
state is read from the repository on every call, so a key disabled here stops working at
once, and a root-of-trust key disabled in OpenBao/Vault/AWS stops it within the cache lifetime.

Keys whose deletion date has passed are deleted (state row gone, sealed material erased,
a tombstone kept so decrypting old data says why it fails) only by `delete_due` /
`maintain`, which the service runs periodically together with `rotate_due`. A key that a
logging trail uses (KeyUsers) is neither scheduled for deletion nor deleted.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from trailkeeper.clock import Clock
from trailkeeper.errors import KeyProviderUnavailableError, KmsError, SigningKeyError
from trailkeeper.keys.keyring import KeyProvider
from trailkeeper.kms.blob import NONCE_BYTES, Ciphertext, open_blob, seal, unpack_blob
from trailkeeper.kms.errors import KmsUnavailableError, invalid_ciphertext, not_found, validation
from trailkeeper.kms.model import (
    DAY_US,
    DEFAULT_LIMIT,
    DEFAULT_PENDING_DAYS,
    DEFAULT_ROTATION_DAYS,
    DISABLED,
    ENABLED,
    MATERIAL_BYTES,
    MAX_DATA_KEY_BYTES,
    MAX_LIMIT,
    MAX_PENDING_DAYS,
    MAX_PLAINTEXT_BYTES,
    MAX_ROTATION_DAYS,
    MIN_PENDING_DAYS,
    MIN_ROTATION_DAYS,
    PENDING_DELETION,
    UUID_RE,
    AliasEntry,
    DataKey,
    Decrypted,
    Encrypted,
    Key,
    KeyEntry,
    KeyMetadata,
    KeyUsers,
    Maintenance,
    NoKeyUsers,
    Page,
    ReEncrypted,
    RotationStatus,
    alias_arn,
    check_alias_name,
    check_range,
    check_tags,
    deletion_due,
    enabled_only,
    from_us,
    key_arn,
    not_pending,
    pending_only,
    rotation_due,
    to_us,
    usable,
)
from trailkeeper.kms.repository import AliasRecord, KeyRecord, KmsRepository, MaterialRecord

# How long unsealed key material is reused before the root of trust is asked again: bounds
# how long a key disabled at the root (OpenBao/Vault/AWS KMS) keeps working here.
DEFAULT_MATERIAL_TTL_S = 300.0


def _seal_context(key_id: str, version: int) -> bytes:
    return f"kms-key:{key_id}:{version}".encode()


class Kms:
    """The KMS of one account and region. It owns its repository (`close()` closes it)."""

    def __init__(self, repository: KmsRepository, root: KeyProvider, clock: Clock, account_id: str, region: str,
                 users: KeyUsers | None = None, material_ttl_s: float = DEFAULT_MATERIAL_TTL_S) -> None:
        self._repo = repository
        self._root = root
        self._clock = clock
        self.account_id = account_id
        self.region = region
        self._users: KeyUsers = users or NoKeyUsers()
        self._cache: dict[tuple[str, int], tuple[bytes, float]] = {}  # -> (material, expires, monotonic)
        self._cache_lock = threading.Lock()
        self._ttl = material_ttl_s

    def close(self) -> None:
        self._repo.close()

    # --- references -----------------------------------------------------------------------
    def resolve(self, key_ref: str) -> str:
        """Key ARN of a key id, key ARN, alias name or alias ARN; NotFoundException otherwise."""
        return self._key(key_ref).arn

    def _key(self, key_ref: str) -> Key:
        kind, value = self._parse_ref(key_ref)
        key_id = self._alias_target(value) if kind == "alias" else value
        row = self._repo.key(key_id)
        if row is None:
            raise self._missing_key(key_id)
        return self._view(row)

    def _view(self, row: KeyRecord) -> Key:
        return Key(key_arn(self.region, self.account_id, row.key_id), row)

    def _parse_ref(self, key_ref: str) -> tuple[str, str]:
        if not isinstance(key_ref, str) or not key_ref:
            raise validation("KeyId must be a non-empty key id, key ARN, alias name or alias ARN.")
        if key_ref.startswith("arn:"):
            return self._parse_arn(key_ref)
        if key_ref.startswith("alias/"):
            return "alias", key_ref
        if UUID_RE.fullmatch(key_ref):
            return "key", key_ref
        raise not_found(f"Invalid keyId '{key_ref}': give a key id (uuid), key ARN, alias/name or alias ARN.")

    def _parse_arn(self, arn: str) -> tuple[str, str]:
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[1] != "aws" or parts[2] != "kms" or "/" not in parts[5]:
            raise KmsError("InvalidArnException", f"'{arn}' is not a KMS key or alias ARN "
                           "(arn:aws:kms:<region>:<account>:key/<id> or ...:alias/<name>).")
        if (parts[3], parts[4]) != (self.region, self.account_id):
            raise not_found(f"Key '{arn}' does not exist: this KMS serves region {self.region} "
                            f"of account {self.account_id}.")
        resource = parts[5]
        if resource.startswith("key/"):
            return "key", resource[4:]
        if resource.startswith("alias/"):
            return "alias", resource
        raise KmsError("InvalidArnException", f"'{arn}' names neither key/<id> nor alias/<name>.")

    def _alias_target(self, name: str) -> str:
        alias = self._repo.alias(name)
        if alias is None:
            raise not_found(f"Alias {alias_arn(self.region, self.account_id, name)} is not found.")
        return alias.key_id

    def _missing_key(self, key_id: str) -> KmsError:
        arn = key_arn(self.region, self.account_id, key_id)
        deleted_us = self._repo.deleted_on(key_id)
        if deleted_us is not None:
            return not_found(f"Key '{arn}' was deleted on {from_us(deleted_us).isoformat()}; its key material "
                             "is destroyed and data encrypted under it cannot be decrypted.")
        return not_found(f"Key '{arn}' does not exist.")

    def _metadata(self, key: Key) -> KeyMetadata:
        row = key.row
        deletion = from_us(row.deletion_us) if row.deletion_us is not None else None
        return KeyMetadata(row.key_id, key.arn, self.account_id, from_us(row.created_us), row.description,
                           row.state, row.current_version, deletion, row.pending_days)

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
        sealed = self._repo.material(key_id, version)
        if sealed is None:
            raise invalid_ciphertext(f"it names key material version {version} of key {key_id}, "
                                     "which does not exist")
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
            raise validation("Description must be a string of at most 8192 characters.")
        checked = check_tags(tags or {})
        key_id = str(uuid.uuid4())
        material, sealed = self._new_material(key_id, 1)
        now_us = to_us(self._clock.now())
        with self._repo.transaction():
            if not self._repo.add_key(KeyRecord(key_id, description, now_us, ENABLED, 1),
                                      MaterialRecord(key_id, 1, sealed, now_us, on_demand=False), checked):
                raise KmsError("KMSInternalException", f"key id {key_id} was drawn twice; retry CreateKey", 500)
        self._remember(key_id, 1, material)
        return self.describe_key(key_id)

    def describe_key(self, key_ref: str) -> KeyMetadata:
        return self._metadata(self._key(key_ref))

    def list_keys(self, limit: int = DEFAULT_LIMIT, marker: str | None = None) -> Page[KeyEntry]:
        check_range("Limit", limit, 1, MAX_LIMIT)
        if marker is not None and not UUID_RE.fullmatch(marker):
            raise KmsError("InvalidMarkerException", "Marker is not one this KMS returned; pass NextMarker unchanged.")
        rows = self._repo.all_keys(after=marker or "", limit=limit + 1)
        entries = [KeyEntry(r.key_id, key_arn(self.region, self.account_id, r.key_id)) for r in rows[:limit]]
        return Page(entries, entries[-1].key_id if len(rows) > limit else None)

    def list_resource_tags(self, key_ref: str) -> dict[str, str]:
        return self._repo.tags(self._key(key_ref).key_id)

    def _update_state(self, key_ref: str, check: Callable[[Key], None],
                      change: Callable[[KeyRecord], KeyRecord]) -> Key:
        """Check the key's state and change it in one transaction (no lost concurrent update)."""
        key = self._key(key_ref)
        with self._repo.transaction():
            row = self._repo.key(key.key_id)
            if row is None:
                raise self._missing_key(key.key_id)
            check(self._view(row))
            self._repo.update_key(change(row))
        return self._key(key.key_id)

    def enable_key(self, key_ref: str) -> KeyMetadata:
        return self._metadata(self._update_state(key_ref, not_pending, lambda row: replace(row, state=ENABLED)))

    def disable_key(self, key_ref: str) -> KeyMetadata:
        return self._metadata(self._update_state(key_ref, not_pending, lambda row: replace(row, state=DISABLED)))

    def schedule_key_deletion(self, key_ref: str, days: int = DEFAULT_PENDING_DAYS) -> KeyMetadata:
        """PendingDeletion for `days` (7-30). Refused with KMSInvalidStateException while a
        logging trail encrypts with the key: that is a state of the key that makes the request
        invalid (the AWS meaning of that code), and botocore models it for this operation."""
        check_range("PendingWindowInDays", days, MIN_PENDING_DAYS, MAX_PENDING_DAYS)
        key = self._key(key_ref)
        trails = self._users.trails_using_key(key.arn)
        if trails:
            raise KmsError("KMSInvalidStateException",
                           f"{key.arn} is used by logging trail(s) {', '.join(sorted(trails))}; "
                           "point those trails at another KMS key (UpdateTrail KmsKeyId) or stop their "
                           "logging before scheduling its deletion.")
        deletion = to_us(self._clock.now() + timedelta(days=days))
        return self._metadata(self._update_state(key.key_id, not_pending, lambda row: replace(
            row, state=PENDING_DELETION, deletion_us=deletion, pending_days=days)))

    def cancel_key_deletion(self, key_ref: str) -> KeyMetadata:
        """As AWS: the key comes back Disabled, to be enabled explicitly."""
        return self._metadata(self._update_state(key_ref, pending_only, lambda row: replace(
            row, state=DISABLED, deletion_us=None, pending_days=None)))

    # --- rotation -------------------------------------------------------------------------
    def enable_key_rotation(self, key_ref: str, period_days: int = DEFAULT_ROTATION_DAYS) -> RotationStatus:
        """The first automatic rotation is `period_days` after rotation was enabled; changing
        the period of an enabled rotation keeps that anchor, as AWS does."""
        check_range("RotationPeriodInDays", period_days, MIN_ROTATION_DAYS, MAX_ROTATION_DAYS)
        now_us = to_us(self._clock.now())
        self._update_state(key_ref, enabled_only, lambda row: replace(
            row, rotation_days=period_days, rotation_enabled=True,
            rotation_anchor_us=row.rotation_anchor_us if row.rotation_enabled else now_us))
        return self.get_key_rotation_status(key_ref)

    def disable_key_rotation(self, key_ref: str) -> RotationStatus:
        self._update_state(key_ref, enabled_only, lambda row: replace(row, rotation_enabled=False))
        return self.get_key_rotation_status(key_ref)

    def get_key_rotation_status(self, key_ref: str) -> RotationStatus:
        key = self._key(key_ref)
        row = key.row
        if not row.rotation_enabled or row.rotation_days is None or row.rotation_anchor_us is None:
            return RotationStatus(key.arn, False, None, None)
        due = from_us(row.rotation_anchor_us + row.rotation_days * DAY_US)
        return RotationStatus(key.arn, True, row.rotation_days, due)

    def rotate_key_on_demand(self, key_ref: str) -> int:
        """New key material now (the automatic schedule is unchanged); returns its version."""
        key = self._key(key_ref)
        enabled_only(key)
        return self._rotate(key.key_id, automatic=False)

    def _rotate(self, key_id: str, automatic: bool) -> int:
        # Sealing happens inside the write transaction: the version number is part of the
        # sealing context, and two concurrent rotations must not both claim it.
        now_us = to_us(self._clock.now())
        with self._repo.transaction():
            row = self._repo.key(key_id)
            if row is None:
                raise self._missing_key(key_id)
            version = row.current_version + 1
            material, sealed = self._new_material(key_id, version)
            if not self._repo.add_material(MaterialRecord(key_id, version, sealed, now_us, on_demand=not automatic)):
                raise KmsError("KMSInternalException", f"key material {version} of {key_id} exists already; "
                               "the state database is inconsistent: restore it from backup", 500)
            anchor = now_us if automatic else row.rotation_anchor_us
            self._repo.update_key(replace(row, current_version=version, rotation_anchor_us=anchor))
        self._remember(key_id, version, material)
        return version

    def rotate_due(self, now: datetime) -> list[str]:
        """Automatic rotation of Enabled keys whose rotation date is at or before `now`;
        returns their ARNs. A disabled key rotates once it is enabled again."""
        now_us = to_us(now)
        rotated = []
        for row in [row for row in self._repo.all_keys() if rotation_due(row, now_us)]:
            self._rotate(row.key_id, automatic=True)
            rotated.append(key_arn(self.region, self.account_id, row.key_id))
        return rotated

    def delete_due(self, now: datetime) -> tuple[list[str], list[str]]:
        """Delete keys whose deletion date is at or before `now`: state, aliases, tags and
        sealed material go, a tombstone stays. Returns (deleted ARNs, blocked ARNs): a key that
        a logging trail uses again is kept PendingDeletion until it is released."""
        now_us = to_us(now)
        deleted, blocked = [], []
        for row in [row for row in self._repo.all_keys() if deletion_due(row, now_us)]:
            arn = key_arn(self.region, self.account_id, row.key_id)
            if self._users.trails_using_key(arn):
                blocked.append(arn)
                continue
            self._destroy(row.key_id, now)
            deleted.append(arn)
        return deleted, blocked

    def _destroy(self, key_id: str, now: datetime) -> None:
        with self._repo.transaction():
            self._repo.destroy_key(key_id, to_us(now))
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
        check_alias_name(alias_name)
        if target_key_ref.startswith("alias/") or ":alias/" in target_key_ref:
            raise validation("Aliases must refer to keys, not aliases: give TargetKeyId as a key id or key ARN.")
        key = self._key(target_key_ref)
        not_pending(key)
        now_us = to_us(self._clock.now())
        with self._repo.transaction():
            if not self._repo.add_alias(AliasRecord(alias_name, key.key_id, now_us, now_us)):
                raise KmsError("AlreadyExistsException", f"An alias with the name "
                               f"{alias_arn(self.region, self.account_id, alias_name)} already exists; "
                               "delete it first or choose another name.")
        return AliasEntry(alias_name, alias_arn(self.region, self.account_id, alias_name), key.key_id,
                          from_us(now_us), from_us(now_us))

    def delete_alias(self, alias_name: str) -> None:
        if not isinstance(alias_name, str) or not alias_name.startswith("alias/"):
            raise validation(f"AliasName '{alias_name}' must start with alias/.")
        with self._repo.transaction():
            if not self._repo.remove_alias(alias_name):
                raise not_found(f"Alias {alias_arn(self.region, self.account_id, alias_name)} is not found.")

    def list_aliases(self, key_ref: str | None = None, limit: int = DEFAULT_LIMIT,
                     marker: str | None = None) -> Page[AliasEntry]:
        check_range("Limit", limit, 1, MAX_LIMIT)
        if marker is not None and not marker.startswith("alias/"):
            raise KmsError("InvalidMarkerException", "Marker is not one this KMS returned; pass NextMarker unchanged.")
        key_id = self._key(key_ref).key_id if key_ref is not None else None
        rows = self._repo.aliases(after=marker or "", key_id=key_id, limit=limit + 1)
        entries = [AliasEntry(r.name, alias_arn(self.region, self.account_id, r.name), r.key_id,
                              from_us(r.created_us), from_us(r.updated_us)) for r in rows[:limit]]
        return Page(entries, entries[-1].name if len(rows) > limit else None)

    # --- cryptographic operations ---------------------------------------------------------
    def check_usable(self, key_ref: str) -> str:
        """Key ARN if the key may encrypt/decrypt now (DisabledException / KMSInvalidStateException)."""
        key = self._key(key_ref)
        usable(key)
        return key.arn

    def encrypt(self, key_ref: str, plaintext: bytes, context: Mapping[str, str] | None = None) -> Encrypted:
        if not 1 <= len(plaintext) <= MAX_PLAINTEXT_BYTES:
            raise validation(f"Plaintext must be 1 to {MAX_PLAINTEXT_BYTES} bytes, not {len(plaintext)}; "
                             "encrypt larger data with a data key (GenerateDataKey).")
        key = self._key(key_ref)
        usable(key)
        blob = seal(self._material(key.key_id, key.current_version), key.key_id, key.current_version,
                    secrets.token_bytes(NONCE_BYTES), plaintext, context)
        return Encrypted(blob, key.arn, key.current_version)

    def generate_data_key(self, key_ref: str, context: Mapping[str, str] | None = None,
                          number_of_bytes: int = 32) -> DataKey:
        check_range("NumberOfBytes", number_of_bytes, 1, MAX_DATA_KEY_BYTES)
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
        usable(key)
        if ct.key_version > key.current_version:
            raise invalid_ciphertext(f"it names key material version {ct.key_version} of {key.arn}, "
                                     f"which has only {key.current_version}")
        plaintext = open_blob(self._material(key.key_id, ct.key_version), ct, context)
        return Decrypted(plaintext, key.arn, ct.key_version)

    def _blob_key(self, ct: Ciphertext) -> Key:
        if not UUID_RE.fullmatch(ct.key_id):
            raise invalid_ciphertext("its key id is not a KMS key id")
        row = self._repo.key(ct.key_id)
        if row is not None:
            return self._view(row)
        if self._repo.deleted_on(ct.key_id) is not None:
            raise self._missing_key(ct.key_id)
        raise invalid_ciphertext(f"it names key {ct.key_id}, which this KMS never held")

    def re_encrypt(self, blob: bytes, destination_key_ref: str,
                   source_context: Mapping[str, str] | None = None,
                   destination_context: Mapping[str, str] | None = None,
                   source_key_ref: str | None = None) -> ReEncrypted:
        self.check_usable(destination_key_ref)
        opened = self.decrypt(blob, source_context, source_key_ref)
        encrypted = self.encrypt(destination_key_ref, opened.plaintext, destination_context)
        return ReEncrypted(encrypted.blob, encrypted.key_arn, encrypted.key_version,
                           opened.key_arn, opened.key_version)
