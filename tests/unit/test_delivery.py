"""Delivery details that the pipeline tests do not isolate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from trailkeeper import envelope
from trailkeeper._internal.gzipio import gunzip_strict, gzip_single
from trailkeeper.clock import FrozenClock
from trailkeeper.delivery import LogSealer, _put_log_once, build_log_file
from trailkeeper.errors import KeyProviderUnavailableError, StorageError
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.kms import Kms, SqliteKmsRepository
from trailkeeper.storage.memory import MemoryStore

KEY = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/27/x.json.gz"


def test_log_file_is_records_exactly_as_spooled() -> None:
    assert build_log_file([b'{"a":1}', b'{"b":2}']) == b'{"Records":[{"a":1},{"b":2}]}'


def test_retry_adopts_same_content_compressed_differently() -> None:
    store = MemoryStore("b")
    inflated = build_log_file([b'{"eventID":"1"}'])
    earlier = gzip_single(inflated, 9)  # an earlier attempt used another compressor
    store.put_exclusive(KEY, earlier, {})
    assert _put_log_once(store, KEY, inflated) == earlier
    assert gunzip_strict(store.get(KEY).data) == inflated


def test_retry_refuses_other_content_under_the_key() -> None:
    store = MemoryStore("b")
    store.put_exclusive(KEY, gzip_single(build_log_file([b'{"eventID":"other"}'])), {})
    with pytest.raises(StorageError, match="other content"):
        _put_log_once(store, KEY, build_log_file([b'{"eventID":"1"}']))


def _sealer(tmp_path: Path) -> LogSealer:
    kms = Kms(SqliteKmsRepository(tmp_path / "state.db"), MemoryKeyring(), FrozenClock(datetime(2026, 11, 27, tzinfo=UTC)),
              "123456789012", "us-east-1")
    arn = kms.create_key().arn
    return LogSealer(kms, arn, "arn:aws:cloudtrail:us-east-1:123456789012:trail/t")


def test_encrypted_retry_after_a_crash_adopts_the_file_already_written(tmp_path: Path) -> None:
    # A crash between the put and the commit: the retry seals again (a new data key, so other
    # bytes) and must adopt what the first attempt stored, not fail or write twice.
    store, sealer = MemoryStore("b"), _sealer(tmp_path)
    inflated = build_log_file([b'{"eventID":"1"}'])
    first = _put_log_once(store, KEY, inflated, sealer)
    assert envelope.is_envelope(first)
    assert _put_log_once(store, KEY, inflated, sealer) == first
    assert gunzip_strict(sealer.open("b", KEY, store.get(KEY).data)) == inflated


def test_encrypted_retry_refuses_other_content_under_the_key(tmp_path: Path) -> None:
    store, sealer = MemoryStore("b"), _sealer(tmp_path)
    _put_log_once(store, KEY, build_log_file([b'{"eventID":"other"}']), sealer)
    with pytest.raises(StorageError, match="other content"):
        _put_log_once(store, KEY, build_log_file([b'{"eventID":"1"}']), sealer)


def test_a_disabled_key_is_an_outage_to_wait_out_not_an_error_to_drop(tmp_path: Path) -> None:
    store, sealer = MemoryStore("b"), _sealer(tmp_path)
    assert isinstance(sealer.keys, Kms)
    sealer.keys.disable_key(sealer.key_ref)
    with pytest.raises(KeyProviderUnavailableError, match="DisabledException"):
        _put_log_once(store, KEY, build_log_file([b'{"eventID":"1"}']), sealer)
    assert list(store.list()) == []
