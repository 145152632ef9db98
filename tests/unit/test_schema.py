"""The schema machinery: forward migrations in one transaction, newer versions refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trailkeeper.errors import ConfigError
from trailkeeper.state.schema import HISTORY_SCHEMA, STATE_SCHEMA, Migration, Schema, schema_version


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _create(table: str) -> Migration:
    def apply(conn: sqlite3.Connection) -> None:
        conn.execute(f"CREATE TABLE {table} (x)")
    return Migration(0, f"create {table}", apply)


def _numbered(*steps: Migration) -> tuple[Migration, ...]:
    return tuple(Migration(n, m.summary, m.apply) for n, m in enumerate(steps, start=1))


def test_a_new_file_gets_every_table_and_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    done = STATE_SCHEMA.ensure(path)
    assert done is not None and (done.from_version, done.to_version) == (0, STATE_SCHEMA.version)
    assert {"trails", "logging_periods", "identity_users", "signing_keys", "kms_keys", "channels"} <= _tables(path)
    assert schema_version(path) == STATE_SCHEMA.version
    assert STATE_SCHEMA.ensure(path) is None  # nothing left to do
    assert HISTORY_SCHEMA.ensure(tmp_path / "history.db") is not None
    assert {"events", "attrs", "ids", "meta"} <= _tables(tmp_path / "history.db")


def test_only_the_missing_migrations_run(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    Schema("x", _numbered(_create("a"))).ensure(path)
    done = Schema("x", _numbered(_create("a"), _create("b"))).ensure(path)  # "a" again would fail
    assert done is not None and (done.from_version, done.to_version) == (1, 2)
    assert _tables(path) == {"a", "b"}


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "x.db"

    def broken(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError):
        Schema("x", _numbered(_create("a"), Migration(0, "broken", broken))).ensure(path)
    assert schema_version(path) == 0 and _tables(path) == set()


def test_a_newer_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    Schema("x", _numbered(_create("a"), _create("b"))).ensure(path)
    with pytest.raises(ConfigError, match=r"x schema version 2, newer than this trailkeeper knows \(1\)") as refused:
        Schema("x", _numbered(_create("a"))).ensure(path)
    assert "upgrade trailkeeper" in refused.value.hint
    assert schema_version(path) == 2


def test_migrations_must_be_numbered_in_order() -> None:
    with pytest.raises(ValueError, match="numbered"):
        Schema("x", (Migration(2, "skips one", lambda conn: None),))
