"""Key providers: envelope encryption of secrets at rest (signing keys, access-key secrets).

Every envelope names the key id and key version that sealed it, so a rotated or
different keyring never has to trial-decrypt.
"""

from __future__ import annotations

import os
import secrets
import struct
from pathlib import Path
from typing import Protocol

from trailkeeper.errors import SigningKeyError

_MAGIC = b"TKE1"
_NONCE_BYTES = 12
MASTER_KEY_FILE = "master.key"


class KeyProvider(Protocol):
    @property
    def key_id(self) -> str: ...

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """Seal `plaintext`; `context` is bound as associated data (e.g. b"signing-key:<fp>")."""
        ...

    def decrypt(self, envelope: bytes, context: bytes) -> bytes:
        """Open an envelope sealed by encrypt with the same context; SigningKeyError otherwise."""
        ...


def _pack(key_id: str, version: int, nonce: bytes, ciphertext: bytes) -> bytes:
    kid = key_id.encode()
    return _MAGIC + struct.pack(">HI", len(kid), version) + kid + nonce + ciphertext


def _unpack(envelope: bytes) -> tuple[str, int, bytes, bytes]:
    if not envelope.startswith(_MAGIC) or len(envelope) < 10:
        raise SigningKeyError("encrypted value is not a trailkeeper envelope", "the stored secret is corrupt; restore it from backup")
    kid_len, version = struct.unpack(">HI", envelope[4:10])
    kid = envelope[10 : 10 + kid_len].decode()
    rest = envelope[10 + kid_len :]
    return kid, version, rest[:_NONCE_BYTES], rest[_NONCE_BYTES:]


class _AesGcmKeyring:
    def __init__(self, key_id: str, versions: dict[int, bytes]) -> None:
        if not versions:
            raise SigningKeyError("keyring has no key material", "re-run `trailkeeper init`")
        self._key_id = key_id
        self._versions = versions
        self._current = max(versions)

    @property
    def key_id(self) -> str:
        return self._key_id

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        # cryptography is imported on first use: importing config (every CLI command) pulls
        # this module in, and most commands never seal anything.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self._versions[self._current]).encrypt(nonce, plaintext, context)
        return _pack(self._key_id, self._current, nonce, sealed)

    def decrypt(self, envelope: bytes, context: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kid, version, nonce, ciphertext = _unpack(envelope)
        if kid != self._key_id or version not in self._versions:
            raise SigningKeyError(
                f"secret was sealed by key {kid} version {version}, which this keyring does not hold",
                "point trailkeeper at the keyring that sealed it",
            )
        try:
            return AESGCM(self._versions[version]).decrypt(nonce, ciphertext, context)
        except InvalidTag as e:
            raise SigningKeyError("secret failed authentication (tampered or wrong context)") from e


class MemoryKeyring(_AesGcmKeyring):
    """In-memory keyring for tests."""

    def __init__(self, key_id: str = "memory") -> None:
        super().__init__(key_id, {1: secrets.token_bytes(32)})


class LocalKeyring(_AesGcmKeyring):
    """A 256-bit master key in a 0600 file under the data directory's keyring folder."""

    @classmethod
    def open_or_create(cls, directory: Path) -> LocalKeyring:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / MASTER_KEY_FILE
        if not path.exists():
            key = secrets.token_bytes(32)
            key_id = "local-" + secrets.token_hex(8)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{key_id} 1 {key.hex()}\n")
                fh.flush()
                os.fsync(fh.fileno())
        return cls.open(directory)

    @classmethod
    def open(cls, directory: Path) -> LocalKeyring:
        path = directory / MASTER_KEY_FILE
        try:
            lines = path.read_text().split("\n")
        except OSError as e:
            raise SigningKeyError(f"cannot read keyring {path}: {e}", "run `trailkeeper init` or restore the keyring") from e
        versions: dict[int, bytes] = {}
        key_id = ""
        for line in filter(None, lines):
            key_id, version, hexkey = line.split()
            versions[int(version)] = bytes.fromhex(hexkey)
        return cls(key_id, versions)
