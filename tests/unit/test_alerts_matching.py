"""What a detection becomes (alerts/lifecycle.py `on_match`): dedup windows, per-rule dedup
fields, thresholds, suppressions, the false-positive switches, the allow-list and replays.

Fakes: a frozen clock (windows are crossed by advancing it) and a temporary state database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.alerts import (
    AlertError,
    AlertPolicy,
    Alerts,
    AlertState,
    Detection,
    OutcomeKind,
    SqliteAlertRepository,
)
from trailkeeper.alerts.fields import dedup_key, lookup, principal
from trailkeeper.clock import FrozenClock

START = datetime(2026, 12, 6, 1, 0, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:security"


def record(event_id: str, arn: str | None = ALICE, name: str = "StopLogging", **extra: Any) -> dict[str, Any]:
    identity: dict[str, Any] = {"type": "IAMUser", "accountId": "123456789012"}
    if arn is not None:
        identity["arn"] = arn
    found: dict[str, Any] = {"eventID": event_id, "eventName": name, "eventSource": "cloudtrail.amazonaws.com",
                             "eventTime": "2026-12-06T00:59:00Z", "awsRegion": "eu-west-1",
                             "sourceIPAddress": "203.0.113.9", "userIdentity": identity}
    for key, value in extra.items():
        if key == "identity":
            identity.update(value)
        else:
            found[key] = value
    return found


def detect(rec: dict[str, Any], rule: str = "stop_logging", policy: AlertPolicy | None = None,
           severity: str = "high") -> Detection:
    return Detection(rule, f"Title of {rule}", severity, rec, policy or AlertPolicy())


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def alerts(tmp_path: Path, clock: FrozenClock) -> Iterator[Alerts]:
    db = Database(tmp_path / "state.db")
    made = Alerts(SqliteAlertRepository(db), clock)
    made.update_settings({"default_topic": TOPIC}, "admin")
    yield made
    db.close()


def _kinds(alerts: Alerts, *detections: Detection) -> list[str]:
    return [o.kind.value for o in alerts.on_matches(detections)]


# ---- dedup --------------------------------------------------------------------------------
def test_a_repeat_inside_the_window_updates_the_alert_and_queues_no_notification(
        alerts: Alerts, clock: FrozenClock) -> None:
    first = alerts.on_match(detect(record("e1")))
    clock.advance(timedelta(minutes=59))
    second = alerts.on_match(detect(record("e2")))
    assert (first.kind, first.notification_queued) == (OutcomeKind.OPENED, True)
    assert (second.kind, second.notification_queued) == (OutcomeKind.UPDATED, False)
    assert first.alert is not None and second.alert is not None and second.alert.id == first.alert.id
    alert = alerts.get(first.alert.id)
    assert (alert.count, alert.first_seen, alert.last_seen) == (2, START, START + timedelta(minutes=59))
    assert alerts.event_ids(alert.id) == ["e1", "e2"]
    assert len(alerts.pending_notifications()) == 1


def test_the_window_runs_from_the_last_match(alerts: Alerts, clock: FrozenClock) -> None:
    kinds = []
    for n in range(4):  # 50 minutes apart: each inside the window of the one before
        kinds += _kinds(alerts, detect(record(f"e{n}")))
        clock.advance(timedelta(minutes=50))
    assert kinds == ["opened", "updated", "updated", "updated"]


def test_after_the_window_a_new_alert_opens_and_notifies(alerts: Alerts, clock: FrozenClock) -> None:
    alerts.on_match(detect(record("e1")))
    clock.advance(timedelta(minutes=60))
    later = alerts.on_match(detect(record("e2")))
    assert (later.kind, later.notification_queued) == (OutcomeKind.OPENED, True)
    assert len(alerts.list_alerts().items) == 2 and len(alerts.pending_notifications()) == 2


def test_a_closed_alert_absorbs_nothing(alerts: Alerts) -> None:
    first = alerts.on_match(detect(record("e1")))
    assert first.alert is not None
    alerts.close(first.alert.id, "alice", "known change window")
    again = alerts.on_match(detect(record("e2")))
    assert again.kind is OutcomeKind.OPENED and again.alert is not None and again.alert.id != first.alert.id


def test_an_acknowledged_alert_still_absorbs_repeats(alerts: Alerts) -> None:
    first = alerts.on_match(detect(record("e1")))
    assert first.alert is not None
    alerts.acknowledge(first.alert.id, "alice", "looking")
    assert _kinds(alerts, detect(record("e2"))) == ["updated"]
    assert alerts.get(first.alert.id).state is AlertState.ACKNOWLEDGED


@pytest.mark.parametrize(("first", "second", "same"), [
    pytest.param(record("a"), record("b"), True, id="same-principal"),
    pytest.param(record("a"), record("b", arn=BOB), False, id="other-principal"),
    pytest.param(record("a", arn=None, identity={"principalId": "AIDA1"}),
                 record("b", arn=None, identity={"principalId": "AIDA1"}), True, id="by-principal-id"),
    pytest.param(record("a", arn=None), record("b", arn=None, identity={"accountId": "999999999999"}), False,
                 id="by-account-and-type"),
])
def test_the_default_key_is_the_rule_and_the_principal(alerts: Alerts, first: dict[str, Any],
                                                       second: dict[str, Any], same: bool) -> None:
    kinds = _kinds(alerts, detect(first), detect(second))
    assert kinds == ["opened", "updated" if same else "opened"]


def test_two_rules_never_share_an_alert(alerts: Alerts) -> None:
    assert _kinds(alerts, detect(record("a")), detect(record("a"), rule="other_rule")) == ["opened", "opened"]


@pytest.mark.parametrize(("fields", "second", "same"), [
    pytest.param(("sourceIPAddress",), record("b", arn=BOB), True, id="same-ip-other-principal"),
    pytest.param(("sourceIPAddress",), record("b", sourceIPAddress="198.51.100.1"), False, id="other-ip"),
    pytest.param(("requestParameters.bucketName",), record("b", requestParameters={"bucketName": "logs"}), True,
                 id="nested-path"),
    pytest.param(("requestParameters.bucketName",), record("b", requestParameters={"bucketName": "x"}), False,
                 id="nested-path-other-value"),
])
def test_per_rule_dedup_fields_form_the_key(alerts: Alerts, fields: tuple[str, ...], second: dict[str, Any],
                                           same: bool) -> None:
    policy = AlertPolicy(dedup_fields=fields)
    first = record("a", requestParameters={"bucketName": "logs"})
    kinds = _kinds(alerts, detect(first, policy=policy), detect(second, policy=policy))
    assert kinds == ["opened", "updated" if same else "opened"]


def test_a_per_rule_window_overrides_the_default(alerts: Alerts, clock: FrozenClock) -> None:
    policy = AlertPolicy(dedup_window_s=600)
    alerts.on_match(detect(record("a"), policy=policy))
    clock.advance(timedelta(minutes=10))
    assert _kinds(alerts, detect(record("b"), policy=policy)) == ["opened"]


def test_a_zero_window_makes_every_match_its_own_alert(alerts: Alerts) -> None:
    policy = AlertPolicy(dedup_window_s=0)
    assert _kinds(alerts, detect(record("a"), policy=policy), detect(record("b"), policy=policy)) == [
        "opened", "opened"]


def test_keys_and_paths() -> None:
    rec = record("a", requestParameters={"enable": False, "tags": {"k": "v"}}, **{"flat.key": "x"})
    assert (lookup(rec, "requestParameters.enable"), lookup(rec, "flat.key"), lookup(rec, "no.such")) == (
        False, "x", None)
    assert principal(record("a", arn=None)) == "123456789012:IAMUser"
    assert dedup_key("r", rec, ("requestParameters.enable", "missing")) == '["r","false",""]'
    assert dedup_key("r", rec, None) == f'["r","{ALICE}"]'


# ---- threshold ----------------------------------------------------------------------------
def test_the_nth_match_opens_the_alert_with_every_event_id(alerts: Alerts, clock: FrozenClock) -> None:
    policy = AlertPolicy(threshold=3, threshold_window_s=600)
    outcomes = []
    for n in range(3):
        outcomes.append(alerts.on_match(detect(record(f"e{n}"), policy=policy)))
        clock.advance(timedelta(minutes=1))
    assert [(o.kind.value, o.pending) for o in outcomes] == [("below-threshold", 1), ("below-threshold", 2),
                                                             ("opened", 0)]
    alert = outcomes[-1].alert
    assert alert is not None and alert.count == 3 and alert.first_seen == START
    assert alerts.event_ids(alert.id) == ["e0", "e1", "e2"]
    assert len(alerts.pending_notifications()) == 1


def test_the_threshold_window_slides(alerts: Alerts, clock: FrozenClock) -> None:
    policy = AlertPolicy(threshold=3, threshold_window_s=600)
    kinds = []
    for n in range(4):  # 6 minutes apart: never three within ten minutes
        kinds += _kinds(alerts, detect(record(f"e{n}"), policy=policy))
        clock.advance(timedelta(minutes=6))
    assert kinds == ["below-threshold"] * 4
    clock.advance(timedelta(minutes=-3))  # now 3 minutes after e3: e2, e3 and this one are within 10 minutes
    opened = alerts.on_match(detect(record("e4"), policy=policy))
    assert opened.kind is OutcomeKind.OPENED and opened.alert is not None
    assert alerts.event_ids(opened.alert.id) == ["e2", "e3", "e4"]


def test_thresholds_count_per_dedup_key(alerts: Alerts) -> None:
    policy = AlertPolicy(threshold=2)
    kinds = _kinds(alerts, detect(record("a"), policy=policy), detect(record("b", arn=BOB), policy=policy),
                   detect(record("c"), policy=policy))
    assert kinds == ["below-threshold", "below-threshold", "opened"]


def test_repeats_of_an_open_alert_skip_the_threshold(alerts: Alerts) -> None:
    policy = AlertPolicy(threshold=2)
    kinds = _kinds(alerts, *[detect(record(f"e{n}"), policy=policy) for n in range(4)])
    assert kinds == ["below-threshold", "opened", "updated", "updated"]



def test_a_threshold_past_the_event_id_cap_counts_the_rest(alerts: Alerts) -> None:
    policy = AlertPolicy(threshold=1_001)
    outcomes = alerts.on_matches([detect(record(f"e{n:04d}"), policy=policy) for n in range(1_001)])
    opened = outcomes[-1].alert
    assert opened is not None and (opened.count, opened.dropped) == (1_001, 1)
    assert len(alerts.event_ids(opened.id)) == 1_000
    assert _kinds(alerts, detect(record("more"), policy=policy)) == ["updated"]
    assert (alerts.get(opened.id).count, alerts.get(opened.id).dropped) == (1_002, 2)


def test_an_empty_dedup_key_folds_every_match_of_the_rule(alerts: Alerts) -> None:
    policy = AlertPolicy(dedup_fields=())
    assert _kinds(alerts, detect(record("a"), policy=policy), detect(record("b", arn=BOB), policy=policy)) == [
        "opened", "updated"]


# ---- suppression --------------------------------------------------------------------------
def test_a_suppression_keeps_matching_records_from_alerting_and_counts_them(alerts: Alerts) -> None:
    s = alerts.suppress({"userIdentity.arn": ALICE, "sourceIPAddress": "203.0.113.*"}, 3600,
                        "pentest this week", "secops")
    outcomes = alerts.on_matches([detect(record("a")), detect(record("b")), detect(record("c", arn=BOB)),
                                  detect(record("d", sourceIPAddress="198.51.100.1"))])
    assert [o.kind.value for o in outcomes] == ["suppressed", "suppressed", "opened", "opened"]
    assert outcomes[0].suppression_id == s.id
    [found] = alerts.suppressions()
    assert (found.suppressed, found.last_suppressed, found.actor, found.reason) == (
        2, START, "secops", "pentest this week")


def test_a_suppression_for_one_rule_leaves_the_others(alerts: Alerts) -> None:
    alerts.suppress({"userIdentity.arn": ALICE}, 3600, "noisy", "secops", rule_id="stop_logging")
    assert _kinds(alerts, detect(record("a")), detect(record("a"), rule="other")) == ["suppressed", "opened"]


def test_a_suppression_expires(alerts: Alerts, clock: FrozenClock) -> None:
    alerts.suppress({"userIdentity.arn": ALICE}, 600, "maintenance", "secops")
    clock.advance(timedelta(minutes=10))
    assert _kinds(alerts, detect(record("a"))) == ["opened"]
    assert alerts.suppressions() == [] and len(alerts.suppressions(active_only=False)) == 1


def test_a_lifted_suppression_stops_suppressing(alerts: Alerts, clock: FrozenClock) -> None:
    s = alerts.suppress({"userIdentity.arn": ALICE}, 3600, "maintenance", "secops")
    clock.advance(timedelta(minutes=1))
    lifted = alerts.lift_suppression(s.id, "lead")
    assert (lifted.lifted, lifted.lifted_by) == (START + timedelta(minutes=1), "lead")
    assert _kinds(alerts, detect(record("a"))) == ["opened"]
    with pytest.raises(AlertError) as refused:
        alerts.lift_suppression(s.id, "lead")
    assert refused.value.code == "SuppressionNotActive"


@pytest.mark.parametrize(("fields", "duration", "reason", "message"), [
    pytest.param({"a": "1", "b": "2", "c": "3", "d": "4"}, 60, "x", "1 to 3 fields", id="four-fields"),
    pytest.param({}, 60, "x", "1 to 3 fields", id="no-fields"),
    pytest.param({"a": ""}, 60, "x", "non-empty value", id="empty-value"),
    pytest.param({"a": "1"}, 0, "x", "duration must be", id="no-duration"),
    pytest.param({"a": "1"}, 91 * 86_400, "x", "duration must be", id="too-long"),
    pytest.param({"a": "1"}, 60, " ", "reason must not be empty", id="no-reason"),
])
def test_bad_suppressions_are_refused(alerts: Alerts, fields: dict[str, str], duration: int, reason: str,
                                      message: str) -> None:
    with pytest.raises(AlertError, match=message) as refused:
        alerts.suppress(fields, duration, reason, "secops")
    assert refused.value.code == "InvalidParameter"


def test_lifting_an_unknown_suppression_is_not_found(alerts: Alerts) -> None:
    with pytest.raises(AlertError) as refused:
        alerts.lift_suppression("nosuch", "lead")
    assert (refused.value.code, refused.value.status) == ("SuppressionNotFound", 404)


# ---- false-positive switches and the allow-list -------------------------------------------
SERVICE_CALL = record("s1", arn=None, identity={"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"})
INVOKED_BY = record("s2", identity={"invokedBy": "cloudformation.amazonaws.com"})
INTERNAL_AGENT = record("s3", userAgent="AWS Internal")
SAML_LOGIN = record("s4", name="ConsoleLogin", identity={"type": "SAMLUser"})
ROLE_LOGIN = record("s5", name="ConsoleLogin", identity={"type": "AssumedRole"})
SSO_LOGIN = record("s6", name="ConsoleLogin", identity={"type": "IAMUser", "sessionContext": {"sessionIssuer": {
    "arn": "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_1"}}})
IAM_USER_LOGIN = record("s7", name="ConsoleLogin")
FAILED_CALL = record("s8", errorCode="AccessDenied")


@pytest.mark.parametrize(("switch", "rec", "reason"), [
    pytest.param("ignore_service_principals", SERVICE_CALL, "ServicePrincipal", id="aws-service"),
    pytest.param("ignore_service_principals", INVOKED_BY, "ServicePrincipal", id="invoked-by"),
    pytest.param("ignore_service_principals", INTERNAL_AGENT, "ServicePrincipal", id="aws-internal"),
    pytest.param("ignore_federated_console_logins", SAML_LOGIN, "FederatedConsoleLogin", id="saml-login"),
    pytest.param("ignore_federated_console_logins", ROLE_LOGIN, "FederatedConsoleLogin", id="role-login"),
    pytest.param("ignore_federated_console_logins", SSO_LOGIN, "FederatedConsoleLogin", id="sso-login"),
    pytest.param("ignore_failed_calls", FAILED_CALL, "FailedCall", id="failed-call"),
])
@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
def test_each_switch_ignores_its_records_only_when_on(alerts: Alerts, switch: str, rec: dict[str, Any],
                                                      reason: str, on: bool) -> None:
    alerts.update_settings({switch: on}, "admin")
    outcome = alerts.on_match(detect(rec))
    assert (outcome.kind, outcome.reason) == ((OutcomeKind.IGNORED, reason) if on else (OutcomeKind.OPENED, ""))


def test_the_switches_default_to_services_and_federated_logins_ignored(alerts: Alerts) -> None:
    settings = alerts.settings()
    assert (settings.ignore_service_principals, settings.ignore_federated_console_logins,
            settings.ignore_failed_calls) == (True, True, False)
    assert _kinds(alerts, detect(SERVICE_CALL), detect(SAML_LOGIN), detect(FAILED_CALL),
                  detect(IAM_USER_LOGIN)) == ["ignored", "ignored", "opened", "updated"]


@pytest.mark.parametrize(("pattern", "rec", "ignored"), [
    pytest.param(ALICE, record("a"), True, id="exact"),
    pytest.param("arn:aws:iam::123456789012:user/*", record("a", arn=BOB), True, id="glob"),
    pytest.param("arn:aws:iam::123456789012:user/a*", record("a", arn=BOB), False, id="glob-misses"),
    pytest.param("arn:aws:iam::123456789012:role/ci-*",
                 record("a", arn="arn:aws:sts::123456789012:assumed-role/ci-deploy/run-7",
                        identity={"type": "AssumedRole", "sessionContext": {"sessionIssuer": {
                            "arn": "arn:aws:iam::123456789012:role/ci-deploy"}}}), True, id="role-of-a-session"),
])
def test_the_allow_list(alerts: Alerts, pattern: str, rec: dict[str, Any], ignored: bool) -> None:
    alerts.update_settings({"allowed_principals": [pattern]}, "admin")
    outcome = alerts.on_match(detect(rec))
    assert outcome.kind is (OutcomeKind.IGNORED if ignored else OutcomeKind.OPENED)
    if ignored:
        assert (outcome.reason, outcome.detail) == ("AllowListedPrincipal", f"allow-listed by {pattern}")


# ---- replays ------------------------------------------------------------------------------
def test_a_replayed_match_changes_nothing(alerts: Alerts) -> None:
    batch = [detect(record("e1")), detect(record("e2"))]
    assert [o.kind.value for o in alerts.on_matches(batch)] == ["opened", "updated"]
    assert [o.kind.value for o in alerts.on_matches(batch)] == ["duplicate", "duplicate"]
    [alert] = alerts.list_alerts().items
    assert (alert.count, len(alerts.pending_notifications())) == (2, 1)


def test_a_replay_below_the_threshold_is_not_counted_twice(alerts: Alerts) -> None:
    policy = AlertPolicy(threshold=2)
    assert _kinds(alerts, detect(record("e1"), policy=policy), detect(record("e1"), policy=policy)) == [
        "below-threshold", "duplicate"]


def test_a_replayed_suppressed_match_is_counted_once(alerts: Alerts) -> None:
    alerts.suppress({"userIdentity.arn": ALICE}, 3600, "noisy", "secops")
    assert _kinds(alerts, detect(record("e1")), detect(record("e1"))) == ["suppressed", "duplicate"]
    assert alerts.suppressions()[0].suppressed == 1


def test_replay_memory_is_pruned_but_an_alert_still_knows_its_events(tmp_path: Path, clock: FrozenClock) -> None:
    db = Database(tmp_path / "state.db")
    alerts = Alerts(SqliteAlertRepository(db), clock, seen_retention_s=60)
    policy = AlertPolicy(dedup_window_s=600)
    alerts.on_match(detect(record("e1"), policy=policy))
    clock.advance(timedelta(seconds=500))
    alerts.on_match(detect(record("e2"), policy=policy))
    clock.advance(timedelta(seconds=200))
    alerts.on_match(detect(record("x"), rule="other"))  # its batch forgets e1's claim, expired at 600 s
    assert {r[0] for r in db.query("SELECT event_id FROM alert_seen")} == {"e2", "x"}
    assert _kinds(alerts, detect(record("e1"), policy=policy)) == ["duplicate"]
    assert alerts.list_alerts(rule="stop_logging").items[0].count == 2
    db.close()


# ---- detections ---------------------------------------------------------------------------
@pytest.mark.parametrize(("make", "message"), [
    pytest.param(lambda: detect(record("a"), severity="urgent"), "severity 'urgent'", id="unknown-severity"),
    pytest.param(lambda: detect({"eventName": "x"}), "no eventID", id="no-event-id"),
    pytest.param(lambda: AlertPolicy(dedup_fields=("eventID",)), "unique per event", id="high-cardinality-key"),
    pytest.param(lambda: AlertPolicy(dedup_window_s=-1), "must not be negative", id="negative-window"),
    pytest.param(lambda: AlertPolicy(dedup_window_s=86_401), "0 to 86400", id="window-over-a-day"),
    pytest.param(lambda: AlertPolicy(threshold=0), "threshold must be 1 to", id="zero-threshold"),
])
def test_bad_detections_and_policies_are_refused(make: Any, message: str) -> None:
    with pytest.raises(AlertError, match=message) as refused:
        make()
    assert refused.value.code == "InvalidParameter"
