"""In-memory ObjectStore fake with the same semantics as FolderStore, for tests.

Tests may tamper with `_objects` directly (flip a byte, delete a digest, change
the case of a metadata name) and set `fail_writes` to simulate an outage.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace

from trailkeeper.clock import Clock, SystemClock
from trailkeeper.errors import ObjectExistsError, ObjectNotFoundError, StorageError
from trailkeeper.storage.base import ObjectInfo, ObjectVersion, StoredObject
from trailkeeper.storage.folder import validate_key, validate_metadata


class MemoryStore:
    def __init__(self, bucket: str, clock: Clock | None = None) -> None:
        self._bucket = bucket
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._objects: dict[str, StoredObject] = {}
        self.fail_writes = False

    @property
    def bucket(self) -> str:
        return self._bucket

    def put_exclusive(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        validate_key(key)
        meta = validate_metadata(metadata)
        if self.fail_writes:
            raise StorageError(
                f"cannot write {key!r}: simulated outage of bucket {self._bucket!r}",
                "clear MemoryStore.fail_writes",
            )
        with self._lock:
            existing = self._objects.get(key)
            if existing is None:
                self._objects[key] = StoredObject(key, bytes(data), meta, self._clock.now())
                return
        if existing.data != data:
            raise ObjectExistsError(
                f"object {key!r} already exists with different bytes",
                "stored objects are immutable: write under a new key",
            )
        if dict(existing.metadata) != meta:
            raise ObjectExistsError(
                f"object {key!r} already exists with different metadata",
                "stored objects are immutable: write under a new key",
            )

    def get(self, key: str) -> StoredObject:
        validate_key(key)
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise self._not_found(key)
        return StoredObject(found.key, found.data, dict(found.metadata), found.last_modified)

    def sha256(self, key: str) -> str:
        return hashlib.sha256(self.get(key).data).hexdigest()

    def head(self, key: str) -> ObjectInfo:
        found = self.get(key)
        return ObjectInfo(key, len(found.data), found.last_modified, found.metadata)

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Metadata is not returned here (as in S3 ListObjectsV2); use head() for it."""
        after = start_after.encode("utf-8") if start_after is not None else None
        with self._lock:
            snapshot = sorted(
                (obj for key, obj in self._objects.items() if key.startswith(prefix)),
                key=lambda obj: obj.key.encode("utf-8"),
            )
        for obj in snapshot:
            if after is None or obj.key.encode("utf-8") > after:
                yield ObjectInfo(obj.key, len(obj.data), obj.last_modified)

    def _not_found(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(
            f"object {key!r} not found in bucket {self._bucket!r}", "check the key and the prefix"
        )


class VersionedMemoryStore(MemoryStore):
    """A MemoryStore on a "versioned bucket": it keeps every version and delete marker, so
    tests can play the two tamperings only versioned stores can show (catalogue rows 20-21):
    `tamper_delete` (a delete without a version id adds a marker; GET then says not found)
    and `tamper_overwrite` (a second version of a key, bypassing create-only writes)."""

    def __init__(self, bucket: str, clock: Clock | None = None) -> None:
        super().__init__(bucket, clock)
        self._history: dict[str, list[ObjectVersion]] = {}
        self._hidden: dict[str, StoredObject] = {}

    def put_exclusive(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        fresh = key not in self._objects
        super().put_exclusive(key, data, metadata)
        if fresh:
            self._add_version(key, len(data), marker=False)

    def tamper_delete(self, key: str) -> None:
        with self._lock:
            self._hidden[key] = self._objects.pop(key)
        self._add_version(key, 0, marker=True)

    def tamper_overwrite(self, key: str, data: bytes) -> None:
        with self._lock:
            old = self._objects[key]
            self._objects[key] = StoredObject(key, bytes(data), old.metadata, self._clock.now())
        self._add_version(key, len(data), marker=False)

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        with self._lock:
            keys = sorted((k for k in self._history if k.startswith(prefix)), key=lambda k: k.encode("utf-8"))
            snapshot = [list(reversed(self._history[k])) for k in keys]
        for versions in snapshot:
            yield from versions

    def _add_version(self, key: str, size: int, marker: bool) -> None:
        with self._lock:
            history = self._history.setdefault(key, [])
            history[:] = [replace(v, is_latest=False) for v in history]
            history.append(ObjectVersion(key, f"v{len(history) + 1}", True, marker, self._clock.now(), size))
