"""A data directory written by the previous release (the fixture was made with commit b180352,
see tests/fixtures/make_release_fixture.py) is migrated at start and serves every lookup and
validation as before; one from a newer schema is refused with a message saying what to do."""

from __future__ import annotations

import json
import sqlite3
import tarfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.pipeline import app_event

from trailkeeper.api.app import caller_of
from trailkeeper.api.operations import OPEN_END, OPEN_START
from trailkeeper.clock import FrozenClock
from trailkeeper.config import Config, load_config
from trailkeeper.errors import ConfigError
from trailkeeper.history.base import LookupQuery
from trailkeeper.service import Service
from trailkeeper.state.schema import HISTORY_SCHEMA, STATE_SCHEMA, schema_version
from trailkeeper.validate.command import run_validation

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release-b180352.tar.gz"


def _unpack(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    facts = json.loads((tmp_path / "FIXTURE.json").read_text())
    # The release recorded its trail folders where it made them: move them here, as an operator
    # who moves the data directory with its folders would (the only edit made to the fixture).
    with sqlite3.connect(tmp_path / "data" / "state.db") as conn:
        conn.execute("UPDATE trails SET config = replace(config, ?, ?)", (facts["root"], str(tmp_path)))
    return tmp_path, facts


def _config(root: Path) -> Config:
    return load_config(root / "data", default_bucket_root=root / "buckets")


@pytest.fixture
def migrated(tmp_path: Path) -> Iterator[tuple[Service, FrozenClock, dict[str, Any]]]:
    root, facts = _unpack(tmp_path)
    assert schema_version(root / "data" / "state.db") == 0  # the release had none
    clock = FrozenClock(datetime.fromisoformat(facts["end"]) + timedelta(minutes=30))
    service = Service(_config(root), clock=clock, background=False)
    service.start()
    try:
        yield service, clock, facts
    finally:
        service.close(flush_timeout=1)


def test_the_previous_release_is_migrated_and_serves_every_lookup(migrated: tuple[Service, FrozenClock, dict[str, Any]]
                                                                   ) -> None:
    service, _, facts = migrated
    assert schema_version(service.config.state_db) == STATE_SCHEMA.version
    assert schema_version(service.config.history_db) == HISTORY_SCHEMA.version
    for event_id in facts["event_ids"]:
        [found] = service.history.lookup(LookupQuery("EventId", event_id, OPEN_START, OPEN_END)).records
        assert found["eventID"] == event_id
    names = {u.name for u in service.identity.list_users()}
    assert facts["user"] in names and service.identity.resolve(facts["user_key"]) is not None
    assert service.kms.describe_key(facts["kms_key"]).arn == facts["kms_key"]
    service.pump()  # index what start() recorded
    migrations = service.history.lookup(LookupQuery("EventName", "DataDirectoryMigrated", OPEN_START, OPEN_END))
    assert sorted((r["serviceEventDetails"]["database"], r["serviceEventDetails"]["fromSchemaVersion"])
                  for r in migrations.records) == [("history.db", 0), ("state.db", 0)]


@pytest.mark.parametrize("trail", ["plain", "sealed"])
def test_the_previous_release_validates_as_before(migrated: tuple[Service, FrozenClock, dict[str, Any]],
                                                  trail: str) -> None:
    service, clock, facts = migrated
    start = datetime.fromisoformat(facts["start"]) - timedelta(minutes=1)
    report, _ = run_validation(service.config, trail, start, clock.now(), now=clock.now())
    assert report.ok, [(e.key, e.status, e.message) for e in report.entries if e.status != "VALID"]
    assert report.digests_valid == 6 and report.logs_valid == 5


def test_a_migrated_trail_logs_on_and_its_whole_history_validates(
        migrated: tuple[Service, FrozenClock, dict[str, Any]]) -> None:
    service, clock, facts = migrated
    service.start_logging("sealed")
    resolved = service.identity.resolve(facts["root_key"])
    assert resolved is not None
    service.record([app_event(99, clock.now(), "AfterUpgrade")], caller_of(resolved[0]))
    for _ in range(3):
        clock.advance(timedelta(seconds=2))
        service.pump()
    service.stop_logging("sealed")
    for _ in range(3):
        clock.advance(timedelta(seconds=2))
        service.pump()
    start = datetime.fromisoformat(facts["start"]) - timedelta(minutes=1)
    report, _ = run_validation(service.config, "sealed", start, clock.now(), now=clock.now() + timedelta(hours=2))
    assert report.ok, [(e.key, e.status, e.message) for e in report.entries if e.status != "VALID"]
    assert report.logs_valid >= 6


def test_a_newer_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    root, _ = _unpack(tmp_path)
    Service(_config(root), background=False).close()  # migrated to this release's version
    with sqlite3.connect(root / "data" / "state.db") as conn:
        conn.execute(f"PRAGMA user_version = {STATE_SCHEMA.version + 1}")
    with pytest.raises(ConfigError, match=f"schema version {STATE_SCHEMA.version + 1}.*newer") as refused:
        Service(_config(root), background=False)
    assert "upgrade trailkeeper" in str(refused.value) + refused.value.hint
