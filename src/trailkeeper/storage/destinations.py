"""Which ObjectStore a trail destination names: a folder path, or `s3://bucket[/prefix]`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from trailkeeper.clock import Clock
from trailkeeper.errors import ConfigError
from trailkeeper.storage.base import ObjectStore
from trailkeeper.storage.folder import FolderStore

if TYPE_CHECKING:
    from trailkeeper.storage.s3 import S3Settings

S3_SCHEME = "s3://"


def is_s3(destination: str) -> bool:
    return destination.startswith(S3_SCHEME)


def s3_destination(bucket: str, prefix: str = "") -> str:
    return f"{S3_SCHEME}{bucket}/{prefix}" if prefix else f"{S3_SCHEME}{bucket}"


def open_destination(destination: str, bucket: str, object_lock_days: int, s3: S3Settings | None,
                     clock: Clock) -> ObjectStore:
    """The store of one trail: the server writes through it, the offline validator reads it."""
    if not is_s3(destination):
        return FolderStore(Path(destination), bucket)
    # Imported here: boto3 costs ~150 ms, paid only where S3 destinations are used.
    from trailkeeper.storage.s3 import ObjectLockPolicy, S3Settings, S3Store, s3_client

    settings = s3 or S3Settings()
    lock = ObjectLockPolicy(days=object_lock_days) if object_lock_days else None
    return S3Store(s3_client(settings), bucket, lock=lock, clock=clock, sse_kms_key_id=settings.sse_kms_key_id)


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# S3's bucket naming rules (an address-like name is refused too).
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def parse_destination(url: str) -> tuple[str, str]:
    """`s3://bucket[/prefix]` -> (bucket, prefix without leading or trailing '/')."""
    if not is_s3(url):
        raise ConfigError(
            f"destination {url!r} is not an s3:// URL", "write it as s3://bucket/prefix"
        )
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    problem = _bucket_problem(bucket)
    if problem:
        raise ConfigError(
            f"destination {url!r}: bucket name {bucket!r} {problem}",
            "S3 bucket names are 3-63 characters of a-z, 0-9, '.' and '-'",
        )
    prefix = prefix.removesuffix("/")
    if prefix and any(seg in ("", ".", "..") for seg in prefix.split("/")):
        raise ConfigError(
            f"destination {url!r}: prefix {prefix!r} has an empty, '.' or '..' segment",
            "write the prefix as '/'-separated names, e.g. s3://bucket/audit/prod",
        )
    return bucket, prefix


def _bucket_problem(bucket: str) -> str:
    if not _BUCKET_NAME.match(bucket):
        return "is not 3-63 lowercase letters, digits, '.' or '-' starting and ending alphanumeric"
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "has adjacent '.'/'-' characters"
    if _IPV4.match(bucket):
        return "looks like an IP address"
    return ""


# Folders a trail may never write into or serve (and their descendants): the system's own.
SYSTEM_PATHS = tuple(Path(p) for p in ("/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var"))


def folder_destination_problem(destination: str, bucket: str, data_dir: Path, buckets_dir: Path,
                               others: list[tuple[str, str]]) -> str | None:
    """Why a folder may not be a trail's destination, or None.

    Refused: the root folder and the system folders (SYSTEM_PATHS and below); a folder that
    overlaps the data directory (its keys and state) other than a bucket folder under
    `buckets_dir`; a folder nested in, or holding, another trail's destination, or the same
    folder under another bucket name (`others`: (destination, bucket) of the other trails);
    and a folder that already holds files but is not a trailkeeper store.
    """
    if is_s3(destination):
        return None
    folder = _real(Path(destination))
    if folder == Path("/") or any(folder == p or p in folder.parents for p in SYSTEM_PATHS):
        return f"{folder} is a system folder; choose a folder of its own for the trail's logs"
    data, managed = _real(data_dir), _real(buckets_dir)
    in_managed = managed in folder.parents
    if not in_managed and (folder == data or data in folder.parents or folder in data.parents):
        return (f"{folder} overlaps the data directory {data} (keys and state); choose a folder outside it, "
                "or give only S3BucketName to use a bucket folder under it")
    for other, other_bucket in others:
        if is_s3(other):
            continue
        theirs = _real(Path(other))
        if theirs == folder and other_bucket != bucket:
            return f"{folder} is already the destination of bucket {other_bucket}; one folder serves one bucket"
        if theirs != folder and (theirs in folder.parents or folder in theirs.parents):
            return f"{folder} overlaps the destination {theirs} of another trail; trails' folders must not nest"
    return _not_a_store(folder)


def _not_a_store(folder: Path) -> str | None:
    from trailkeeper.storage.folder import MARKER_NAME

    if not folder.exists() or (folder / MARKER_NAME).exists():
        return None
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if any(folder.iterdir()):
        return f"{folder} already holds files and is not a trailkeeper store; choose an empty or new folder"
    return None


def _real(path: Path) -> Path:
    # resolve() follows symbolic links, so a link cannot smuggle a system folder in.
    return path.expanduser().resolve()
