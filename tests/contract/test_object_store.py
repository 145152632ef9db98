"""The same ObjectStore contract, run against the in-memory fake and the folder store."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from trailkeeper.errors import (
    ObjectExistsError,
    ObjectNotFoundError,
    StorageError,
    StoreFormatError,
)
from trailkeeper.storage.base import ObjectStore
from trailkeeper.storage.faults import FaultyStore
from trailkeeper.storage.folder import MARKER_NAME, TMP_DIR_NAME, FolderStore
from trailkeeper.storage.memory import MemoryStore

StoreFactory = Callable[[], ObjectStore]


@pytest.fixture(params=["memory", "folder", "faulty-without-faults"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "memory":
        return MemoryStore("bucket-a")
    if request.param == "faulty-without-faults":  # the wrapper changes nothing until told to fail
        return FaultyStore(FolderStore(tmp_path / "bucket-a"))
    return FolderStore(tmp_path / "bucket-a")


def keys(store: ObjectStore, prefix: str = "", start_after: str | None = None) -> list[str]:
    return [info.key for info in store.list(prefix, start_after)]


def test_bucket_name(store: ObjectStore) -> None:
    assert store.bucket == "bucket-a"


def test_put_then_get_and_head(store: ObjectStore) -> None:
    store.put_exclusive("a/b/c.json.gz", b"payload", {"signature": "ab12"})
    got = store.get("a/b/c.json.gz")
    assert (got.key, got.data, dict(got.metadata)) == (
        "a/b/c.json.gz",
        b"payload",
        {"signature": "ab12"},
    )
    info = store.head("a/b/c.json.gz")
    assert (info.key, info.size, dict(info.metadata)) == ("a/b/c.json.gz", 7, {"signature": "ab12"})
    assert info.last_modified.tzinfo is not None


def test_identical_retry_succeeds(store: ObjectStore) -> None:
    store.put_exclusive("k", b"same", {"m": "1"})
    store.put_exclusive("k", b"same", {"m": "1"})
    assert store.get("k").data == b"same"


def test_different_bytes_refused(store: ObjectStore) -> None:
    store.put_exclusive("k", b"first", {})
    with pytest.raises(ObjectExistsError, match="different bytes"):
        store.put_exclusive("k", b"second", {})
    assert store.get("k").data == b"first"


def test_different_metadata_refused(store: ObjectStore) -> None:
    store.put_exclusive("k", b"x", {"signature": "aa"})
    with pytest.raises(ObjectExistsError, match="different metadata"):
        store.put_exclusive("k", b"x", {"signature": "bb"})
    with pytest.raises(ObjectExistsError, match="different metadata"):
        store.put_exclusive("k", b"x", {"Signature": "aa"})
    assert dict(store.head("k").metadata) == {"signature": "aa"}


def test_missing_object(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.get("nope")
    with pytest.raises(ObjectNotFoundError):
        store.head("nope/deeper")


def test_directory_like_prefix_is_not_an_object(store: ObjectStore) -> None:
    store.put_exclusive("dir/file", b"x", {})
    with pytest.raises(ObjectNotFoundError):
        store.get("dir")


def test_metadata_case_preserved(store: ObjectStore) -> None:
    meta = {"Signature": "AB", "signature-algorithm": "SHA256withRSA", "X-Mixed": "v"}
    store.put_exclusive("m", b"x", meta)
    assert dict(store.get("m").metadata) == meta
    assert dict(store.head("m").metadata) == meta


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "/abs",
        "a//b",
        "a/",
        "a/../b",
        "x..y",
        "obj.tkmeta",
        "a/./b",
        ".tk-tmp/x",
        ".trailkeeper-store",
    ],
)
def test_bad_keys_refused(store: ObjectStore, bad_key: str) -> None:
    with pytest.raises(StorageError, match="invalid object key"):
        store.put_exclusive(bad_key, b"x", {})


ORDER_KEYS = [
    "a",
    "a-b",
    "a.b",
    "a/b",
    "a/b/c",
    "a0",
    "a_b",
    "A",
    "Z/z",
    "b!",
    "b/é",
    "b/z",
    "é",
    "2024/01/02/x",
    "2024/01/10/x",
    "2024/01/2",
    "2024-01",
]


def test_listing_is_bytewise_order(store: ObjectStore) -> None:
    # "a" and "a/b" cannot coexist in a folder, so the folder-safe subset is used.
    safe = [k for k in ORDER_KEYS if k not in ("a", "a/b")]
    for key in reversed(safe):
        store.put_exclusive(key, key.encode(), {})
    expected = sorted(safe, key=lambda k: k.encode("utf-8"))
    assert keys(store) == expected
    assert [i.size for i in store.list()] == [len(k.encode()) for k in expected]


def test_listing_order_is_utf8_not_utf16(store: ObjectStore) -> None:
    # U+E000 (EE 80 80) < U+10000 (F0 90 80 80) in UTF-8, the reverse in UTF-16 code units.
    store.put_exclusive("\U00010000", b"x", {})
    store.put_exclusive("\ue000", b"x", {})
    assert keys(store) == ["\ue000", "\U00010000"]


def test_prefix_and_start_after(store: ObjectStore) -> None:
    for key in ["p/1", "p/2/x", "p/2/y", "p/3", "p-1", "q/1", "p"]:
        if key == "p":
            continue
        store.put_exclusive(key, b"x", {})
    assert keys(store, "p/") == ["p/1", "p/2/x", "p/2/y", "p/3"]
    assert keys(store, "p") == ["p-1", "p/1", "p/2/x", "p/2/y", "p/3"]
    assert keys(store, "p/2") == ["p/2/x", "p/2/y"]
    assert keys(store, "p/", "p/2/x") == ["p/2/y", "p/3"]
    assert keys(store, "p/", "p/2") == ["p/2/x", "p/2/y", "p/3"]
    assert keys(store, "p/", "p/2/y") == ["p/3"]
    assert keys(store, "", "p/3") == ["q/1"]
    assert keys(store, "", "p-1") == ["p/1", "p/2/x", "p/2/y", "p/3", "q/1"]
    assert keys(store, "", "a") == keys(store)
    assert keys(store, "", "z") == []
    assert keys(store, "nothing/") == []


def test_date_partitioned_prefix(store: ObjectStore) -> None:
    base = "AWSLogs/111122223333/CloudTrail/us-east-1"
    for day in (1, 2, 10):
        for n in (1, 2):
            store.put_exclusive(f"{base}/2024/01/{day:02d}/f{n}.json.gz", b"x", {})
    assert keys(store, f"{base}/2024/01/02/") == [
        f"{base}/2024/01/02/f1.json.gz",
        f"{base}/2024/01/02/f2.json.gz",
    ]
    assert keys(store, f"{base}/", f"{base}/2024/01/02/f2.json.gz") == [
        f"{base}/2024/01/10/f1.json.gz",
        f"{base}/2024/01/10/f2.json.gz",
    ]


def test_list_does_not_return_metadata(store: ObjectStore) -> None:
    store.put_exclusive("k", b"x", {"signature": "s"})
    assert [dict(i.metadata) for i in store.list()] == [{}]


# -- folder-only ------------------------------------------------------------


def test_folder_marker_created(tmp_path: Path) -> None:
    FolderStore(tmp_path / "s")
    assert orjson.loads((tmp_path / "s" / MARKER_NAME).read_bytes()) == {"format": 1}


def test_folder_bucket_defaults_to_folder_name(tmp_path: Path) -> None:
    assert FolderStore(tmp_path / "my-bucket").bucket == "my-bucket"
    assert FolderStore(tmp_path / "x", bucket="other").bucket == "other"


@pytest.mark.parametrize("marker", [b'{"format": 2}', b"{}", b"not json", b'["format", 1]'])
def test_folder_unknown_marker_refused(tmp_path: Path, marker: bytes) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / MARKER_NAME).write_bytes(marker)
    with pytest.raises(StoreFormatError):
        FolderStore(root)


def test_folder_reopen_keeps_objects(tmp_path: Path) -> None:
    FolderStore(tmp_path / "s").put_exclusive("a/b", b"x", {"k": "v"})
    reopened = FolderStore(tmp_path / "s")
    assert reopened.get("a/b").data == b"x"
    assert dict(reopened.get("a/b").metadata) == {"k": "v"}


def test_folder_unwritable_destination(tmp_path: Path) -> None:
    # Tests run as root, which chmod cannot stop; a regular file where a directory
    # must be created makes mkdir fail the same way a permission error would.
    store = FolderStore(tmp_path / "s")
    store.put_exclusive("blocker", b"x", {})
    with pytest.raises(StorageError) as caught:
        store.put_exclusive("blocker/child", b"y", {})
    assert "blocker" in str(caught.value)
    assert caught.value.hint


def test_folder_directory_in_the_way(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    store.put_exclusive("parent/child", b"x", {})
    with pytest.raises(StorageError, match="directory is in the way"):
        store.put_exclusive("parent", b"y", {})


def test_folder_store_under_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(StorageError, match="cannot create the store folder"):
        FolderStore(tmp_path / "file" / "s")


def test_folder_temp_files_invisible(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    (tmp_path / "s" / TMP_DIR_NAME / "123-leftover").write_bytes(b"partial")
    store.put_exclusive("k", b"x", {"a": "b"})
    assert keys(store) == ["k"]
    assert os.listdir(tmp_path / "s" / TMP_DIR_NAME) == ["123-leftover"]


def test_folder_crash_leftover_sidecar_accepted_on_identical_retry(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    (tmp_path / "s" / "k.tkmeta").write_bytes(orjson.dumps({"a": "b"}))
    store.put_exclusive("k", b"x", {"a": "b"})
    assert dict(store.get("k").metadata) == {"a": "b"}


def test_folder_crash_leftover_sidecar_with_other_metadata_refused(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    (tmp_path / "s" / "k.tkmeta").write_bytes(orjson.dumps({"a": "other"}))
    with pytest.raises(ObjectExistsError, match="uncommitted metadata"):
        store.put_exclusive("k", b"x", {"a": "b"})
    with pytest.raises(ObjectNotFoundError):
        store.get("k")


def test_folder_missing_sidecar_means_empty_metadata(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    store.put_exclusive("k", b"x", {"a": "b"})
    (tmp_path / "s" / "k.tkmeta").unlink()
    assert dict(store.head("k").metadata) == {}


def test_memory_fail_writes() -> None:
    store = MemoryStore("b")
    store.fail_writes = True
    with pytest.raises(StorageError, match="simulated outage"):
        store.put_exclusive("k", b"x", {})
    store.fail_writes = False
    store.put_exclusive("k", b"x", {})
    assert store.get("k").data == b"x"


def test_folder_listing_only_descends_into_matching_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FolderStore(tmp_path / "s")
    for month in ("01", "02", "03"):
        for day in ("01", "02"):
            store.put_exclusive(f"logs/2024/{month}/{day}/f", b"x", {})
    visited: list[str] = []
    real_scandir = os.scandir

    def spy(path: str | Path) -> object:
        visited.append(os.path.relpath(path, tmp_path / "s"))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    assert keys(store, "logs/2024/02/", "logs/2024/02/01/f") == ["logs/2024/02/02/f"]
    # 02/01 may still hold keys after ".../01/f"; months 01 and 03 are never opened.
    assert visited == [
        ".",
        "logs",
        "logs/2024",
        "logs/2024/02",
        "logs/2024/02/01",
        "logs/2024/02/02",
    ]
