"""One contract for the CloudWatch metrics-and-alarms repositories: SQLite (state database) and
memory. Plus what only SQLite promises: a transition is one transaction, and everything survives
closing and reopening the database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.monitoring.cloudwatch_store import (
    AlarmRecord,
    CloudWatchRepository,
    HistoryRecord,
    MemoryCloudWatchRepository,
    PendingNotification,
    SqliteCloudWatchRepository,
)
from trailkeeper.monitoring.metrics import MetricKey, MetricRow, StatisticSet

A = MetricKey.of("A", "Calls")
B = MetricKey.of("B", "Calls", {"Trail": "main", "Region": "eu-west-1"})
C = MetricKey.of("B", "Denied", {"Trail": "caf\u00e9"})


@pytest.fixture(params=["sqlite", "memory"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CloudWatchRepository]:
    if request.param == "memory":
        yield MemoryCloudWatchRepository()
        return
    db = Database(tmp_path / "state.db")
    yield SqliteCloudWatchRepository(db)
    db.close()


def stats(count: int, total: float, low: float, high: float, ids: tuple[str, ...] = (),
          dropped: int = 0) -> StatisticSet:
    return StatisticSet(count, total, low, high, ids, dropped)


def alarm(name: str = "root-usage", state: str = "INSUFFICIENT_DATA", **config: Any) -> AlarmRecord:
    settings = {"name": name, "period": 300, "threshold": 1.0, "alarm_actions": ["arn:aws:sns:r:1:t"], **config}
    return AlarmRecord(name, settings, state, "Unchecked: Initial alarm creation", None, 1000.25, 1000.25)


def created(name: str = "root-usage", at: float = 1000.25) -> HistoryRecord:
    return HistoryRecord(name, at, "ConfigurationUpdate", f'Alarm "{name}" created', '{"type":"Create"}')


# --- metric buckets -------------------------------------------------------------------------------

def test_a_bucket_stored_twice_is_merged(repo: CloudWatchRepository) -> None:
    repo.add_rows([MetricRow(600, A, stats(2, 3.0, 1.0, 2.0, ("e1", "e2")))])
    repo.add_rows([MetricRow(600, A, stats(1, 5.0, 5.0, 5.0, ("e3",), 2))])
    assert repo.rows(A) == [MetricRow(600, A, stats(3, 8.0, 1.0, 5.0, ("e1", "e2", "e3"), 2))]


def test_rows_for_one_bucket_in_one_call_are_merged_too(repo: CloudWatchRepository) -> None:
    repo.add_rows([MetricRow(600, A, stats(1, -4.0, -4.0, -4.0, ("e1",))),
                   MetricRow(600, A, stats(1, 0.5, 0.5, 0.5, ("e2",)))])
    assert repo.rows(A) == [MetricRow(600, A, stats(2, -3.5, -4.0, 0.5, ("e1", "e2")))]


def test_a_merged_bucket_keeps_the_first_hundred_event_ids_and_counts_the_rest(repo: CloudWatchRepository) -> None:
    first = tuple(f"a{i}" for i in range(99))
    repo.add_rows([MetricRow(600, A, stats(99, 99.0, 1.0, 1.0, first, 1))])
    repo.add_rows([MetricRow(600, A, stats(3, 3.0, 1.0, 1.0, ("b0", "b1", "b2"), 4))])
    [row] = repo.rows(A)
    assert row.stats.event_ids == (*first, "b0")
    assert row.stats.dropped_event_ids == 1 + 4 + 2
    assert row.stats.sample_count == 102


def test_rows_are_filtered_by_metric_and_since(repo: CloudWatchRepository) -> None:
    repo.add_rows([MetricRow(1020, A, stats(1, 3.0, 3.0, 3.0)), MetricRow(1000, A, stats(1, 1.0, 1.0, 1.0)),
                   MetricRow(1010, B, stats(1, 9.0, 9.0, 9.0, ("b",))), MetricRow(1010, A, stats(1, 2.0, 2.0, 2.0))])
    assert [(r.metric, r.bucket_start) for r in repo.rows()] == [(A, 1000), (A, 1010), (A, 1020), (B, 1010)]
    assert [r.bucket_start for r in repo.rows(A, since=1010)] == [1010, 1020]  # since is inclusive
    assert [(r.metric, r.bucket_start) for r in repo.rows(since=1011)] == [(A, 1020)]
    assert repo.rows(B) == [MetricRow(1010, B, stats(1, 9.0, 9.0, 9.0, ("b",)))]
    assert repo.rows(C) == [] and repo.rows(A, since=1030) == []


def test_a_metric_reads_back_equal_whatever_its_dimensions(repo: CloudWatchRepository) -> None:
    repo.add_rows([MetricRow(10, C, stats(1, 1.0, 1.0, 1.0)), MetricRow(10, B, stats(1, 1.0, 1.0, 1.0))])
    assert {r.metric for r in repo.rows()} == {B, C}
    assert repo.rows(MetricKey.of("B", "Calls", [("Region", "eu-west-1"), ("Trail", "main")]))[0].metric == B


def test_metrics_are_distinct_and_sorted(repo: CloudWatchRepository) -> None:
    assert repo.metrics() == []
    repo.add_rows([MetricRow(20, C, stats(1, 1.0, 1.0, 1.0)), MetricRow(10, A, stats(1, 1.0, 1.0, 1.0)),
                   MetricRow(20, A, stats(1, 1.0, 1.0, 1.0)), MetricRow(10, B, stats(1, 1.0, 1.0, 1.0))])
    repo.add_rows([MetricRow(30, A, stats(1, 1.0, 1.0, 1.0))])
    assert repo.metrics() == [A, B, C]


# --- alarms and their history ---------------------------------------------------------------------

def test_an_alarm_is_put_read_listed_and_removed_with_history(repo: CloudWatchRepository) -> None:
    repo.put_alarm(alarm("zeta"), created("zeta"))
    repo.put_alarm(alarm("alpha"), created("alpha", 1001.5))
    assert repo.get_alarm("zeta") == alarm("zeta")
    assert repo.get_alarm("Zeta") is None and repo.get_alarm("nope") is None
    assert [a.name for a in repo.alarms()] == ["alpha", "zeta"]
    deleted = HistoryRecord("zeta", 1002.0, "ConfigurationUpdate", 'Alarm "zeta" deleted', "{}")
    assert repo.remove_alarm("zeta", deleted) is True
    assert repo.remove_alarm("zeta", replace(deleted, summary="again")) is False  # no history either
    assert repo.get_alarm("zeta") is None and [a.name for a in repo.alarms()] == ["alpha"]
    assert repo.history("zeta") == [created("zeta"), deleted]
    assert repo.history("alpha") == [created("alpha", 1001.5)]
    assert repo.history() == [created("zeta"), created("alpha", 1001.5), deleted]
    assert repo.history("nope") == []


def test_putting_an_alarm_again_replaces_it(repo: CloudWatchRepository) -> None:
    repo.put_alarm(alarm(threshold=1.0), created())
    updated = replace(alarm(threshold=5.0), state="ALARM", config_updated=2000.0)
    repo.put_alarm(updated, replace(created(), summary="updated"))
    assert repo.alarms() == [updated]
    assert [h.summary for h in repo.history()] == ['Alarm "root-usage" created', "updated"]


def test_a_read_alarm_is_a_copy_in_json_types(repo: CloudWatchRepository) -> None:
    repo.put_alarm(alarm(ok_actions=("arn:a", "arn:b"), metric={"Dimensions": [{"Name": "k", "Value": "v"}]}),
                   created())
    found = repo.get_alarm("root-usage")
    assert found is not None
    assert found.config["ok_actions"] == ["arn:a", "arn:b"]  # what JSON gives back: a list
    found.config["threshold"] = 99.0
    found.config["metric"]["Dimensions"].clear()
    again = repo.get_alarm("root-usage")
    assert again is not None and again.config["threshold"] == 1.0
    assert again.config["metric"] == {"Dimensions": [{"Name": "k", "Value": "v"}]}
    assert repo.alarms()[0].config == again.config


def test_a_transition_writes_state_history_and_notification(repo: CloudWatchRepository) -> None:
    repo.put_alarm(alarm(), created())
    fired = replace(alarm(), state="ALARM", reason="Threshold Crossed", reason_data='{"v":1}', state_updated=1300.5)
    update = HistoryRecord("root-usage", 1300.5, "StateUpdate", "Alarm updated from INSUFFICIENT_DATA to ALARM",
                           '{"newState":{}}', ("ev-1", "ev-2"))
    owed = PendingNotification("root-usage", 1300.5, "ALARM", ("arn:aws:sns:r:1:t",), ("ev-1", "ev-2"))
    repo.record_transition(fired, update, owed)
    assert repo.get_alarm("root-usage") == fired
    assert repo.history("root-usage") == [created(), update]
    assert repo.pending_notifications() == [owed]


def test_a_record_change_without_history_or_notification(repo: CloudWatchRepository) -> None:
    repo.put_alarm(alarm(), created())
    disabled = alarm(actions_enabled=False)
    repo.record_transition(disabled, None, None)
    assert repo.get_alarm("root-usage") == disabled
    assert repo.history() == [created()] and repo.pending_notifications() == []


def test_pending_notifications_keep_their_order(repo: CloudWatchRepository) -> None:
    owed = [PendingNotification("b", 5.0, "ALARM", ("arn:1", "arn:2"), ("e1",)),
            PendingNotification("a", 4.0, "OK", ("arn:3",), ()),
            PendingNotification("b", 6.0, "INSUFFICIENT_DATA", (), ("e2", "e3"))]
    for notification in owed:
        repo.record_transition(alarm(notification.alarm_name, notification.new_state), None, notification)
    assert repo.pending_notifications() == owed  # in the order owed, not by name or time
    assert [a.state for a in repo.alarms()] == ["OK", "INSUFFICIENT_DATA"]


# --- SQLite only ------------------------------------------------------------------------------------

def test_sqlite_rolls_back_a_transition_whose_notification_cannot_be_written(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    repo = SqliteCloudWatchRepository(db)
    repo.put_alarm(alarm(), created())
    with db.tx() as conn:  # fault injection: the third write of the transaction fails
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON cw_pending_notifications"
                     " BEGIN SELECT RAISE(ABORT, 'injected'); END")
    fired = replace(alarm(), state="ALARM")
    update = HistoryRecord("root-usage", 1300.0, "StateUpdate", "to ALARM", "{}", ("ev-1",))
    with pytest.raises(sqlite3.IntegrityError, match="injected"):
        repo.record_transition(fired, update, PendingNotification("root-usage", 1300.0, "ALARM", ("arn",), ("ev-1",)))
    assert repo.get_alarm("root-usage") == alarm()
    assert repo.history() == [created()] and repo.pending_notifications() == []
    db.close()


def test_sqlite_keeps_everything_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = Database(path)
    repo = SqliteCloudWatchRepository(db)
    repo.add_rows([MetricRow(600, A, stats(2, 3.5, 1.25, 2.25, ("e1", "e2"), 3)), MetricRow(610, C, stats(1, 1.0, 1.0, 1.0))])
    repo.put_alarm(alarm("gone"), created("gone"))
    repo.remove_alarm("gone", HistoryRecord("gone", 1001.0, "ConfigurationUpdate", "deleted", "{}"))
    repo.put_alarm(alarm(), created())
    fired = replace(alarm(), state="ALARM", reason_data='{"x":[1,2]}', state_updated=1300.125)
    repo.record_transition(fired, HistoryRecord("root-usage", 1300.125, "StateUpdate", "s", "{}", ("ev-1",)),
                           PendingNotification("root-usage", 1300.125, "ALARM", ("arn:1",), ("ev-1",)))
    before = (repo.rows(), repo.metrics(), repo.alarms(), repo.history(), repo.pending_notifications())
    repo.close()
    db.close()

    reopened = Database(path)
    again = SqliteCloudWatchRepository(reopened)
    after = (again.rows(), again.metrics(), again.alarms(), again.history(), again.pending_notifications())
    assert after == before
    assert again.get_alarm("root-usage") == fired and again.get_alarm("gone") is None
    assert again.rows(A) == [MetricRow(600, A, stats(2, 3.5, 1.25, 2.25, ("e1", "e2"), 3))]
    again.add_rows([MetricRow(600, A, stats(1, 1.0, 0.5, 0.5, ("e3",)))])  # still merges after reopening
    assert again.rows(A)[0].stats == stats(3, 4.5, 0.5, 2.25, ("e1", "e2", "e3"), 3)
    reopened.close()
