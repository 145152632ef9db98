"""Where event rules, their targets and the target invocations still to retry live (tables
event_* of the state database, migration 8). Each method is one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from trailkeeper._internal.sqlite import Database
from trailkeeper.rules.envelope import RuleState
from trailkeeper.rules.targets import InputTransformer, RetryPolicy, Target
from trailkeeper.state.schema import STATE_SCHEMA


@dataclass(frozen=True)
class EventRule:
    name: str
    pattern: str
    state: RuleState
    description: str
    tags: Mapping[str, str]
    managed_by: str
    created: float


@dataclass(frozen=True)
class Invocation:
    """A target invocation that failed and waits for its next attempt (or was given up)."""

    id: int
    rule: str
    target_id: str
    target_arn: str
    event_id: str
    message: str
    first_attempt: float
    next_attempt: float
    attempts: int
    last_error: str
    failed: float | None


@dataclass(frozen=True)
class InvocationCounts:
    retrying: int
    failed: int


class SqliteRuleRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        STATE_SCHEMA.ensure(db.path)

    # ---- rules ----
    def rules(self) -> list[EventRule]:
        rows = self.db.query("SELECT name, pattern, state, description, tags, managed_by, created FROM event_rules "
                             "ORDER BY name")
        return [_rule(r) for r in rows]

    def get(self, name: str) -> EventRule | None:
        rows = self.db.query("SELECT name, pattern, state, description, tags, managed_by, created FROM event_rules "
                             "WHERE name = ?", (name,))
        return _rule(rows[0]) if rows else None

    def put(self, rule: EventRule) -> None:
        with self.db.tx() as conn:
            conn.execute("INSERT OR REPLACE INTO event_rules VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (rule.name, rule.pattern, rule.state.value, rule.description,
                          orjson.dumps(dict(rule.tags)).decode(), rule.managed_by, rule.created))

    def delete(self, name: str) -> None:
        with self.db.tx() as conn:
            conn.execute("DELETE FROM event_rules WHERE name = ?", (name,))
            conn.execute("DELETE FROM event_targets WHERE rule = ?", (name,))

    # ---- targets ----
    def targets(self, rule: str | None = None) -> dict[str, list[Target]]:
        sql = "SELECT rule, id, arn, shape FROM event_targets"
        rows = self.db.query(sql + (" WHERE rule = ? ORDER BY id" if rule else " ORDER BY rule, id"),
                             (rule,) if rule else ())
        out: dict[str, list[Target]] = {}
        for row in rows:
            out.setdefault(row[0], []).append(_target(row[1], row[2], orjson.loads(row[3])))
        return out

    def put_targets(self, rule: str, targets: Sequence[Target]) -> None:
        with self.db.tx() as conn:
            conn.executemany("INSERT OR REPLACE INTO event_targets VALUES (?, ?, ?, ?)",
                             [(rule, t.id, t.arn, orjson.dumps(_shape(t)).decode()) for t in targets])

    def remove_targets(self, rule: str, ids: Sequence[str]) -> None:
        with self.db.tx() as conn:
            conn.executemany("DELETE FROM event_targets WHERE rule = ? AND id = ?", [(rule, i) for i in ids])

    # ---- invocations to retry ----
    def add_retry(self, invocation: Invocation) -> bool:
        """False when that (rule, target, event) already waits: a replayed batch adds nothing."""
        with self.db.tx() as conn:
            try:
                conn.execute("INSERT INTO event_target_retries (rule, target_id, target_arn, event_id, message, "
                             "first_attempt, next_attempt, attempts, last_error, failed) VALUES (?,?,?,?,?,?,?,?,?,?)",
                             (invocation.rule, invocation.target_id, invocation.target_arn, invocation.event_id,
                              invocation.message, invocation.first_attempt, invocation.next_attempt,
                              invocation.attempts, invocation.last_error, invocation.failed))
            except sqlite3.IntegrityError:
                return False
        return True

    def due(self, now: float, limit: int = 100) -> list[Invocation]:
        rows = self.db.query(f"SELECT {_INVOCATION} FROM event_target_retries WHERE failed IS NULL AND next_attempt <= ? "
                             "ORDER BY next_attempt LIMIT ?", (now, limit))
        return [Invocation(*r) for r in rows]

    def retried(self, invocation_id: int, attempts: int, next_attempt: float, error: str, failed: float | None) -> None:
        with self.db.tx() as conn:
            conn.execute("UPDATE event_target_retries SET attempts=?, next_attempt=?, last_error=?, failed=? WHERE id=?",
                         (attempts, next_attempt, error, failed, invocation_id))

    def delivered(self, invocation_id: int) -> None:
        with self.db.tx() as conn:
            conn.execute("DELETE FROM event_target_retries WHERE id = ?", (invocation_id,))

    def failed(self) -> list[Invocation]:
        rows = self.db.query(f"SELECT {_INVOCATION} FROM event_target_retries WHERE failed IS NOT NULL ORDER BY failed")
        return [Invocation(*r) for r in rows]

    def counts(self) -> InvocationCounts:
        rows = self.db.query("SELECT failed IS NOT NULL, count(*) FROM event_target_retries GROUP BY 1")
        by = {bool(r[0]): int(r[1]) for r in rows}
        return InvocationCounts(retrying=by.get(False, 0), failed=by.get(True, 0))


_INVOCATION = ("id, rule, target_id, target_arn, event_id, message, first_attempt, next_attempt, attempts, "
               "last_error, failed")


def _rule(row: Sequence[Any]) -> EventRule:
    return EventRule(row[0], row[1], RuleState(row[2]), row[3], orjson.loads(row[4]), row[5], row[6])


def _shape(target: Target) -> dict[str, Any]:
    shape: dict[str, Any] = {"retry": [target.retry.max_attempts, target.retry.max_age_s]}
    if target.input is not None:
        shape["input"] = target.input
    if target.input_path is not None:
        shape["input_path"] = target.input_path
    if target.transformer is not None:
        shape["transformer"] = {"template": target.transformer.template, "paths": dict(target.transformer.paths)}
    return shape


def _target(target_id: str, arn: str, shape: Mapping[str, Any]) -> Target:
    transformer = shape.get("transformer")
    return Target(target_id, arn, shape.get("input"), shape.get("input_path"),
                  InputTransformer(transformer["template"], transformer["paths"]) if transformer else None,
                  RetryPolicy(*shape["retry"]))
