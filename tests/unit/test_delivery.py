"""Delivery details that the pipeline tests do not isolate."""

from __future__ import annotations

import pytest

from trailkeeper._internal.gzipio import gunzip_strict, gzip_single
from trailkeeper.delivery import _put_log_once, build_log_file
from trailkeeper.errors import StorageError
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
