"""An alert's life after it opens (open -> acknowledged -> closed, each change in its history with
actor, time and comment), listing, and the alert settings with their validation.

Fakes: a frozen clock and a temporary state database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.alerts import (
    Alert,
    AlertError,
    AlertPolicy,
    Alerts,
    AlertSettings,
    AlertState,
    Detection,
    SqliteAlertRepository,
    changed,
)
from trailkeeper.alerts.ids import ID_PATTERN, IdMaker
from trailkeeper.clock import FrozenClock

START = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)
TOPIC = "arn:aws:sns:eu-west-1:123456789012:security"
PAGER = "arn:aws:sns:eu-west-1:123456789012:pager"


def detection(event_id: str, user: str = "alice", rule: str = "stop_logging", severity: str = "high") -> Detection:
    rec = {"eventID": event_id, "eventName": "StopLogging",
           "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::123456789012:user/{user}"}}
    return Detection(rule, "CloudTrail logging stopped", severity, rec, AlertPolicy())


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    made = Database(tmp_path / "state.db")
    yield made
    made.close()


@pytest.fixture
def alerts(db: Database, clock: FrozenClock) -> Alerts:
    return Alerts(SqliteAlertRepository(db), clock)


def _opened(alerts: Alerts, event_id: str = "e1", **kw: Any) -> Alert:
    outcome = alerts.on_match(detection(event_id, **kw))
    assert outcome.alert is not None
    return outcome.alert


# ---- life cycle ---------------------------------------------------------------------------
def test_acknowledge_and_close_are_recorded_with_actor_time_and_comment(alerts: Alerts, clock: FrozenClock) -> None:
    alert = _opened(alerts)
    clock.advance(timedelta(minutes=5))
    acked = alerts.acknowledge(alert.id, "alice", "investigating")
    clock.advance(timedelta(minutes=30))
    closed = alerts.close(alert.id, "bob", "planned maintenance, ticket OPS-12")
    assert (acked.state, acked.updated) == (AlertState.ACKNOWLEDGED, START + timedelta(minutes=5))
    assert (closed.state, closed.updated) == (AlertState.CLOSED, START + timedelta(minutes=35))
    assert alerts.get(alert.id) == closed
    steps = [(c.seq, c.action, c.actor, c.at - START, c.from_state, c.to_state, c.comment)
             for c in alerts.history(alert.id)]
    assert steps == [
        (1, "open", "trailkeeper", timedelta(0), None, AlertState.OPEN, "rule stop_logging matched event e1"),
        (2, "acknowledge", "alice", timedelta(minutes=5), AlertState.OPEN, AlertState.ACKNOWLEDGED, "investigating"),
        (3, "close", "bob", timedelta(minutes=35), AlertState.ACKNOWLEDGED, AlertState.CLOSED,
         "planned maintenance, ticket OPS-12"),
    ]


def test_an_open_alert_can_be_closed_directly(alerts: Alerts) -> None:
    alert = _opened(alerts)
    assert alerts.close(alert.id, "bob", "false positive").state is AlertState.CLOSED


@pytest.mark.parametrize(("steps", "refused", "code"), [
    pytest.param(["close"], "acknowledge", "InvalidTransition", id="acknowledge-closed"),
    pytest.param(["close"], "close", "InvalidTransition", id="close-twice"),
    pytest.param(["acknowledge"], "acknowledge", "InvalidTransition", id="acknowledge-twice"),
    pytest.param([], "close-without-comment", "InvalidParameter", id="close-needs-a-comment"),
    pytest.param([], "acknowledge-without-actor", "InvalidParameter", id="needs-an-actor"),
])
def test_illegal_changes_are_refused_and_leave_no_trace(alerts: Alerts, steps: list[str], refused: str,
                                                        code: str) -> None:
    alert = _opened(alerts)
    act = {"acknowledge": lambda: alerts.acknowledge(alert.id, "alice", "ok"),
           "close": lambda: alerts.close(alert.id, "alice", "done"),
           "close-without-comment": lambda: alerts.close(alert.id, "alice", "  "),
           "acknowledge-without-actor": lambda: alerts.acknowledge(alert.id, "", "")}
    for step in steps:
        act[step]()
    before = (alerts.get(alert.id), alerts.history(alert.id))
    with pytest.raises(AlertError) as error:
        act[refused]()
    assert error.value.code == code
    assert (alerts.get(alert.id), alerts.history(alert.id)) == before


def test_the_refusal_says_what_state_the_alert_is_in(alerts: Alerts) -> None:
    alert = _opened(alerts)
    alerts.close(alert.id, "bob", "done")
    with pytest.raises(AlertError, match=f"alert {alert.id} is closed: it cannot be acknowledged") as error:
        alerts.acknowledge(alert.id, "alice")
    assert error.value.status == 409 and "new match opens a new alert" in error.value.diagnostics()


@pytest.mark.parametrize("call", ["get", "history", "event_ids", "acknowledge"])
def test_an_unknown_alert_is_not_found(alerts: Alerts, call: str) -> None:
    with pytest.raises(AlertError) as error:
        if call == "acknowledge":
            alerts.acknowledge("0000000000000000", "alice")
        else:
            getattr(alerts, call)("0000000000000000")
    assert (error.value.code, error.value.status) == ("AlertNotFound", 404)


def test_to_dict_is_the_api_form(alerts: Alerts) -> None:
    alert = _opened(alerts)
    shown = alert.to_dict()
    assert (shown["alertId"], shown["state"], shown["firstSeen"], shown["count"]) == (
        alert.id, "open", "2026-12-06T01:00:00Z", 1)
    assert shown["trigger"]["principal"] == "arn:aws:iam::123456789012:user/alice"
    assert alerts.history(alert.id)[0].to_dict()["toState"] == "open"


# ---- listing ------------------------------------------------------------------------------
def test_listing_pages_newest_first(alerts: Alerts, clock: FrozenClock) -> None:
    made = []
    for n in range(5):
        made.append(_opened(alerts, f"e{n}", user=f"u{n}"))
    ids = [a.id for a in reversed(made)]
    first = alerts.list_alerts(limit=2)
    second = alerts.list_alerts(limit=2, next_token=first.next_token)
    third = alerts.list_alerts(limit=2, next_token=second.next_token)
    assert [a.id for a in first.items + second.items + third.items] == ids
    assert third.next_token is None


def test_listing_filters_by_state_severity_and_rule(alerts: Alerts) -> None:
    a = _opened(alerts, "e1", user="a", severity="critical")
    b = _opened(alerts, "e2", user="b", rule="root_login")
    alerts.acknowledge(b.id, "alice")
    assert [x.id for x in alerts.list_alerts(state="acknowledged").items] == [b.id]
    assert [x.id for x in alerts.list_alerts(severity="critical").items] == [a.id]
    assert [x.id for x in alerts.list_alerts(rule="root_login").items] == [b.id]
    assert alerts.list_alerts(state="closed").items == []


@pytest.mark.parametrize(("kw", "message"), [
    pytest.param({"state": "resolved"}, "state 'resolved'", id="state"),
    pytest.param({"severity": "urgent"}, "severity 'urgent'", id="severity"),
    pytest.param({"limit": 0}, "limit must be", id="limit"),
    pytest.param({"next_token": "../x"}, "next_token", id="token"),
])
def test_bad_listing_requests_are_refused(alerts: Alerts, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertError, match=message):
        alerts.list_alerts(**kw)


def test_ids_sort_by_time_and_keep_growing() -> None:
    maker = IdMaker()
    ids = [maker.next(START) for _ in range(50)] + [maker.next(START - timedelta(hours=1))]
    assert ids == sorted(ids) and len(set(ids)) == 51 and all(ID_PATTERN.fullmatch(i) for i in ids)
    after_restart = IdMaker()
    after_restart.seen(ids[-1])
    assert after_restart.next(START - timedelta(days=1)) > ids[-1]


# ---- settings -----------------------------------------------------------------------------
def test_settings_start_at_the_documented_defaults(alerts: Alerts) -> None:
    assert alerts.settings() == AlertSettings()
    assert AlertSettings().to_dict() == {
        "ignore_service_principals": True, "ignore_federated_console_logins": True, "ignore_failed_calls": False,
        "allowed_principals": [], "topics": {}, "default_topic": None, "dedup_window_s": 3600, "threshold": 1,
        "threshold_window_s": 3600}


def test_an_update_returns_old_and_new_and_is_kept(alerts: Alerts, db: Database, clock: FrozenClock) -> None:
    old, new = alerts.update_settings({"topics": {"critical": PAGER}, "default_topic": TOPIC,
                                       "ignore_failed_calls": True}, "admin")
    assert old == AlertSettings()
    assert (new.topic_for("critical"), new.topic_for("low"), new.ignore_failed_calls) == (PAGER, TOPIC, True)
    assert changed(old, new) == {"ignore_failed_calls": (False, True), "topics": ({}, {"critical": PAGER}),
                                 "default_topic": (None, TOPIC)}
    assert Alerts(SqliteAlertRepository(db), clock).settings() == new
    assert db.query("SELECT updated_by FROM alert_settings")[0][0] == "admin"


def test_the_topic_follows_the_severity(alerts: Alerts) -> None:
    alerts.update_settings({"topics": {"critical": PAGER}, "default_topic": TOPIC}, "admin")
    _opened(alerts, "e1", user="a", severity="critical")
    _opened(alerts, "e2", user="b", severity="low")
    assert [n.topic_arn for n in alerts.pending_notifications()] == [PAGER, TOPIC]


def test_without_a_topic_alerts_open_silently(alerts: Alerts) -> None:
    outcome = alerts.on_match(detection("e1"))
    assert outcome.alert is not None and not outcome.notification_queued
    assert alerts.pending_notifications() == []


def test_settings_defaults_apply_to_rules_without_a_policy(alerts: Alerts) -> None:
    alerts.update_settings({"threshold": 2, "dedup_window_s": 0}, "admin")
    kinds = [o.kind.value for o in alerts.on_matches([detection(f"e{n}") for n in range(4)])]
    assert kinds == ["below-threshold", "opened", "below-threshold", "opened"]


@pytest.mark.parametrize(("changes", "messages"), [
    pytest.param({"topics": {"urgent": TOPIC}}, ["unknown severity 'urgent'"], id="unknown-severity"),
    pytest.param({"topics": {"high": "arn:aws:sqs:eu-west-1:123456789012:q"}}, ["is not an SNS topic ARN"],
                 id="not-a-topic"),
    pytest.param({"default_topic": "security"}, ["default_topic 'security' is not an SNS topic ARN"], id="bad-arn"),
    pytest.param({"dedup_window_s": -60}, ["dedup_window_s must not be negative"], id="negative-window"),
    pytest.param({"threshold_window_s": 0}, ["threshold_window_s must be 1 to 86400"], id="empty-threshold-window"),
    pytest.param({"threshold": 0}, ["threshold must be a whole number from 1"], id="zero-threshold"),
    pytest.param({"ignore_failed_calls": "yes"}, ["must be true or false"], id="not-a-boolean"),
    pytest.param({"allowed_principals": ["alice"]}, ["'alice' is not an ARN"], id="allow-list-entry"),
    pytest.param({"colour": "red"}, ["unknown setting 'colour'"], id="unknown-setting"),
    pytest.param({"dedup_window_s": -1, "topics": {"urgent": TOPIC}},
                 ["dedup_window_s must not be negative", "unknown severity 'urgent'"], id="every-problem-at-once"),
])
def test_bad_settings_are_refused_with_every_problem_named(alerts: Alerts, changes: dict[str, Any],
                                                           messages: list[str]) -> None:
    with pytest.raises(AlertError) as error:
        alerts.update_settings(changes, "admin")
    assert error.value.code == "InvalidSettings"
    for message in messages:
        assert message in str(error.value)
    assert alerts.settings() == AlertSettings()
