"""Digest signing keys: RSA-2048, rotated on age, full history kept in the state database.

Private keys are stored only as keyring envelopes bound to their fingerprint, so
a copied database file alone signs nothing. Public keys are the DER PKCS#1
`RSAPublicKey` that ListPublicKeys publishes (formats spec §5).
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from trailkeeper.clock import Clock
from trailkeeper.errors import ConfigError, SigningKeyError
from trailkeeper.state.schema import STATE_SCHEMA

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from trailkeeper.keys.keyring import KeyProvider

# cryptography is imported where keys are made or used: the offline validator reads public
# keys through this module and should not pay ~30 ms of start-up for what it never calls.

KEY_BITS = 2048
PUBLIC_EXPONENT = 65537
SIGNATURE_ALGORITHM = "SHA256withRSA"
SQLITE_TIMEOUT_SECONDS = 30.0
_CONTEXT_PREFIX = b"signing-key:"
_COLUMNS = "public_der, fingerprint, valid_from_us, valid_to_us"


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


def _to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"time {when!r} has no timezone; pass a timezone-aware UTC datetime")
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(microseconds=1)


def _from_us(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


def _row_to_info(row: tuple[bytes, str, int, int | None]) -> PublicKeyInfo:
    der, fp, valid_from, valid_to = row
    return PublicKeyInfo(
        der, fp, _from_us(valid_from), None if valid_to is None else _from_us(valid_to)
    )


def _context(fp: str) -> bytes:
    return _CONTEXT_PREFIX + fp.encode("ascii")


class SigningKeys:
    """The signing-key history in the `signing_keys` table of the state database."""

    def __init__(
        self, db_path: Path, keyring: KeyProvider, clock: Clock, rotation: timedelta
    ) -> None:
        if rotation <= timedelta(0):
            raise ConfigError(f"signing-key rotation period must be positive, got {rotation}")
        self._db_path = db_path
        self._keyring = keyring
        self._clock = clock
        self._rotation = rotation
        self._lock = threading.Lock()
        self._private: dict[str, rsa.RSAPrivateKey] = {}
        STATE_SCHEMA.ensure(db_path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per operation keeps threads independent; sqlite's own
        # locking (BEGIN IMMEDIATE) orders writers across processes.
        try:
            conn = sqlite3.connect(
                self._db_path, timeout=SQLITE_TIMEOUT_SECONDS, isolation_level=None
            )
        except sqlite3.Error as e:
            raise SigningKeyError(
                f"cannot open state database {self._db_path}: {e}",
                "check the data directory's permissions",
            ) from e
        with closing(conn):
            yield conn

    def current(self) -> PublicKeyInfo:
        """The key to sign with now: created on first use, replaced once older than the rotation period."""
        with self._lock, self._connect() as db:
            now = self._clock.now()
            info = self._current_row(db)
            if info is not None and not self._due(info, now):
                return info  # the common case takes no write lock on the shared state db
            db.execute("BEGIN IMMEDIATE")
            try:
                # Re-read under the write lock: another process may have rotated meanwhile.
                info = self._current_row(db)
                if info is None or self._due(info, now):
                    info = self._rotate(db, now, info)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return info

    def _due(self, info: PublicKeyInfo, now: datetime) -> bool:
        return now - info.valid_from > self._rotation

    def _current_row(self, db: sqlite3.Connection) -> PublicKeyInfo | None:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM signing_keys WHERE valid_to_us IS NULL "
            "ORDER BY valid_from_us DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _row_to_info(row)

    def _rotate(
        self, db: sqlite3.Connection, now: datetime, old: PublicKeyInfo | None
    ) -> PublicKeyInfo:
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
            db.execute(
                "UPDATE signing_keys SET valid_to_us = ? WHERE fingerprint = ?",
                (_to_us(now), old.fingerprint),
            )
        db.execute(
            "INSERT INTO signing_keys (fingerprint, public_der, private_envelope, keyring_id, valid_from_us) "
            "VALUES (?, ?, ?, ?, ?)",
            (fp, der, envelope, self._keyring.key_id, _to_us(now)),
        )
        self._private[fp] = private
        return PublicKeyInfo(der, fp, now, None)

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
            with self._connect() as db:
                row = db.execute(
                    "SELECT private_envelope FROM signing_keys WHERE fingerprint = ?", (fp,)
                ).fetchone()
            if row is None:
                raise SigningKeyError(
                    f"no signing key with fingerprint {fp}",
                    "sign with the fingerprint returned by current()",
                )
            loaded = serialization.load_der_private_key(
                self._keyring.decrypt(row[0], _context(fp)), password=None
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
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM signing_keys WHERE valid_from_us <= ? "
                "AND (valid_to_us IS NULL OR valid_to_us >= ?) ORDER BY valid_from_us",
                (_to_us(end), _to_us(start)),
            ).fetchall()
        keys = [_row_to_info(row) for row in rows]
        # ListPublicKeys must never be empty or the AWS CLI gives up (spec §10.2).
        return keys or [self.current()]

    def all_public_keys(self) -> list[PublicKeyInfo]:
        with self._connect() as db:
            return _all_keys(db)


def _all_keys(db: sqlite3.Connection) -> list[PublicKeyInfo]:
    rows = db.execute(f"SELECT {_COLUMNS} FROM signing_keys ORDER BY valid_from_us").fetchall()
    return [_row_to_info(row) for row in rows]


def load_public_keys(db_path: Path) -> list[PublicKeyInfo]:
    """Every public key in the state database, opened read-only (offline validator)."""
    if not db_path.is_file():
        raise SigningKeyError(
            f"state database {db_path} does not exist",
            "point the validator at the trailkeeper data directory",
        )
    try:
        conn = sqlite3.connect(
            f"{db_path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_TIMEOUT_SECONDS
        )
        with closing(conn):
            return _all_keys(conn)
    except sqlite3.Error as e:
        raise SigningKeyError(
            f"cannot read signing keys from {db_path}: {e}",
            "check that the file is a trailkeeper state database",
        ) from e
