"""Envelope encryption of log files: format vectors, round trips, and one named case per tampering."""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper import envelope
from trailkeeper.errors import EnvelopeError, KmsError

ARN = "arn:aws:kms:us-east-1:123456789012:key/0f0e0d0c-0000-4000-8000-000000000001"
TRAIL = "arn:aws:cloudtrail:us-east-1:123456789012:trail/t"
KEY = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/a.json.gz"
CONTEXT = envelope.log_context(TRAIL, "logs", KEY)


@dataclass(frozen=True)
class _Key:
    plaintext: bytes
    blob: bytes
    key_arn: str
    key_version: int


class FakeKms:
    """An in-memory DataKeys: versions of one key; the blob names its version and binds the context."""

    def __init__(self) -> None:
        self.versions = {1: AESGCM.generate_key(bit_length=256)}
        self.disabled = False

    def rotate(self) -> None:
        self.versions[max(self.versions) + 1] = AESGCM.generate_key(bit_length=256)

    def generate_data_key(self, key_ref: str, context: Mapping[str, str], number_of_bytes: int = 32) -> _Key:
        version = max(self.versions)
        plain = AESGCM.generate_key(bit_length=number_of_bytes * 8)
        nonce = b"\x01" * 12
        sealed = AESGCM(self.versions[version]).encrypt(nonce, plain, orjson.dumps(dict(context), option=orjson.OPT_SORT_KEYS))
        return _Key(plain, struct.pack(">I", version) + nonce + sealed, ARN, version)

    def decrypt(self, blob: bytes, context: Mapping[str, str], key_ref: str | None = None) -> _Key:
        if self.disabled:
            raise KmsError("DisabledException", f"{ARN} is disabled.")
        (version,) = struct.unpack(">I", blob[:4])
        try:
            plain = AESGCM(self.versions[version]).decrypt(blob[4:16], blob[16:], orjson.dumps(dict(context), option=orjson.OPT_SORT_KEYS))
        except (InvalidTag, KeyError) as e:
            raise KmsError("InvalidCiphertextException", "") from e
        return _Key(plain, blob, ARN, version)


def _sealed(kms: FakeKms, body: bytes = b"\x1f\x8b log bytes " * 50) -> bytes:
    return envelope.seal(kms, ARN, body, CONTEXT)


def test_round_trip_and_header_names_key_and_version() -> None:
    kms = FakeKms()
    data = _sealed(kms, b"payload")
    header = envelope.read_header(data)
    assert (header.key_arn, header.key_version, dict(header.context)) == (ARN, 1, CONTEXT)
    assert envelope.open_(kms, data, CONTEXT) == b"payload"
    assert b"payload" not in data


def test_every_file_gets_its_own_data_key_and_nonce() -> None:
    kms = FakeKms()
    a, b = envelope.read_header(_sealed(kms)), envelope.read_header(_sealed(kms))
    assert a.wrapped_key != b.wrapped_key and a.nonce != b.nonce


def test_files_sealed_before_rotation_still_open_and_new_ones_use_the_new_version() -> None:
    kms = FakeKms()
    old = _sealed(kms, b"old")
    kms.rotate()
    new = _sealed(kms, b"new")
    assert envelope.read_header(new).key_version == 2
    assert envelope.open_(kms, old, CONTEXT) == b"old" and envelope.open_(kms, new, CONTEXT) == b"new"


def test_header_bytes_known_answer() -> None:
    header = envelope.EnvelopeHeader(ARN, 3, {"b": "2", "a": "1"}, b"\x00" * 12, b"\xff\xfe")
    assert header.to_bytes() == (
        b'{"alg":"AES-256-GCM","context":{"a":"1","b":"2"},"keyArn":"' + ARN.encode()
        + b'","keyVersion":3,"nonce":"AAAAAAAAAAAAAAAA","wrappedKey":"//4="}'
    )
    framed = envelope._prefix(header.to_bytes()) + b"ct"
    assert framed[:10] == b"TKENC1" + struct.pack(">I", len(header.to_bytes()))
    assert envelope.read_header(framed) == header


def test_log_context_names_trail_and_exact_location() -> None:
    assert envelope.log_context(TRAIL, "b", "k/x.json.gz") == {
        "aws:cloudtrail:arn": TRAIL, "aws:s3:arn": "arn:aws:s3:::b/k/x.json.gz"}


def _flip_ciphertext(data: bytes) -> bytes:
    return data[:-20] + bytes([data[-20] ^ 0x01]) + data[-19:]


def _edit_header(data: bytes, edit: Callable[[dict[str, object]], None]) -> bytes:
    (length,) = struct.unpack_from(">I", data, 6)
    doc = orjson.loads(data[10:10 + length])
    edit(doc)
    raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return b"TKENC1" + struct.pack(">I", len(raw)) + raw + data[10 + length:]


def _set(field: str, value: object) -> Callable[[dict[str, object]], None]:
    return lambda doc: doc.__setitem__(field, value)


def _other_files_key(data: bytes) -> bytes:
    donor = envelope.read_header(envelope.seal(_DONOR, ARN, b"x", CONTEXT))
    import base64
    return _edit_header(data, _set("wrappedKey", base64.b64encode(donor.wrapped_key).decode()))


_DONOR = FakeKms()

# name -> (tampering of the sealed bytes, context the reader expects, reason reported)
TAMPERINGS: dict[str, tuple[Callable[[bytes], bytes], Mapping[str, str], str]] = {
    "ciphertext-byte-flipped": (_flip_ciphertext, CONTEXT, envelope.CIPHERTEXT_TAMPERED),
    "ciphertext-truncated": (lambda d: d[:-1], CONTEXT, envelope.CIPHERTEXT_TAMPERED),
    "bytes-appended": (lambda d: d + b"\x00", CONTEXT, envelope.CIPHERTEXT_TAMPERED),
    "moved-to-another-key-path": (lambda d: d, envelope.log_context(TRAIL, "logs", KEY.replace("a.json", "b.json")),
                                  envelope.CONTEXT_MISMATCH),
    "moved-to-another-bucket": (lambda d: d, envelope.log_context(TRAIL, "other", KEY), envelope.CONTEXT_MISMATCH),
    "copied-to-another-trail": (lambda d: d, envelope.log_context(TRAIL + "2", "logs", KEY), envelope.CONTEXT_MISMATCH),
    "header-context-rewritten-to-match-new-path": (
        lambda d: _edit_header(d, _set("context", envelope.log_context(TRAIL, "logs", "moved.json.gz"))),
        envelope.log_context(TRAIL, "logs", "moved.json.gz"), envelope.KEY_UNWRAP_FAILED),
    "header-key-version-changed": (lambda d: _edit_header(d, _set("keyVersion", 2)), CONTEXT, envelope.HEADER_MISMATCH),
    "header-key-arn-changed": (lambda d: _edit_header(d, _set("keyArn", ARN.replace("0001", "0002"))), CONTEXT,
                               envelope.HEADER_MISMATCH),
    "header-nonce-changed": (lambda d: _edit_header(d, _set("nonce", "AAAAAAAAAAAAAAAA")), CONTEXT,
                             envelope.CIPHERTEXT_TAMPERED),
    "wrapped-key-from-another-kms": (_other_files_key, CONTEXT, envelope.KEY_UNWRAP_FAILED),
    "header-length-too-large": (lambda d: d[:6] + struct.pack(">I", 1 << 30) + d[10:], CONTEXT, envelope.FORMAT),
    "header-not-json": (lambda d: d[:10] + b"{" * (struct.unpack_from(">I", d, 6)[0]) + d[10 + struct.unpack_from(">I", d, 6)[0]:],
                        CONTEXT, envelope.FORMAT),
    "magic-removed": (lambda d: d[6:], CONTEXT, envelope.FORMAT),
    "plain-gzip-in-place-of-envelope": (lambda d: b"\x1f\x8b\x08\x00" + d[4:], CONTEXT, envelope.FORMAT),
    "unsupported-algorithm": (lambda d: _edit_header(d, _set("alg", "AES-128-CBC")), CONTEXT, envelope.FORMAT),
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampering_is_detected_with_its_reason(name: str) -> None:
    tamper, context, reason = TAMPERINGS[name]
    kms = FakeKms()
    with pytest.raises(EnvelopeError) as caught:
        envelope.open_(kms, tamper(_sealed(kms)), context)
    assert caught.value.reason == reason, str(caught.value)
    assert str(caught.value)


def test_disabled_key_is_unavailable_not_tampering() -> None:
    kms = FakeKms()
    data = _sealed(kms)
    kms.disabled = True
    with pytest.raises(EnvelopeError) as caught:
        envelope.open_(kms, data, CONTEXT)
    assert caught.value.reason == envelope.KEY_UNAVAILABLE and "DisabledException" in str(caught.value)


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=1, max_value=255), cut=st.booleans())
def test_any_single_byte_change_or_cut_is_refused_with_an_envelope_error(position: int, value: int, cut: bool) -> None:
    kms = _FUZZ_KMS
    position %= len(_FUZZ_SEALED)
    data = _FUZZ_SEALED[:position] if cut else (
        _FUZZ_SEALED[:position] + bytes([_FUZZ_SEALED[position] ^ value]) + _FUZZ_SEALED[position + 1:])
    with pytest.raises(EnvelopeError):
        envelope.open_(kms, data, CONTEXT)


_FUZZ_KMS = FakeKms()
_FUZZ_SEALED = envelope.seal(_FUZZ_KMS, ARN, b"fuzz body " * 20, CONTEXT)
