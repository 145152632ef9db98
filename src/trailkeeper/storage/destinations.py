"""Which ObjectStore a trail destination names: a folder path, or `s3://bucket[/prefix]`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trailkeeper.clock import Clock
from trailkeeper.storage.base import ObjectStore
from trailkeeper.storage.folder import FolderStore

if TYPE_CHECKING:
    from trailkeeper.storage.s3 import S3Settings

S3_SCHEME = "s3://"


def is_s3(destination: str) -> bool:
    return destination.startswith(S3_SCHEME)


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
