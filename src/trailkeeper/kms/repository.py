"""Where the KMS keeps its keys: the KmsRepository protocol, SQLite (tables kms_keys,
kms_key_material, kms_aliases, kms_tags and kms_deleted_keys of the state database) and memory.

Rows hold what the tables hold (times in microseconds since the epoch; key material only as
sealed by the root of trust). Writes belong inside `transaction()`; a missing or taken row is
None or False, and the Kms turns that into AWS KMS's errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from trailkeeper._internal.memory import MemoryRepository
from trailkeeper._internal.sqlite import Database
from trailkeeper.state.schema import STATE_SCHEMA


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    description: str
    created_us: int
    state: str
    current_version: int
    deletion_us: int | None = None
    pending_days: int | None = None
    rotation_enabled: bool = False
    rotation_days: int | None = None
    rotation_anchor_us: int | None = None


@dataclass(frozen=True)
class MaterialRecord:
    key_id: str
    version: int
    sealed: bytes  # the 32 bytes of key material, sealed by the root of trust
    created_us: int
    on_demand: bool


@dataclass(frozen=True)
class AliasRecord:
    name: str
    key_id: str
    created_us: int
    updated_us: int


class KmsRepository(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """All or nothing, serialised against every other writer (other processes too)."""
        ...

    def key(self, key_id: str) -> KeyRecord | None: ...

    def all_keys(self, after: str = "", limit: int | None = None) -> list[KeyRecord]:
        """Keys whose id sorts after `after`, by id, at most `limit` (None: all)."""
        ...

    def add_key(self, key: KeyRecord, material: MaterialRecord, tags: Mapping[str, str]) -> bool:
        """A new key with its first material and tags; False (nothing written) when the id is taken."""
        ...

    def update_key(self, key: KeyRecord) -> bool:
        """Replace the key's row; False when there is no such key."""
        ...

    def tags(self, key_id: str) -> dict[str, str]:
        """The key's tags, by tag key."""
        ...

    def material(self, key_id: str, version: int) -> bytes | None:
        """The sealed material of one version."""
        ...

    def add_material(self, material: MaterialRecord) -> bool:
        """False (nothing written) when that version exists."""
        ...

    def destroy_key(self, key_id: str, deleted_us: int) -> None:
        """The key, its material, aliases and tags go; a tombstone saying when stays."""
        ...

    def deleted_on(self, key_id: str) -> int | None:
        """When a destroyed key was destroyed (None: never)."""
        ...

    def alias(self, name: str) -> AliasRecord | None: ...

    def aliases(self, after: str = "", key_id: str | None = None, limit: int | None = None) -> list[AliasRecord]:
        """Aliases whose name sorts after `after` (of `key_id` only, when given), by name, at most `limit`."""
        ...

    def add_alias(self, alias: AliasRecord) -> bool:
        """False (nothing written) when the name is taken."""
        ...

    def remove_alias(self, name: str) -> bool:
        """False when there was no such alias."""
        ...

    def close(self) -> None: ...


_KEY_COLUMNS = ("key_id, description, created_us, state, current_version, deletion_us, pending_days,"
                " rotation_enabled, rotation_days, rotation_anchor_us")
_NO_LIMIT = -1  # SQLite's LIMIT for "all rows"


def _key(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(row["key_id"], row["description"], row["created_us"], row["state"], row["current_version"],
                     row["deletion_us"], row["pending_days"], bool(row["rotation_enabled"]), row["rotation_days"],
                     row["rotation_anchor_us"])


def _key_values(key: KeyRecord) -> tuple[object, ...]:
    return (key.key_id, key.description, key.created_us, key.state, key.current_version, key.deletion_us,
            key.pending_days, int(key.rotation_enabled), key.rotation_days, key.rotation_anchor_us)


class SqliteKmsRepository:
    """KMS rows in the state database, on a connection of their own that zeroes freed pages."""

    def __init__(self, path: Path) -> None:
        STATE_SCHEMA.ensure(path)
        self._db = Database(path)
        # Pages freed by deleting sealed key material are zeroed, not left in the file.
        self._db.conn.execute("PRAGMA secure_delete=ON")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db.tx():
            yield

    def key(self, key_id: str) -> KeyRecord | None:
        rows = self._db.query(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE key_id = ?", (key_id,))
        return _key(rows[0]) if rows else None

    def all_keys(self, after: str = "", limit: int | None = None) -> list[KeyRecord]:
        rows = self._db.query(f"SELECT {_KEY_COLUMNS} FROM kms_keys WHERE key_id > ? ORDER BY key_id LIMIT ?",
                              (after, _NO_LIMIT if limit is None else limit))
        return [_key(row) for row in rows]

    def add_key(self, key: KeyRecord, material: MaterialRecord, tags: Mapping[str, str]) -> bool:
        if not self._insert(f"INSERT INTO kms_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            _key_values(key)):
            return False
        self.add_material(material)
        for tag_key, value in tags.items():
            self._db.write("INSERT INTO kms_tags VALUES (?, ?, ?)", (key.key_id, tag_key, value))
        return True

    def update_key(self, key: KeyRecord) -> bool:
        return self._db.write(
            "UPDATE kms_keys SET key_id = ?, description = ?, created_us = ?, state = ?, current_version = ?,"
            " deletion_us = ?, pending_days = ?, rotation_enabled = ?, rotation_days = ?, rotation_anchor_us = ?"
            " WHERE key_id = ?", (*_key_values(key), key.key_id)) > 0

    def tags(self, key_id: str) -> dict[str, str]:
        rows = self._db.query("SELECT tag_key, tag_value FROM kms_tags WHERE key_id = ? ORDER BY tag_key", (key_id,))
        return {str(k): str(v) for k, v in rows}

    def material(self, key_id: str, version: int) -> bytes | None:
        rows = self._db.query("SELECT sealed FROM kms_key_material WHERE key_id = ? AND version = ?",
                              (key_id, version))
        return bytes(rows[0][0]) if rows else None

    def add_material(self, material: MaterialRecord) -> bool:
        return self._insert("INSERT INTO kms_key_material VALUES (?, ?, ?, ?, ?)",
                            (material.key_id, material.version, material.sealed, material.created_us,
                             int(material.on_demand)))

    def destroy_key(self, key_id: str, deleted_us: int) -> None:
        for table in ("kms_key_material", "kms_aliases", "kms_tags", "kms_keys"):
            self._db.write(f"DELETE FROM {table} WHERE key_id = ?", (key_id,))
        self._db.write("INSERT OR REPLACE INTO kms_deleted_keys VALUES (?, ?)", (key_id, deleted_us))

    def deleted_on(self, key_id: str) -> int | None:
        rows = self._db.query("SELECT deleted_us FROM kms_deleted_keys WHERE key_id = ?", (key_id,))
        return int(rows[0][0]) if rows else None

    def alias(self, name: str) -> AliasRecord | None:
        rows = self._db.query("SELECT name, key_id, created_us, updated_us FROM kms_aliases WHERE name = ?", (name,))
        return AliasRecord(*rows[0]) if rows else None

    def aliases(self, after: str = "", key_id: str | None = None, limit: int | None = None) -> list[AliasRecord]:
        where, args = "name > ?", [after]
        if key_id is not None:
            where += " AND key_id = ?"
            args.append(key_id)
        rows = self._db.query(f"SELECT name, key_id, created_us, updated_us FROM kms_aliases WHERE {where}"
                              " ORDER BY name LIMIT ?", (*args, _NO_LIMIT if limit is None else limit))
        return [AliasRecord(*row) for row in rows]

    def add_alias(self, alias: AliasRecord) -> bool:
        return self._insert("INSERT INTO kms_aliases VALUES (?, ?, ?, ?)",
                            (alias.name, alias.key_id, alias.created_us, alias.updated_us))

    def remove_alias(self, name: str) -> bool:
        return self._db.write("DELETE FROM kms_aliases WHERE name = ?", (name,)) > 0

    def _insert(self, sql: str, args: tuple[object, ...]) -> bool:
        try:
            self._db.write(sql, args)
        except sqlite3.IntegrityError:
            return False
        return True


@dataclass
class _KmsTables:
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    material: dict[tuple[str, int], MaterialRecord] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # key id -> tag key -> value
    aliases: dict[str, AliasRecord] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)  # key id -> deleted_us


class MemoryKmsRepository(MemoryRepository[_KmsTables]):
    """KMS rows in dictionaries, for tests; the same contract as the SQLite repository."""

    def __init__(self) -> None:
        super().__init__(_KmsTables())

    def key(self, key_id: str) -> KeyRecord | None:
        with self._tables.lock:
            return self._tables.current.keys.get(key_id)

    def all_keys(self, after: str = "", limit: int | None = None) -> list[KeyRecord]:
        with self._tables.lock:
            found = sorted((k for k in self._tables.current.keys.values() if k.key_id > after), key=lambda k: k.key_id)
        return found if limit is None else found[:limit]

    def add_key(self, key: KeyRecord, material: MaterialRecord, tags: Mapping[str, str]) -> bool:
        tables = self._tables.writable()
        if key.key_id in tables.keys:
            return False
        tables.keys[key.key_id] = key
        self.add_material(material)
        if tags:
            tables.tags[key.key_id] = dict(tags)
        return True

    def update_key(self, key: KeyRecord) -> bool:
        tables = self._tables.writable()
        if key.key_id not in tables.keys:
            return False
        tables.keys[key.key_id] = key
        return True

    def tags(self, key_id: str) -> dict[str, str]:
        with self._tables.lock:
            return dict(sorted(self._tables.current.tags.get(key_id, {}).items()))

    def material(self, key_id: str, version: int) -> bytes | None:
        with self._tables.lock:
            found = self._tables.current.material.get((key_id, version))
            return found.sealed if found is not None else None

    def add_material(self, material: MaterialRecord) -> bool:
        tables = self._tables.writable()
        if (material.key_id, material.version) in tables.material:
            return False
        tables.material[(material.key_id, material.version)] = material
        return True

    def destroy_key(self, key_id: str, deleted_us: int) -> None:
        tables = self._tables.writable()
        tables.keys.pop(key_id, None)
        tables.tags.pop(key_id, None)
        tables.material = {at: m for at, m in tables.material.items() if m.key_id != key_id}
        tables.aliases = {name: a for name, a in tables.aliases.items() if a.key_id != key_id}
        tables.deleted[key_id] = deleted_us

    def deleted_on(self, key_id: str) -> int | None:
        with self._tables.lock:
            return self._tables.current.deleted.get(key_id)

    def alias(self, name: str) -> AliasRecord | None:
        with self._tables.lock:
            return self._tables.current.aliases.get(name)

    def aliases(self, after: str = "", key_id: str | None = None, limit: int | None = None) -> list[AliasRecord]:
        with self._tables.lock:
            found = sorted((a for a in self._tables.current.aliases.values()
                            if a.name > after and (key_id is None or a.key_id == key_id)), key=lambda a: a.name)
        return found if limit is None else found[:limit]

    def add_alias(self, alias: AliasRecord) -> bool:
        tables = self._tables.writable()
        if alias.name in tables.aliases:
            return False
        tables.aliases[alias.name] = alias
        return True

    def remove_alias(self, name: str) -> bool:
        return self._tables.writable().aliases.pop(name, None) is not None
