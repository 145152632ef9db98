"""Alert notifications (alerts/sender.py): the outbox written with the alert, the message, crash
safety (a crash before sending, or between publishing and marking sent, notifies exactly once),
retries of a failing publish, and properties of random match/acknowledge/close sequences.

Fakes: a frozen clock, a temporary state database, a recording publish; the crash cases also
run the real SNS topics (`Notifications` over its memory repository) whose keyed publish is
idempotent."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trailkeeper._internal.sqlite import Database
from trailkeeper.alerts import (
    AlertPolicy,
    Alerts,
    AlertSender,
    AlertState,
    Detection,
    OutcomeKind,
    SqliteAlertRepository,
)
from trailkeeper.alerts.message import subject
from trailkeeper.alerts.sender import FIRST_RETRY_S, retry_delay
from trailkeeper.clock import FrozenClock
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.notify.store import MemoryNotifyRepository
from trailkeeper.notify.topics import Notifications, SnsError

START = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)
ACCOUNT, REGION = "123456789012", "eu-west-1"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:security"


class Recorder:
    """A publish that records its calls and fails while `failing` is set."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.failing: Exception | None = None
        self.called = threading.Event()

    def __call__(self, topic_arn: str, message: str, *, subject: str, dedup_key: str) -> object:
        if self.failing is not None:
            raise self.failing
        self.calls.append({"topic": topic_arn, "message": message, "subject": subject, "key": dedup_key})
        self.called.set()
        return "message-id"


def detection(event_id: str, user: str = "alice", title: str = "CloudTrail logging stopped",
              policy: AlertPolicy | None = None) -> Detection:
    rec = {"eventID": event_id, "eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com",
           "eventTime": "2026-12-06T00:58:00Z", "awsRegion": REGION, "sourceIPAddress": "203.0.113.9",
           "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}"}}
    return Detection("aws_cloudtrail_disable_logging", title, "high", rec, policy or AlertPolicy())


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def _open(path: Path, clock: FrozenClock) -> tuple[Database, Alerts]:
    """What a (re)start does: open the state database and the alerts over it."""
    db = Database(path)
    alerts = Alerts(SqliteAlertRepository(db), clock)
    if alerts.settings().default_topic is None:
        alerts.update_settings({"default_topic": TOPIC}, "admin")
    return db, alerts


@pytest.fixture
def alerts(path: Path, clock: FrozenClock) -> Iterator[Alerts]:
    db, made = _open(path, clock)
    yield made
    db.close()


# ---- the message --------------------------------------------------------------------------
def test_an_opening_is_published_once_with_its_message(alerts: Alerts, clock: FrozenClock) -> None:
    publish = Recorder()
    sender = AlertSender(alerts, publish)
    opened = alerts.on_match(detection("e1")).alert
    alerts.on_match(detection("e2"))
    clock.advance(timedelta(seconds=3))
    assert opened is not None and sender.send_pending() == 1 and sender.send_pending() == 0
    [call] = publish.calls
    assert (call["topic"], call["key"]) == (TOPIC, f"alert:{opened.id}")
    assert call["subject"] == "trailkeeper alert [high]: CloudTrail logging stopped"
    assert orjson.loads(call["message"]) == {
        "alertId": opened.id, "ruleId": "aws_cloudtrail_disable_logging", "ruleTitle": "CloudTrail logging stopped",
        "severity": "high", "state": "open", "dedupKey": opened.dedup_key, "count": 1,
        "firstSeen": "2026-12-06T01:00:00Z", "lastSeen": "2026-12-06T01:00:00Z", "eventIds": ["e1"],
        "trigger": {"eventID": "e1", "eventName": "StopLogging", "eventSource": "cloudtrail.amazonaws.com",
                    "sourceIPAddress": "203.0.113.9", "eventTime": "2026-12-06T00:58:00Z", "awsRegion": REGION,
                    "principal": f"arn:aws:iam::{ACCOUNT}:user/alice"}}
    assert alerts.get(opened.id).notified == START + timedelta(seconds=3)
    assert alerts.pending_notifications() == []


def test_the_subject_fits_sns(alerts: Alerts) -> None:
    opened = alerts.on_match(detection("e1", title="Überwachung " + "x" * 200)).alert
    assert opened is not None
    text = subject(opened)
    assert len(text) == 100 and text.endswith("...") and text.isascii()
    assert text.startswith("trailkeeper alert [high]: ?berwachung")


# ---- crash safety -------------------------------------------------------------------------
def test_a_crash_before_sending_still_notifies_exactly_once(path: Path, clock: FrozenClock) -> None:
    db, alerts = _open(path, clock)
    alerts.on_match(detection("e1"))
    db.close()  # the process dies before its sender ran
    db, restarted = _open(path, clock)
    publish = Recorder()
    sender = AlertSender(restarted, publish)
    assert sender.send_pending() == 1
    assert AlertSender(restarted, publish).send_pending() == 0
    assert len(publish.calls) == 1
    db.close()


def _sns(clock: FrozenClock) -> tuple[Notifications, MemoryNotifyRepository]:
    repo = MemoryNotifyRepository()
    sns = Notifications(repo, MemoryKeyring(), clock, ACCOUNT, REGION, "http://tk.example:8790/",
                        validate_apprise=lambda url: True)
    sns.create_topic("security")
    sub = sns.subscribe(TOPIC, "http", "http://hooks.example/sns")
    sns.confirm(TOPIC, sub.token)
    return sns, repo


def test_a_crash_between_publishing_and_marking_sent_queues_one_message(path: Path, clock: FrozenClock) -> None:
    sns, sns_repo = _sns(clock)
    db, alerts = _open(path, clock)
    alerts.on_match(detection("e1"))
    before = sns_repo.counts().pending

    def crash(*args: Any) -> None:
        raise KeyboardInterrupt("killed after publishing")

    alerts.repo.notification_sent = crash  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        AlertSender(alerts, sns.publish).send_pending()
    db.close()
    db, restarted = _open(path, clock)
    assert AlertSender(restarted, sns.publish).send_pending() == 1  # published again: the same key
    assert sns_repo.counts().pending - before == 1
    assert restarted.pending_notifications() == []
    db.close()


def test_a_failing_publish_keeps_the_row_and_retries_later(alerts: Alerts, clock: FrozenClock) -> None:
    publish = Recorder()
    publish.failing = SnsError("NotFound", "Topic does not exist", 404)
    sender = AlertSender(alerts, publish)
    alerts.on_match(detection("e1"))
    assert sender.send_pending() == 0 and sender.send_pending() == 0  # the second is before its retry time
    [waiting] = alerts.pending_notifications()
    assert (waiting.attempts, waiting.last_error) == (1, "Topic does not exist")
    assert waiting.next_attempt == START + timedelta(seconds=FIRST_RETRY_S)
    publish.failing = None
    clock.advance(timedelta(seconds=FIRST_RETRY_S))
    assert sender.send_pending() == 1 and alerts.pending_notifications() == []


def test_retry_delays_double_up_to_a_cap() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 9, 50)] == [5.0, 10.0, 20.0, 900.0, 900.0]


def test_the_sender_thread_is_woken_by_an_opening(alerts: Alerts) -> None:
    publish = Recorder()
    events: list[str] = []
    sender = AlertSender(alerts, publish, emit=lambda name, data: events.append(name))
    sender.start()
    try:
        alerts.on_match(detection("e1"))
        assert publish.called.wait(5.0)
    finally:
        sender.stop()
    assert events == ["AlertNotificationQueued"]


# ---- properties of random sequences -------------------------------------------------------
WINDOW_S = 600
Step = tuple[str, int, int]  # (match | ack | close | wait, a principal or alert index, an event or minutes)

steps = st.lists(st.one_of(
    st.tuples(st.just("match"), st.integers(0, 2), st.integers(0, 12)),
    st.tuples(st.sampled_from(["ack", "close"]), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("wait"), st.just(0), st.integers(1, 15)),
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(steps=steps, threshold=st.sampled_from([1, 2]))
def test_random_sequences_keep_the_invariants(steps: list[Step], threshold: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = FrozenClock(START)
        db, alerts = _open(Path(tmp) / "state.db", clock)
        publish = Recorder()
        sender = AlertSender(alerts, publish)
        policy = AlertPolicy(dedup_window_s=WINDOW_S, threshold=threshold, threshold_window_s=WINDOW_S)
        opened: list[str] = []
        absorbed: set[str] = set()
        for kind, who, what in steps:
            _step(alerts, clock, policy, kind, who, what, opened, absorbed)
            if what % 3 == 0:
                sender.send_pending()
            _check(alerts, clock.now(), opened, absorbed)
        sender.send_pending()
        assert sorted(c["key"] for c in publish.calls) == sorted(f"alert:{a}" for a in opened)
        db.close()


def _step(alerts: Alerts, clock: FrozenClock, policy: AlertPolicy, kind: str, who: int, what: int,
          opened: list[str], absorbed: set[str]) -> None:
    if kind == "wait":
        clock.advance(timedelta(minutes=what))
    elif kind == "match":
        event_id = f"p{who}-e{what}"  # the same event again is a replay
        outcome = alerts.on_match(detection(event_id, user=f"u{who}", policy=policy))
        if outcome.kind is OutcomeKind.OPENED:
            assert outcome.alert is not None
            opened.append(outcome.alert.id)
            absorbed.update(alerts.event_ids(outcome.alert.id))
        elif outcome.kind is OutcomeKind.UPDATED:
            absorbed.add(event_id)
    elif opened:
        alert = alerts.get(opened[who % len(opened)])
        if kind == "ack" and alert.state is AlertState.OPEN:
            alerts.acknowledge(alert.id, "alice")
        elif kind == "close" and alert.state is not AlertState.CLOSED:
            alerts.close(alert.id, "bob", "done")


def _check(alerts: Alerts, now: datetime, opened: list[str], absorbed: set[str]) -> None:
    every = alerts.list_alerts(limit=1000).items
    assert sorted(a.id for a in every) == sorted(opened)
    seen: list[str] = []
    live: dict[str, int] = {}
    for alert in every:
        ids = alerts.event_ids(alert.id)
        assert alert.count == len(ids) == len(set(ids))
        seen += ids
        if alert.state is not AlertState.CLOSED and now - alert.last_seen < timedelta(seconds=WINDOW_S):
            live[alert.dedup_key] = live.get(alert.dedup_key, 0) + 1
        assert (alert.notified is None) == (alert.id in {n.alert_id for n in alerts.pending_notifications()})
    assert len(seen) == len(set(seen)) and set(seen) == absorbed
    assert all(n == 1 for n in live.values())
