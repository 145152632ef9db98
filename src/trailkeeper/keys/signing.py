"""Digest signing keys: RSA-2048, rotated on age, full history kept in a SigningKeyRepository
(state.signing_keys: SQLite in the state database, or memory).

Private keys are stored only as keyring envelopes bound to their fingerprint, so
a copied database file alone signs nothing. Public keys are the DER PKCS#1
`RSAPublicKey` that ListPublicKeys publishes (formats spec §5).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from trailkeeper.clock import Clock
from trailkeeper.errors import ConfigError, SigningKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from trailkeeper.keys.keyring import KeyProvider

# cryptography is imported where keys are made or used: the offline validator reads public
# keys through this module and should not pay ~30 ms of start-up for what it never calls.

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
SIGNATURE_ALGORITHM = "SHA256withRSA"
_CONTEXT_PREFIX = b"signing-key:"


@dataclass(frozen=True)
class PublicKeyInfo:
    der_pkcs1: bytes
    fingerprint: str  # lowercase hex MD5 of der_pkcs1
    valid_from: datetime
    valid_to: datetime | None  # None while the key is current

    @property
    def value_b64(self) -> str:
        """ListPublicKeys `Value`: base64 of the DER, starting `MIIBCgKCAQEA`."""
        return base64.b64encode(self.der_pkcs1).decode("ascii")


class SigningKeyStore(Protocol):
    """What digest writers and the API need from the signing keys."""

    def current(self) -> PublicKeyInfo: ...

    def sign(self, fingerprint: str, message: bytes) -> str: ...

    def public_keys(self, start: datetime, end: datetime) -> list[PublicKeyInfo]: ...

    def all_public_keys(self) -> list[PublicKeyInfo]: ...


def fingerprint(der_pkcs1: bytes) -> str:
    # MD5 is what CloudTrail publishes as the fingerprint; it names a key, it
    # does not protect anything.
    return hashlib.md5(der_pkcs1, usedforsecurity=False).hexdigest()


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"time {when!r} has no timezone; pass a timezone-aware UTC datetime")
    return when


def _context(fp: str) -> bytes:
    return _CONTEXT_PREFIX + fp.encode("ascii")


class SigningKeyRepository(Protocol):
    """Where the signing-key history is kept: each key's public half and validity window, its
    private half only as a keyring envelope. Writes belong inside `transaction()`; a missing
    key is None. Implementations: state.signing_keys.SqliteSigningKeyRepository,
    MemorySigningKeyRepository."""

    def transaction(self) -> AbstractContextManager[None]:
        """All or nothing, serialised against every other writer (other processes too)."""
        ...

    def current(self) -> PublicKeyInfo | None:
        """The newest key that is not retired."""
        ...

    def all(self) -> list[PublicKeyInfo]:
        """Every key, oldest first."""
        ...

    def private_envelope(self, fingerprint: str) -> bytes | None: ...

    def add(self, key: PublicKeyInfo, private_envelope: bytes, keyring_id: str) -> bool:
        """False (nothing written) when a key with that fingerprint exists."""
        ...

    def retire(self, fingerprint: str, valid_to: datetime) -> None: ...


class SigningKeys:
    """The signing-key history, kept in a SigningKeyRepository."""

    def __init__(
        self, repository: SigningKeyRepository, keyring: KeyProvider, clock: Clock, rotation: timedelta
    ) -> None:
        if rotation <= timedelta(0):
            raise ConfigError(f"signing-key rotation period must be positive, got {rotation}")
        self._repo = repository
        self._keyring = keyring
        self._clock = clock
        self._rotation = rotation
        self._lock = threading.Lock()
        self._private: dict[str, rsa.RSAPrivateKey] = {}

    def current(self) -> PublicKeyInfo:
        """The key to sign with now: created on first use, replaced once older than the rotation period."""
        with self._lock:
            now = self._clock.now()
            info = self._repo.current()
            if info is not None and not self._due(info, now):
                return info  # the common case takes no write lock on the shared state db
            with self._repo.transaction():
                # Re-read under the write lock: another process may have rotated meanwhile.
                info = self._repo.current()
                if info is None or self._due(info, now):
                    info = self._rotate(now, info)
            return info

    def _due(self, info: PublicKeyInfo, now: datetime) -> bool:
        return now - info.valid_from > self._rotation

    def _rotate(self, now: datetime, old: PublicKeyInfo | None) -> PublicKeyInfo:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        private = rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS)
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.PKCS1
        )
        fp = fingerprint(der)
        secret = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        envelope = self._keyring.encrypt(secret, _context(fp))
        if old is not None:
            self._repo.retire(old.fingerprint, now)
        info = PublicKeyInfo(der, fp, _aware(now), None)
        if not self._repo.add(info, envelope, self._keyring.key_id):
            raise SigningKeyError(f"a signing key with fingerprint {fp} exists already",
                                  "retry: a freshly generated key never repeats one")
        self._private[fp] = private
        return info

    def sign(self, fingerprint: str, message: bytes) -> str:
        """Lowercase hex RSA PKCS#1 v1.5 / SHA-256 signature of `message` by key `fingerprint`."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        private = self._private_key(fingerprint)
        return private.sign(message, padding.PKCS1v15(), hashes.SHA256()).hex()

    def _private_key(self, fp: str) -> rsa.RSAPrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        with self._lock:
            cached = self._private.get(fp)
            if cached is not None:
                return cached
            envelope = self._repo.private_envelope(fp)
            if envelope is None:
                raise SigningKeyError(
                    f"no signing key with fingerprint {fp}",
                    "sign with the fingerprint returned by current()",
                )
            loaded = serialization.load_der_private_key(
                self._keyring.decrypt(envelope, _context(fp)), password=None
            )
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise SigningKeyError(
                    f"signing key {fp} is not an RSA key",
                    "the state database is corrupt; restore it from backup",
                )
            self._private[fp] = loaded
            return loaded

    def public_keys(self, start: datetime, end: datetime) -> list[PublicKeyInfo]:
        """Keys whose validity window overlaps [start, end]; the current key if none does."""
        start, end = _aware(start), _aware(end)
        keys = [k for k in self._repo.all()
                if k.valid_from <= end and (k.valid_to is None or k.valid_to >= start)]
        # ListPublicKeys must never be empty or the AWS CLI gives up (spec §10.2).
        return keys or [self.current()]

    def all_public_keys(self) -> list[PublicKeyInfo]:
        return self._repo.all()


def load_public_keys(db_path: Path) -> list[PublicKeyInfo]:
    """Every public key in the state database, opened read-only (offline validator)."""
    # Imported here: the SQLite repository imports this module's types.
    from trailkeeper.state.signing_keys import read_public_keys

    if not db_path.is_file():
        raise SigningKeyError(
            f"state database {db_path} does not exist",
            "point the validator at the trailkeeper data directory",
        )
    return read_public_keys(db_path)
