"""Object stores: the seam every log file and digest goes through."""

from trailkeeper.storage.base import ObjectInfo, ObjectStore, StoredObject

__all__ = ["ObjectInfo", "ObjectStore", "StoredObject"]
