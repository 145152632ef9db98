"""All-or-nothing transactions for the in-memory repositories (state.*, kms.repository), and
their common base."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Tables(Generic[T]):
    """A repository's tables (`current`) with transactions: `transaction()` holds a reentrant
    lock while it runs, so it serialises writers as `BEGIN IMMEDIATE` does, and puts back a copy
    of the tables taken at its start when it fails. Every committed transaction bumps `version`.
    Read the tables through `current` each time (holding `lock`): a failed transaction
    replaces the object. Writes go through `writable()`, which refuses a write outside a
    transaction as the SQLite repositories do."""

    def __init__(self, tables: T) -> None:
        self.current = tables
        self.lock = threading.RLock()
        self.version = 0
        self._writer: int | None = None  # the thread inside transaction()

    @contextmanager
    def transaction(self) -> Iterator[T]:
        with self.lock:
            outer = self._writer
            self._writer = threading.get_ident()
            saved = copy.deepcopy(self.current)
            try:
                yield self.current
            except BaseException:
                self.current = saved
                raise
            finally:
                self._writer = outer
            self.version += 1

    def writable(self) -> T:
        """The tables, to change; RuntimeError unless this thread is inside `transaction()`."""
        if self._writer != threading.get_ident():
            raise RuntimeError("a repository write belongs inside transaction()")
        return self.current


class MemoryRepository(Generic[T]):
    """What every transactional in-memory repository shares: its tables, a `transaction()`
    as the SQLite repositories have one, and a `close()` with nothing to release."""

    def __init__(self, tables: T) -> None:
        self._tables = Tables(tables)

    def close(self) -> None:
        pass

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._tables.transaction():
            yield
