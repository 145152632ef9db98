"""The ciphertext blob and sealing with one version of key material (pure functions).

Ciphertext blob (`pack_blob` / `unpack_blob`, integers big-endian):

    magic b"TKK1" | key-id length (1 byte) | key id (ASCII) | key version (4) | nonce (12)
    | AES-256-GCM ciphertext and tag (16)

The associated data is the header (magic to version) followed by the canonical encryption
context (sorted-key JSON), so a blob whose key, version or context was changed fails to
authenticate, and the key version is known without trial decryption.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from trailkeeper.kms.errors import invalid_ciphertext, validation

MAGIC = b"TKK1"
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_ID_BYTES = 64
_HEADER_FIXED = struct.Struct(">4sB")
_VERSION = struct.Struct(">I")


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
        raise invalid_ciphertext("it is not a trailkeeper KMS ciphertext blob")
    kid_len = blob[4]
    body = _HEADER_FIXED.size + kid_len + _VERSION.size
    if not 0 < kid_len <= MAX_KEY_ID_BYTES or len(blob) < body + NONCE_BYTES + TAG_BYTES:
        raise invalid_ciphertext("it is truncated or its header is corrupt")
    try:
        key_id = blob[_HEADER_FIXED.size : _HEADER_FIXED.size + kid_len].decode("ascii")
    except UnicodeDecodeError as e:
        raise invalid_ciphertext("its key id is not ASCII") from e
    (version,) = _VERSION.unpack_from(blob, body - _VERSION.size)
    if version < 1:
        raise invalid_ciphertext("its key version is 0")
    return Ciphertext(key_id, version, blob[body : body + NONCE_BYTES], blob[body + NONCE_BYTES :])


def canonical_context(context: Mapping[str, str] | None) -> bytes:
    """The encryption context as bound to a blob: JSON with sorted keys, b"{}" when empty."""
    items = dict(context or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in items.items()):
        raise validation("EncryptionContext keys and values must be strings.")
    try:
        return orjson.dumps(items, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:
        raise validation(f"EncryptionContext is not valid Unicode text: {e}") from e


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
        raise invalid_ciphertext("it failed authentication (modified, or a different "
                                 "EncryptionContext than at encryption)") from e


def material_id(key_id: str, version: int) -> str:
    """A stable public name of one key-material version (AWS KeyMaterialId: 64 hex chars)."""
    return hashlib.sha256(f"kms-key-material:{key_id}:{version}".encode()).hexdigest()
