"""`trailkeeper server` with every destination store wrapped in a FaultyStore that a test
switches from outside the process: while the file `--faults FILE` exists, puts fail (its text:
`before` — nothing lands; `after` — the object lands and the answer is lost); once it is gone,
the store heals. Everything else is the real server (uvicorn, threads, signals, spool).

    python -m tests.e2e.faulty_server --faults FILE --data-dir DIR --host H --port P
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from trailkeeper.server import serve
from trailkeeper.storage.base import ObjectInfo, ObjectStore, StoredObject
from trailkeeper.storage.faults import FaultyStore

MODES = ("before", "after")


class SwitchedStore:
    """An ObjectStore whose FaultyStore is armed while the switch file exists."""

    def __init__(self, inner: ObjectStore, switch: Path) -> None:
        self._faulty = FaultyStore(inner)
        self._switch = switch
        self._armed: str | None = None
        self._lock = threading.Lock()

    def _sync(self) -> None:
        try:
            mode: str | None = self._switch.read_text().strip() or "before"
        except FileNotFoundError:
            mode = None
        if mode is not None and mode not in MODES:
            raise SystemExit(f"{self._switch}: unknown fault mode {mode!r}; one of {', '.join(MODES)}")
        with self._lock:
            if mode == self._armed:
                return
            self._faulty.heal()
            if mode is not None:
                self._faulty.fail("put", after=mode == "after")
            self._armed = mode

    @property
    def bucket(self) -> str:
        return self._faulty.bucket

    def put_exclusive(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        self._sync()
        self._faulty.put_exclusive(key, data, metadata)

    def get(self, key: str) -> StoredObject:
        return self._faulty.get(key)

    def head(self, key: str) -> ObjectInfo:
        return self._faulty.head(key)

    def sha256(self, key: str) -> str:
        return self._faulty.sha256(key)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        return self._faulty.list(prefix, start_after)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faults", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    return serve(args.data_dir, args.host, args.port, None,
                 wrap_store=lambda store: SwitchedStore(store, args.faults))


if __name__ == "__main__":
    raise SystemExit(main())
