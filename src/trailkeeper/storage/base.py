"""The ObjectStore protocol: create-exclusive writes, reads, byte-wise sorted listing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredObject:
    key: str
    data: bytes
    metadata: Mapping[str, str]
    last_modified: datetime


class ObjectStore(Protocol):
    """One bucket. Keys are str, '/'-separated, never starting with '/'.

    Metadata keys are stored exactly as given (case preserved) so that tests can
    tamper with their case; writers always use lowercase names.
    """

    @property
    def bucket(self) -> str:
        """The bucket name this store answers to (S3BucketName / digestS3Bucket)."""
        ...

    def put_exclusive(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        """Create `key` durably. If it already exists with identical bytes and
        metadata this is a success (retries are safe); if it exists with different
        content raise ObjectExistsError. Raise StorageError on I/O failure."""
        ...

    def get(self, key: str) -> StoredObject:
        """Raise ObjectNotFoundError if absent."""
        ...

    def head(self, key: str) -> ObjectInfo:
        """Raise ObjectNotFoundError if absent."""
        ...

    def sha256(self, key: str) -> str:
        """Lowercase hex SHA-256 of the stored bytes, without metadata or decoding (the
        validator's stored mode). Raise ObjectNotFoundError if absent."""
        ...

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Keys starting with `prefix` and strictly greater than `start_after`,
        in ascending byte-wise (UTF-8) order."""
        ...


@dataclass(frozen=True)
class ObjectVersion:
    """One entry of a versioned bucket's history: a version of a key, or a delete marker."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    last_modified: datetime
    size: int


@runtime_checkable
class VersionedStore(Protocol):
    """An optional capability of stores on versioned buckets (S3 with Object Lock): the
    validator lists versions to see delete markers and overwrites a plain GET cannot."""

    def list_versions(self, prefix: str = "") -> Iterator[ObjectVersion]:
        """Every version and delete marker of keys starting with `prefix`, by key then newest first."""
        ...
