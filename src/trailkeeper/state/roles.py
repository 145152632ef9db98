"""Role repositories: SQLite (tables iam_roles and iam_role_policies of the state database) and
memory, held to the same contract (tests/unit/test_roles.py runs its cases on both)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from trailkeeper._internal.memory import MemoryRepository
from trailkeeper._internal.sqlite import Database
from trailkeeper.roles import StoredRole
from trailkeeper.state.schema import STATE_SCHEMA

_ROLE_COLUMNS = "name, role_id, path, assume_role_policy, description, created_us"


class SqliteRoleRepository:
    """Roles in the state database; every write is one `BEGIN IMMEDIATE` transaction."""

    def __init__(self, db: Database) -> None:
        STATE_SCHEMA.ensure(db.path)
        self.db = db

    def close(self) -> None:
        pass  # the state database is the runtime's, closed by it

    def add_role(self, role: StoredRole) -> bool:
        with self.db.tx() as c:
            if c.execute("SELECT 1 FROM iam_roles WHERE name = ?", (role.name,)).fetchone():
                return False  # the column's NOCASE collation compares as IAM does
            c.execute(f"INSERT INTO iam_roles ({_ROLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                      (role.name, role.role_id, role.path, role.assume_role_policy, role.description,
                       role.created_us))
        return True

    def role(self, name: str) -> StoredRole | None:
        rows = self.db.query(f"SELECT {_ROLE_COLUMNS} FROM iam_roles WHERE name = ?", (name,))
        return StoredRole(*rows[0]) if rows else None

    def roles(self) -> list[StoredRole]:
        rows = self.db.query(f"SELECT {_ROLE_COLUMNS} FROM iam_roles ORDER BY name")
        return [StoredRole(*row) for row in rows]

    def remove_role(self, role_id: str) -> bool:
        with self.db.tx() as c:
            return c.execute("DELETE FROM iam_roles WHERE role_id = ? AND NOT EXISTS "
                             "(SELECT 1 FROM iam_role_policies WHERE role_id = ?)", (role_id, role_id)).rowcount > 0

    def put_policy(self, role_id: str, name: str, document: str) -> None:
        with self.db.tx() as c:
            # Same name in another case replaces the policy, which takes the new spelling.
            c.execute("DELETE FROM iam_role_policies WHERE role_id = ? AND policy_name = ?", (role_id, name))
            c.execute("INSERT INTO iam_role_policies VALUES (?, ?, ?)", (role_id, name, document))

    def policies(self, role_id: str) -> list[tuple[str, str]]:
        rows = self.db.query("SELECT policy_name, document FROM iam_role_policies WHERE role_id = ? "
                             "ORDER BY policy_name", (role_id,))
        return [(row[0], row[1]) for row in rows]

    def remove_policy(self, role_id: str, name: str) -> bool:
        with self.db.tx() as c:
            return c.execute("DELETE FROM iam_role_policies WHERE role_id = ? AND policy_name = ?",
                             (role_id, name)).rowcount > 0


@dataclass
class _Tables:
    roles: dict[str, StoredRole] = field(default_factory=dict)  # lower-case name -> role
    policies: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (id, lower name) -> (name, doc)


class MemoryRoleRepository(MemoryRepository[_Tables]):
    """Roles in dictionaries, for tests; the same contract as the SQLite repository."""

    def __init__(self) -> None:
        super().__init__(_Tables())

    def add_role(self, role: StoredRole) -> bool:
        with self._tables.transaction() as t:
            if role.name.lower() in t.roles:
                return False
            t.roles[role.name.lower()] = replace(role)
            return True

    def role(self, name: str) -> StoredRole | None:
        with self._tables.lock:
            return self._tables.current.roles.get(name.lower())

    def roles(self) -> list[StoredRole]:
        with self._tables.lock:
            return sorted(self._tables.current.roles.values(), key=lambda r: r.name.lower())

    def remove_role(self, role_id: str) -> bool:
        with self._tables.transaction() as t:
            if any(rid == role_id for rid, _ in t.policies):
                return False
            found = [key for key, role in t.roles.items() if role.role_id == role_id]
            for key in found:
                del t.roles[key]
            return bool(found)

    def put_policy(self, role_id: str, name: str, document: str) -> None:
        with self._tables.transaction() as t:
            t.policies[(role_id, name.lower())] = (name, document)

    def policies(self, role_id: str) -> list[tuple[str, str]]:
        with self._tables.lock:
            found = [v for (rid, _), v in self._tables.current.policies.items() if rid == role_id]
        return sorted(found, key=lambda p: p[0].lower())

    def remove_policy(self, role_id: str, name: str) -> bool:
        with self._tables.transaction() as t:
            return t.policies.pop((role_id, name.lower()), None) is not None
