"""The fault-injecting store: which calls fail, when, and how often."""

from __future__ import annotations

import pytest

from trailkeeper.errors import ObjectNotFoundError, StorageError
from trailkeeper.storage.faults import FaultyStore
from trailkeeper.storage.memory import MemoryStore


def test_a_fault_before_the_store_writes_nothing() -> None:
    store = FaultyStore(MemoryStore("b"))
    store.fail("put")
    with pytest.raises(StorageError, match="injected fault: put b/k failed before"):
        store.put_exclusive("k", b"x", {})
    with pytest.raises(ObjectNotFoundError):
        store.inner.get("k")


def test_a_fault_after_the_write_leaves_the_object_and_fails_the_call() -> None:
    store = FaultyStore(MemoryStore("b"))
    store.fail("put", after=True, times=1)
    with pytest.raises(StorageError, match="after the write landed"):
        store.put_exclusive("k", b"x", {"m": "1"})
    assert store.inner.get("k").data == b"x"
    store.put_exclusive("k", b"x", {"m": "1"})  # the retry finds its own object: a success
    assert store.struck == 1


def test_faults_apply_to_matching_keys_a_number_of_times_then_heal() -> None:
    store = FaultyStore(MemoryStore("b"))
    store.put_exclusive("logs/a", b"1", {})
    store.put_exclusive("digests/a", b"2", {})
    store.fail("get", key_contains="digests/", times=2)
    assert store.get("logs/a").data == b"1"
    for _ in range(2):
        with pytest.raises(StorageError):
            store.get("digests/a")
    assert store.get("digests/a").data == b"2"  # used up
    store.fail("list")
    with pytest.raises(StorageError):
        store.list("logs/")
    store.heal()
    assert [info.key for info in store.list("")] == ["digests/a", "logs/a"]


@pytest.mark.parametrize("operation, after", [("delete", False), ("get", True)])
def test_impossible_faults_are_refused(operation: str, after: bool) -> None:
    with pytest.raises(ValueError):
        FaultyStore(MemoryStore("b")).fail(operation, after=after)  # type: ignore[arg-type]
