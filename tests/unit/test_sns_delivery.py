"""The delivery worker (notify/delivery.py) and the alarm sender (notify/alarm_sender.py):
retries with backoff on a frozen clock, the give-up, the audit events, crash safety of the
queue in SQLite, and CloudWatch alarm transitions becoming signed notifications.

Fakes, and why: `ScriptedTransport` stands in for the network (a test decides when a receiver
is down; the real HTTP and SMTP transports run in tests/e2e/test_sns_notifications.py); the
clock is frozen so an hour of retries takes no time; the audit sink is a list (the server's
`emit_service` appends to the spool, which other tests cover). Everything else is real:
SQLite repositories, CloudWatch, the signing key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.clock import FrozenClock
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.monitoring.alarms import AlarmConfig
from trailkeeper.monitoring.cloudwatch import CloudWatch
from trailkeeper.monitoring.cloudwatch_store import (
    MemoryCloudWatchRepository,
    SqliteCloudWatchRepository,
)
from trailkeeper.monitoring.metrics import Datum, MetricKey, StatisticSet
from trailkeeper.notify.alarm_sender import ACTION_FAILED_EVENT, AlarmSender
from trailkeeper.notify.delivery import ABANDONED_EVENT, FAILED_EVENT, DeliveryWorker
from trailkeeper.notify.model import RetryPolicy
from trailkeeper.notify.signing import verify
from trailkeeper.notify.store import MemoryNotifyRepository, SqliteNotifyRepository
from trailkeeper.notify.topics import Notifications, Outgoing
from trailkeeper.notify.transports import DeliveryError

START = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)
ACCOUNT, REGION = "123456789012", "us-east-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"


class ScriptedTransport:
    """A receiver that is down while `down` is set, and remembers what it took."""

    def __init__(self) -> None:
        self.down = False
        self.taken: list[Outgoing] = []
        self.tries = 0

    def send(self, message: Outgoing) -> None:
        self.tries += 1
        if self.down:
            raise DeliveryError("connection refused")
        self.taken.append(message)


class Events(list[tuple[str, dict[str, Any]]]):
    def __call__(self, name: str, details: dict[str, Any]) -> None:
        self.append((name, details))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for n, d in self if n == name]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


def _domain(repo: Any, clock: FrozenClock, keyring: MemoryKeyring | None = None) -> Notifications:
    return Notifications(repo, keyring or MemoryKeyring(), clock, ACCOUNT, REGION, "http://127.0.0.1:8790")


def _subscribed(sns: Notifications, worker: DeliveryWorker, transport: ScriptedTransport) -> str:
    """A confirmed http subscription, its confirmation delivered."""
    sns.create_topic("alerts")
    sub = sns.subscribe(TOPIC, "http", "http://hooks.example/sns")
    worker.deliver_due()
    [confirmation] = transport.taken
    assert confirmation.message_type == "SubscriptionConfirmation"
    sns.confirm(TOPIC, confirmation.document["Token"])
    transport.taken.clear()
    return sub.arn


def test_a_failing_receiver_is_retried_with_backoff_and_every_failure_is_recorded(clock: FrozenClock) -> None:
    sns, transport, events = _domain(MemoryNotifyRepository(), clock), ScriptedTransport(), Events()
    worker = DeliveryWorker(sns, {"http": transport}, events, clock)
    _subscribed(sns, worker, transport)
    message_id = sns.publish(TOPIC, "disk full")
    transport.down = True
    waits = []
    for _ in range(7):
        assert worker.deliver_due() == 1  # fails
        assert worker.deliver_due() == 0  # not due again before its backoff
        due = sns.repo.next_due()
        assert due is not None
        waits.append(due - clock.now().timestamp())
        clock.set(datetime.fromtimestamp(due, UTC))
    # Waits double from 1 s and are capped at 20 s.
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]
    failures = events.named(FAILED_EVENT)
    assert [f["attempts"] for f in failures] == [1, 2, 3, 4, 5, 6, 7]
    assert failures[0]["messageId"] == message_id and failures[0]["error"] == "connection refused"
    assert failures[0]["endpoint"] == "http://hooks.example/sns"
    transport.down = False
    worker.deliver_due()
    [taken] = transport.taken
    assert taken.message_id == message_id and sns.delivery_counts().pending == 0


def test_a_delivery_is_given_up_after_the_window_and_counted(clock: FrozenClock) -> None:
    sns, transport, events = _domain(MemoryNotifyRepository(), clock), ScriptedTransport(), Events()
    worker = DeliveryWorker(sns, {"http": transport}, events, clock, RetryPolicy(window=60.0))
    _subscribed(sns, worker, transport)
    sns.publish(TOPIC, "disk full")
    transport.down = True
    while sns.repo.next_due() is not None:
        clock.set(datetime.fromtimestamp(max(sns.repo.next_due() or 0, clock.now().timestamp()), UTC))
        worker.deliver_due()
    [abandoned] = events.named(ABANDONED_EVENT)
    assert abandoned["retryWindowSeconds"] == 60.0 and abandoned["attempts"] == transport.tries - 1
    assert clock.now() - START >= timedelta(seconds=60)
    counts = sns.delivery_counts()
    assert (counts.pending, counts.failed) == (0, 1)


def test_a_transport_bug_is_a_failed_attempt_not_a_lost_message(clock: FrozenClock) -> None:
    class Broken:
        def send(self, message: Outgoing) -> None:
            raise KeyError("bug")

    sns, events = _domain(MemoryNotifyRepository(), clock), Events()
    sns.create_topic("alerts")
    sns.subscribe(TOPIC, "http", "http://hooks.example/sns")
    DeliveryWorker(sns, {"http": Broken()}, events, clock).deliver_due()
    assert "internal error: KeyError" in events.named(FAILED_EVENT)[0]["error"]
    assert sns.delivery_counts().pending == 1


def test_queued_deliveries_survive_a_reopen_and_keep_their_message_id(tmp_path: Path, clock: FrozenClock) -> None:
    """What Publish acknowledged is in the database: a new process (same data directory, same
    root of trust) delivers it with the same MessageId, Timestamp and signature key."""
    keyring = MemoryKeyring()
    db = Database(tmp_path / "state.db")
    sns, transport = _domain(SqliteNotifyRepository(db), clock, keyring), ScriptedTransport()
    worker = DeliveryWorker(sns, {"http": transport}, Events(), clock)
    _subscribed(sns, worker, transport)
    message_id = sns.publish(TOPIC, "before the crash")
    certificate = sns.identity().certificate_pem
    db.close()  # the process dies before the worker runs

    db = Database(tmp_path / "state.db")
    after = _domain(SqliteNotifyRepository(db), clock, keyring)
    transport2 = ScriptedTransport()
    DeliveryWorker(after, {"http": transport2}, Events(), clock).deliver_due()
    [taken] = transport2.taken
    assert taken.message_id == message_id and taken.document["Message"] == "before the crash"
    assert verify(taken.document, certificate)
    assert after.delivery_counts().pending == 0
    db.close()


def test_a_delivery_interrupted_before_it_was_recorded_is_sent_again_with_the_same_message_id(
        tmp_path: Path, clock: FrozenClock) -> None:
    """At least once: the receiver took it, the process died before the row was removed; the
    next run sends the same MessageId again (and only that one)."""
    keyring = MemoryKeyring()
    db = Database(tmp_path / "state.db")
    sns, transport = _domain(SqliteNotifyRepository(db), clock, keyring), ScriptedTransport()
    worker = DeliveryWorker(sns, {"http": transport}, Events(), clock)
    _subscribed(sns, worker, transport)
    message_id = sns.publish(TOPIC, "twice at most")
    [row] = sns.repo.due(clock.now().timestamp(), 10)
    transport.send(sns.outgoing(row.message, sns.subscription(row.subscription_arn)))  # type: ignore[arg-type]
    db.close()  # died before `delivered`

    db = Database(tmp_path / "state.db")
    after = _domain(SqliteNotifyRepository(db), clock, keyring)
    DeliveryWorker(after, {"http": transport}, Events(), clock).deliver_due()
    assert [t.message_id for t in transport.taken] == [message_id, message_id]
    assert transport.taken[0].document == transport.taken[1].document  # the same bytes signed
    DeliveryWorker(after, {"http": transport}, Events(), clock).deliver_due()
    assert len(transport.taken) == 2
    db.close()


# ---- the alarm sender -----------------------------------------------------------------------------
def _alarm(actions: tuple[str, ...]) -> AlarmConfig:
    return AlarmConfig(name="root-login", metric=MetricKey("CISBenchmark", "RootUsage", ()), period=300,
                       evaluation_periods=1, threshold=1.0, comparison_operator="GreaterThanOrEqualToThreshold",
                       statistic="Sum", treat_missing_data="notBreaching", alarm_actions=actions,
                       description="root used")


def _breach(cw: CloudWatch, clock: FrozenClock) -> None:
    metric = MetricKey("CISBenchmark", "RootUsage", ())
    cw.put_metric_data([Datum(metric, clock.now(), StatisticSet(1, 1.0, 1.0, 1.0, ("ev-1", "ev-2")))])


def test_an_alarm_transition_becomes_a_signed_cloudwatch_notification(clock: FrozenClock) -> None:
    sns, transport, events = _domain(MemoryNotifyRepository(), clock), ScriptedTransport(), Events()
    worker = DeliveryWorker(sns, {"http": transport}, events, clock)
    _subscribed(sns, worker, transport)
    cw = CloudWatch(MemoryCloudWatchRepository(), clock, ACCOUNT, REGION)
    sender = AlarmSender(cw, sns, events)
    woken: list[bool] = []
    cw.on_notification(lambda: woken.append(True))
    cw.put_alarm(_alarm((TOPIC,)))
    _breach(cw, clock)
    assert woken == [True]  # CloudWatch woke the sender in the call that breached
    assert sender.send_pending() == 1 and cw.repo.pending_notifications() == []
    worker.deliver_due()
    [note] = transport.taken
    assert note.document["Subject"] == 'ALARM: "root-login" in US East (N. Virginia)'
    body = orjson.loads(note.document["Message"])
    assert (body["AlarmName"], body["OldStateValue"], body["NewStateValue"]) == ("root-login", "INSUFFICIENT_DATA",
                                                                                  "ALARM")
    assert body["NewStateReason"].startswith("Threshold Crossed") and body["EventIds"] == ["ev-1", "ev-2"]
    assert body["AlarmDescription"] == "root used" and body["AlarmActions"] == [TOPIC]
    assert verify(note.document, sns.identity().certificate_pem)


def test_unknown_topics_and_other_actions_are_recorded_as_failed_actions(clock: FrozenClock) -> None:
    sns, events = _domain(MemoryNotifyRepository(), clock), Events()
    cw = CloudWatch(MemoryCloudWatchRepository(), clock, ACCOUNT, REGION)
    sender = AlarmSender(cw, sns, events)
    missing = f"arn:aws:sns:{REGION}:{ACCOUNT}:nobody"
    other = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x"
    cw.put_alarm(_alarm((missing, other)))
    _breach(cw, clock)
    sender.send_pending()
    failed = events.named(ACTION_FAILED_EVENT)
    assert [(f["action"], f["alarmName"]) for f in failed] == [(missing, "root-login"), (other, "root-login")]
    assert "Topic does not exist" in failed[0]["error"] and "SNS topic actions only" in failed[1]["error"]
    assert cw.repo.pending_notifications() == []  # not retried for ever


def test_a_sender_crash_between_publish_and_removal_publishes_nothing_twice(tmp_path: Path,
                                                                              clock: FrozenClock) -> None:
    keyring = MemoryKeyring()
    db = Database(tmp_path / "state.db")
    sns, transport = _domain(SqliteNotifyRepository(db), clock, keyring), ScriptedTransport()
    worker = DeliveryWorker(sns, {"http": transport}, Events(), clock)
    _subscribed(sns, worker, transport)
    cw = CloudWatch(SqliteCloudWatchRepository(db), clock, ACCOUNT, REGION)
    cw.put_alarm(_alarm((TOPIC,)))
    _breach(cw, clock)
    [pending] = cw.repo.pending_notifications()
    sender = AlarmSender(cw, sns, Events())
    sender._send(pending)  # published, then the process died before the row was removed
    db.close()

    db = Database(tmp_path / "state.db")
    sns = _domain(SqliteNotifyRepository(db), clock, keyring)
    cw = CloudWatch(SqliteCloudWatchRepository(db), clock, ACCOUNT, REGION)
    assert AlarmSender(cw, sns, Events()).send_pending() == 1
    assert cw.repo.pending_notifications() == []
    DeliveryWorker(sns, {"http": transport}, Events(), clock).deliver_due()
    assert len(transport.taken) == 1 and transport.taken[0].message_type == "Notification"
    db.close()


@pytest.fixture
def sqlite_pair(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "state.db")
    yield db
    db.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_remove_pending_removes_one_row_once(kind: str, sqlite_pair: Database, clock: FrozenClock) -> None:
    repo = MemoryCloudWatchRepository() if kind == "memory" else SqliteCloudWatchRepository(sqlite_pair)
    cw = CloudWatch(repo, clock, ACCOUNT, REGION)
    cw.put_alarm(_alarm((TOPIC,)))
    _breach(cw, clock)
    cw.set_state("root-login", "OK", "manual", None)  # no OKActions: nothing owed
    cw.set_state("root-login", "ALARM", "manual", None)
    first, second = repo.pending_notifications()
    assert first.seq is not None and second.seq is not None and first.seq != second.seq
    assert repo.remove_pending(first.seq) and not repo.remove_pending(first.seq)
    assert [p.seq for p in repo.pending_notifications()] == [second.seq]
