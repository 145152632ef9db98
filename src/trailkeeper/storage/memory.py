"""In-memory ObjectStore fake with the same semantics as FolderStore, for tests.

Tests may tamper with `_objects` directly (flip a byte, delete a digest, change
the case of a metadata name) and set `fail_writes` to simulate an outage.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping

from trailkeeper.clock import Clock, SystemClock
from trailkeeper.errors import ObjectExistsError, ObjectNotFoundError, StorageError
from trailkeeper.storage.base import ObjectInfo, StoredObject
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
