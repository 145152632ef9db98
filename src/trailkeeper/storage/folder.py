"""A local-folder ObjectStore with create-exclusive, crash-safe writes.

Layout under `root`:
  <key>                 object bytes (its existence marks the commit)
  <key>.tkmeta          JSON metadata sidecar, written before the object
  .tk-tmp/              temp files (same filesystem, so os.link works)
  .trailkeeper-store    format marker {"format": 1}

Writes go temp file -> fsync -> os.link (fails if the name exists) -> fsync the
directory, so a crash leaves either nothing, an orphaned sidecar (accepted when
a retry brings identical metadata) or the complete object.
"""

from __future__ import annotations

import builtins
import errno
import hashlib
import io
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import orjson

from trailkeeper._internal.fsutil import fsync_dir, write_synced
from trailkeeper.errors import (
    ObjectExistsError,
    ObjectNotFoundError,
    StorageError,
    StoreFormatError,
)
from trailkeeper.storage.base import ObjectInfo, StoredObject

FORMAT_VERSION = 1
MARKER_NAME = ".trailkeeper-store"
TMP_DIR_NAME = ".tk-tmp"
SIDECAR_SUFFIX = ".tkmeta"
# Temp files older than this are leftovers of a crashed writer, not in-flight writes.
STALE_TMP_SECONDS = 3600.0

_RESERVED_FIRST_SEGMENTS = frozenset({MARKER_NAME, TMP_DIR_NAME})

_ERRNO_HINTS = {
    errno.ENOSPC: "the disk is full: free space or move the store to a larger volume",
    errno.EDQUOT: "the disk quota is exhausted: raise the quota or free space",
    errno.EACCES: "permission denied: check the owner and mode of the store folder",
    errno.EPERM: "operation not permitted: check the owner and mode of the store folder",
    errno.EROFS: "the filesystem is read-only: remount it read-write",
    errno.ENOTDIR: "a path component is a file: keys 'a' and 'a/b' cannot both exist in a folder store",
    errno.EISDIR: "a directory is in the way: keys 'a' and 'a/b' cannot both exist in a folder store",
    errno.EEXIST: "a file is in the way: keys 'a' and 'a/b' cannot both exist in a folder store",
}


def validate_key(key: str) -> None:
    """Refuse keys that cannot map safely onto a folder (shared by every trailkeeper store)."""
    problem = _key_problem(key)
    if problem:
        raise StorageError(
            f"invalid object key {key!r}: {problem}",
            "use '/'-separated keys without empty, '.' or '..' segments",
        )


def _key_problem(key: str) -> str:
    if not isinstance(key, str) or not key:
        return "the key is empty"
    if key.startswith("/"):
        return "it starts with '/'"
    if ".." in key:
        return "it contains '..'"
    if "\x00" in key:
        return "it contains a NUL character"
    if key.endswith(SIDECAR_SUFFIX):
        return f"it ends with the reserved suffix {SIDECAR_SUFFIX!r}"
    segments = key.split("/")
    if any(segment in ("", ".") for segment in segments):
        return "it has an empty or '.' segment"
    if segments[0] in _RESERVED_FIRST_SEGMENTS:
        return f"{segments[0]!r} is reserved by the folder store"
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    return ""


def validate_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for name, value in metadata.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise StorageError(
                f"invalid metadata entry {name!r}: {value!r}",
                "metadata names must be non-empty strings and values strings",
            )
        clean[name] = value
    return clean


_HASH_BUFFER = threading.local()
HASH_CHUNK = 4 << 20


def _hash_file(f: io.RawIOBase) -> str:
    """SHA-256 of a file read into a reused per-thread buffer: a fresh multi-megabyte bytes
    object per file costs a page fault per 4 KiB, which showed up as a third of the time."""
    buffer: bytearray | None = getattr(_HASH_BUFFER, "buffer", None)
    if buffer is None:
        buffer = _HASH_BUFFER.buffer = bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    while n := f.readinto(view):
        digest.update(view[:n])
    return digest.hexdigest()


def storage_error(action: str, path: Path | str, exc: OSError) -> StorageError:
    hint = _ERRNO_HINTS.get(exc.errno or 0, "check the folder exists and is writable")
    return StorageError(f"cannot {action} {path}: {exc.strerror or exc}", hint)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, UTC)


class FolderStore:
    """ObjectStore on a local folder; safe against crashes and concurrent writers."""

    def __init__(self, root: Path, bucket: str | None = None) -> None:
        self._root = Path(root)
        self._bucket = bucket if bucket is not None else self._root.name
        self._tmp = self._root / TMP_DIR_NAME
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(exist_ok=True)
        except OSError as e:
            raise storage_error("create the store folder", self._root, e) from e
        self._check_marker()
        self._remove_stale_temps()

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def root(self) -> Path:
        return self._root

    # -- writes ---------------------------------------------------------

    def put_exclusive(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        validate_key(key)
        meta = validate_metadata(metadata)
        path = self._path(key)
        if self._exists(path):
            self._require_same(key, path, data, meta)
            return
        self._makedirs(path.parent)
        sidecar = self._sidecar(path)
        if not self._link_new(sidecar, orjson.dumps(meta)) and self._read_meta(sidecar) != meta:
            if self._exists(path):
                self._require_same(key, path, data, meta)
                return
            raise ObjectExistsError(
                f"object {key!r} has uncommitted metadata from an earlier write that differs",
                f"if no other writer is running, delete {sidecar} and retry",
            )
        if not self._link_new(path, data):
            self._require_same(key, path, data, meta)

    def _require_same(self, key: str, path: Path, data: bytes, meta: dict[str, str]) -> None:
        if self._read_bytes(path) != data:
            raise ObjectExistsError(
                f"object {key!r} already exists with different bytes",
                "stored objects are immutable: write under a new key",
            )
        if self._read_meta(self._sidecar(path)) != meta:
            raise ObjectExistsError(
                f"object {key!r} already exists with different metadata",
                "stored objects are immutable: write under a new key",
            )

    def _link_new(self, final: Path, data: bytes) -> bool:
        """Durably create `final` with `data`; False if the name already existed."""
        tmp = self._tmp / f"{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(8)}"
        try:
            write_synced(tmp, data)
            try:
                os.link(tmp, final)
            except FileExistsError:
                if final.is_dir():
                    raise StorageError(
                        f"cannot write {final}: a directory is in the way",
                        "keys 'a' and 'a/b' cannot both exist in a folder store",
                    ) from None
                return False
            fsync_dir(final.parent)
            return True
        except OSError as e:
            raise storage_error("write", final, e) from e
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise storage_error("remove temp file", tmp, e) from e

    def _makedirs(self, directory: Path) -> None:
        missing: list[Path] = []
        probe = directory
        while probe != self._root and not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        for new_dir in reversed(missing):
            try:
                new_dir.mkdir(exist_ok=True)
                fsync_dir(new_dir.parent)
            except OSError as e:
                raise storage_error("create directory", new_dir, e) from e

    # -- reads ----------------------------------------------------------

    def get(self, key: str) -> StoredObject:
        validate_key(key)
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise self._not_found(key) from e
        except OSError as e:
            raise storage_error("read", path, e) from e
        return StoredObject(key, data, self._read_meta(self._sidecar(path)), _mtime(st))

    def sha256(self, key: str) -> str:
        validate_key(key)
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as f:
                return _hash_file(f)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            raise self._not_found(key) from e
        except OSError as e:
            raise storage_error("read", path, e) from e

    def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        path = self._path(key)
        st = self._stat_file(path)
        if st is None:
            raise self._not_found(key)
        return ObjectInfo(key, st.st_size, _mtime(st), self._read_meta(self._sidecar(path)))

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Metadata is not returned here (as in S3 ListObjectsV2); use head() for it."""
        want = prefix.encode("utf-8")
        after = start_after.encode("utf-8") if start_after is not None else None
        return self._walk(self._root, b"", want, after)

    def _walk(
        self, directory: Path, rel: bytes, want: bytes, after: bytes | None
    ) -> Iterator[ObjectInfo]:
        for sort_key, name, is_dir in self._sorted_entries(directory, rel):
            full = rel + sort_key
            if is_dir:
                if not (full.startswith(want) or want.startswith(full)):
                    continue
                if after is not None and full < after and not after.startswith(full):
                    continue
                yield from self._walk(directory / name, full, want, after)
                continue
            if not full.startswith(want) or (after is not None and full <= after):
                continue
            st = self._stat_file(directory / name)
            if st is not None:
                yield ObjectInfo(full.decode("utf-8"), st.st_size, _mtime(st))

    def _sorted_entries(
        self, directory: Path, rel: bytes
    ) -> builtins.list[tuple[bytes, str, bool]]:
        # A directory sorts as "name/": every key inside it starts with that, which
        # keeps the walk in global byte-wise order ('-' and '.' sort before '/').
        entries: builtins.list[tuple[bytes, str, bool]] = []
        try:
            with os.scandir(directory) as it:
                for entry in it:
                    name = entry.name
                    if name.endswith(SIDECAR_SUFFIX) or (
                        not rel and name in _RESERVED_FIRST_SEGMENTS
                    ):
                        continue
                    is_dir = entry.is_dir(follow_symlinks=False)
                    encoded = name.encode("utf-8", "surrogateescape")
                    entries.append((encoded + b"/" if is_dir else encoded, name, is_dir))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise storage_error("list", directory, e) from e
        entries.sort()
        return entries

    # -- helpers --------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self._root.joinpath(*key.split("/"))

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(path.name + SIDECAR_SUFFIX)

    def _not_found(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(
            f"object {key!r} not found in bucket {self._bucket!r}", "check the key and the prefix"
        )

    @staticmethod
    def _stat_file(path: Path) -> os.stat_result | None:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise storage_error("stat", path, e) from e
        return st if not os.path.isdir(path) else None

    def _exists(self, path: Path) -> bool:
        return self._stat_file(path) is not None

    @staticmethod
    def _read_bytes(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise storage_error("read", path, e) from e

    @staticmethod
    def _read_meta(sidecar: Path) -> dict[str, str]:
        try:
            raw = sidecar.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise storage_error("read metadata", sidecar, e) from e
        try:
            meta = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise StorageError(
                f"metadata file {sidecar} is not JSON", "restore it from a backup"
            ) from e
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise StorageError(
                f"metadata file {sidecar} is not a string map", "restore it from a backup"
            )
        return meta

    def _check_marker(self) -> None:
        marker = self._root / MARKER_NAME
        if not marker.exists():
            self._link_new(marker, orjson.dumps({"format": FORMAT_VERSION}))
        try:
            content = orjson.loads(marker.read_bytes())
        except OSError as e:
            raise storage_error("read the format marker", marker, e) from e
        except orjson.JSONDecodeError as e:
            raise StoreFormatError(
                f"format marker {marker} is not JSON", 'restore it: it must read {"format": 1}'
            ) from e
        version = content.get("format") if isinstance(content, dict) else None
        if version != FORMAT_VERSION:
            raise StoreFormatError(
                f"store {self._root} has format {version!r}; this trailkeeper supports {FORMAT_VERSION}",
                "use the trailkeeper version that wrote this store, or point to another folder",
            )

    def _remove_stale_temps(self) -> None:
        cutoff = time.time() - STALE_TMP_SECONDS
        try:
            with os.scandir(self._tmp) as it:
                for entry in it:
                    if entry.is_file() and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
        except OSError as e:
            raise storage_error("clean temp files in", self._tmp, e) from e
