"""A store that fails on purpose: wraps any ObjectStore and fails chosen calls.

For outage, backlog and crash tests (the model is tessera's fault-injecting storage): a fault
names the operation (put, get, head, sha256, list), whether it strikes before the call reaches
the store or after a write has landed (the store has the object, the caller sees an error: a
lost acknowledgement), which keys it applies to, and how many times. Failures are the
StorageError a real store raises for I/O trouble, so callers cannot tell them apart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from trailkeeper.errors import StorageError
from trailkeeper.storage.base import ObjectInfo, ObjectStore, StoredObject

Operation = Literal["put", "get", "head", "sha256", "list"]
OPERATIONS: tuple[Operation, ...] = ("put", "get", "head", "sha256", "list")


@dataclass
class Fault:
    operation: Operation
    after: bool = False  # put only: the object is written, then the call fails
    key_contains: str = ""  # only keys (or list prefixes) containing this
    times: int | None = None  # None: until healed
    struck: int = 0

    def applies(self, operation: Operation, key: str) -> bool:
        return (operation == self.operation and self.key_contains in key
                and (self.times is None or self.struck < self.times))


class FaultyStore:
    """An ObjectStore that passes every call to `inner` unless a fault strikes."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    # ---- the test's controls ----
    def fail(self, operation: Operation, *, after: bool = False, key_contains: str = "",
             times: int | None = None) -> Fault:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
        if after and operation != "put":
            raise ValueError("only a put can fail after it landed")
        fault = Fault(operation, after, key_contains, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def struck(self) -> int:
        """How many calls the faults have failed so far."""
        with self._lock:
            return sum(f.struck for f in self._faults)

    def _strike(self, operation: Operation, key: str, after: bool) -> None:
        with self._lock:
            fault = next((f for f in self._faults if f.after == after and f.applies(operation, key)), None)
            if fault is None:
                return
            fault.struck += 1
        moment = "after the write landed" if after else "before it reached the store"
        raise StorageError(f"injected fault: {operation} {self.inner.bucket}/{key} failed {moment}",
                           "heal the store (FaultyStore.heal) to end the outage")

    # ---- ObjectStore ----
    @property
    def bucket(self) -> str:
        return self.inner.bucket

    def put_exclusive(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        self._strike("put", key, after=False)
        self.inner.put_exclusive(key, data, metadata)
        self._strike("put", key, after=True)

    def get(self, key: str) -> StoredObject:
        self._strike("get", key, after=False)
        return self.inner.get(key)

    def head(self, key: str) -> ObjectInfo:
        self._strike("head", key, after=False)
        return self.inner.head(key)

    def sha256(self, key: str) -> str:
        self._strike("sha256", key, after=False)
        return self.inner.sha256(key)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        self._strike("list", prefix, after=False)
        return self.inner.list(prefix, start_after)
