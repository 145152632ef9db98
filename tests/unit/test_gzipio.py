"""Strict gzip: one member in, one member out, and every other shape rejected with its code."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper._internal import gzipio
from trailkeeper._internal.gzipio import (
    INVALID_FORMAT,
    MULTI_MEMBER_GZIP,
    TRAILING_DATA,
    GzipFormatError,
    gunzip_strict,
    gunzip_strict_sha256,
    gzip_single,
)

PAYLOAD = b'{"Records":[' + b",".join(b'{"eventID":"%d"}' % i for i in range(5000)) + b"]}"


@pytest.fixture(params=["isal", "zlib"], autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run every test against both inflaters: they must agree on every case."""
    if request.param == "zlib":
        monkeypatch.setattr(gzipio, "_decompressobj", gzipio._zlib_factory)
    else:
        assert gzipio._decompressobj is not gzipio._zlib_factory, (
            "isal should be in use when installed"
        )
    yield request.param


def _both(data: bytes) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("gunzip_strict", lambda: gunzip_strict(data)),
        ("sha256", lambda: gunzip_strict_sha256(data)),
    ]


def _expect(data: bytes, code: str) -> None:
    for name, call in _both(data):
        with pytest.raises(GzipFormatError) as info:
            call()
        assert info.value.code == code, name


def test_gzip_single_is_one_member_with_zero_mtime() -> None:
    blob = gzip_single(PAYLOAD)
    assert blob[:2] == b"\x1f\x8b" and blob[4:8] == b"\x00\x00\x00\x00"
    assert gzip_single(PAYLOAD) == blob
    assert gzip.decompress(blob) == PAYLOAD
    assert gunzip_strict(blob) == PAYLOAD


def test_level_changes_size_not_content() -> None:
    fast, best = gzip_single(PAYLOAD, level=1), gzip_single(PAYLOAD, level=9)
    assert len(best) < len(fast)
    assert gunzip_strict(fast) == gunzip_strict(best) == PAYLOAD


def test_sha256_and_size_match_inflated_bytes() -> None:
    assert gunzip_strict_sha256(gzip_single(PAYLOAD)) == (
        hashlib.sha256(PAYLOAD).hexdigest(),
        len(PAYLOAD),
    )


def test_known_answer_empty_object() -> None:
    # Spec §3.1: the log content `{}` hashes to this value.
    digest, size = gunzip_strict_sha256(gzip_single(b"{}"))
    assert (
        digest == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" and size == 2
    )


def test_empty_payload() -> None:
    assert gunzip_strict(gzip_single(b"")) == b""
    assert gunzip_strict_sha256(gzip_single(b"")) == (hashlib.sha256(b"").hexdigest(), 0)


def test_member_with_header_fields_is_accepted() -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="log.json", mode="wb", fileobj=buf, mtime=1234) as fh:
        fh.write(PAYLOAD)
    assert gunzip_strict(buf.getvalue()) == PAYLOAD


def test_large_input_crosses_chunk_boundaries() -> None:
    # Incompressible and highly compressible parts: exercises both the input and output chunking.
    data = os.urandom(3 * gzipio.INPUT_CHUNK + 17) + b"\x00" * (5 * gzipio.OUTPUT_CHUNK + 3)
    blob = gzip_single(data, level=1)
    assert gunzip_strict_sha256(blob) == (hashlib.sha256(data).hexdigest(), len(data))
    assert gunzip_strict(blob) == data


def test_second_member_is_multi_member() -> None:
    _expect(gzip_single(PAYLOAD) + gzip_single(b"{}"), MULTI_MEMBER_GZIP)


def test_second_member_after_large_first_member() -> None:
    first = gzip_single(os.urandom(gzipio.INPUT_CHUNK + 5), level=1)
    _expect(first + gzip_single(b"x"), MULTI_MEMBER_GZIP)


@pytest.mark.parametrize(
    "extra", [b"x", b"\x00", b"\x00" * 512, b"\x1f", b"\x8b\x1f", b"garbage after the end"]
)
def test_trailing_bytes(extra: bytes) -> None:
    _expect(gzip_single(PAYLOAD) + extra, TRAILING_DATA)


def test_trailing_bytes_beyond_first_input_chunk() -> None:
    blob = gzip_single(b"{}")
    padded = blob + b"\x00" * (2 * gzipio.INPUT_CHUNK)
    _expect(padded, TRAILING_DATA)


@pytest.mark.parametrize("cut", [1, 4, 8, 20])
def test_truncated(cut: int) -> None:
    _expect(gzip_single(PAYLOAD)[:-cut], INVALID_FORMAT)


def _flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize(
    ("label", "data"),
    [
        ("empty", b""),
        ("not gzip", b"hello world"),
        ("zlib framing", zlib.compress(PAYLOAD)),
        ("raw deflate", zlib.compressobj(wbits=-15).compress(PAYLOAD)),
        ("bad crc", _flip(gzip_single(PAYLOAD), -6)),
        ("bad size", _flip(gzip_single(PAYLOAD), -2)),
        ("bad method", gzip_single(PAYLOAD)[:2] + b"\x09" + gzip_single(PAYLOAD)[3:]),
        ("header only", gzip_single(PAYLOAD)[:10]),
    ],
)
def test_invalid(label: str, data: bytes) -> None:
    _expect(data, INVALID_FORMAT)


def test_corrupt_body_never_passes() -> None:
    # Any single flipped bit in the deflate body or trailer must be caught
    # (CRC-32 detects every single-bit error).
    blob = gzip_single(PAYLOAD[:2000])
    for index in range(10, len(blob)):
        with pytest.raises(GzipFormatError):
            gunzip_strict(_flip(blob, index))


def test_max_size_bounds_inflation() -> None:
    bomb = gzip_single(b"\x00" * (4 * gzipio.OUTPUT_CHUNK))
    assert len(gunzip_strict(bomb, max_size=4 * gzipio.OUTPUT_CHUNK)) == 4 * gzipio.OUTPUT_CHUNK
    with pytest.raises(GzipFormatError) as info:
        gunzip_strict(bomb, max_size=1000)
    assert info.value.code == INVALID_FORMAT and "limit" in str(info.value)


def test_error_is_a_value_error_with_message() -> None:
    with pytest.raises(ValueError, match="after the end"):
        gunzip_strict(gzip_single(b"{}") + b"!")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=20000), st.integers(min_value=0, max_value=9))
def test_round_trip_property(data: bytes, level: int) -> None:
    blob = gzip_single(data, level)
    assert gunzip_strict(blob) == data
    assert gunzip_strict_sha256(blob) == (hashlib.sha256(data).hexdigest(), len(data))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=2000), st.binary(min_size=1, max_size=64))
def test_any_suffix_is_rejected_property(data: bytes, suffix: bytes) -> None:
    expected = MULTI_MEMBER_GZIP if suffix.startswith(b"\x1f\x8b") else TRAILING_DATA
    with pytest.raises(GzipFormatError) as info:
        gunzip_strict_sha256(gzip_single(data) + suffix)
    assert info.value.code == expected
