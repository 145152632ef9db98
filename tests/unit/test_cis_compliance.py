"""The CIS monitoring check: each way a control fails is its own case, and a complete setup passes."""

from __future__ import annotations

from trailkeeper.monitoring.cis import (
    ALARM_DEFAULTS,
    CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE,
    CONTROLS,
    find_control,
)
from trailkeeper.monitoring.compliance import FAIL, PASS, StoredAlarm, StoredFilter, check

GROUP = "aws-cloudtrail-logs-123456789012-main"
TOPIC = "arn:aws:sns:us-east-1:123456789012:cis"


def _filters(group: str = GROUP) -> list[StoredFilter]:
    return [StoredFilter(group, c.filter_name, c.pattern, ALARM_DEFAULTS.namespace, c.metric_name) for c in CONTROLS]


def _alarms(enabled: bool = True, topic: str = TOPIC) -> list[StoredAlarm]:
    return [StoredAlarm(f"{c.filter_name}-alarm", ALARM_DEFAULTS.namespace, c.metric_name, enabled, (topic,))
            for c in CONTROLS]


def test_the_installed_pack_passes_every_control() -> None:
    results = check([GROUP], _filters(), _alarms(), [TOPIC])
    assert [r.status for r in results] == [PASS] * len(CONTROLS)
    assert results[0].to_dict()["notifiedTopics"] == [TOPIC]


def test_no_forwarding_trail_fails_everything() -> None:
    assert {r.status for r in check([], _filters(), _alarms(), [TOPIC])} == {FAIL}
    assert "--log-group" in check([], _filters(), _alarms(), [TOPIC])[0].findings[0]


def test_filters_on_a_group_no_trail_forwards_to_do_not_count() -> None:
    assert {r.status for r in check([GROUP], _filters("other-group"), _alarms(), [TOPIC])} == {FAIL}


def test_an_edited_pattern_fails_its_control_only() -> None:
    control = find_control("CloudWatch.2")
    filters = [f if f.name != control.filter_name else
               StoredFilter(GROUP, f.name, CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE, f.metric_namespace, f.metric_name)
               for f in _filters()]
    results = {r.control.cis_number: r for r in check([GROUP], filters, _alarms(), [TOPIC])}
    assert results[control.cis_number].status == FAIL and "install-cis" in results[control.cis_number].findings[0]
    assert sum(r.status == FAIL for r in results.values()) == 1


def test_a_reordered_respaced_pattern_still_passes() -> None:
    control = find_control("CloudWatch.5")
    respaced = "{ ($.eventName = StopLogging) || ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || " \
               "($.eventName = DeleteTrail) || ($.eventName = StartLogging) }"
    filters = [StoredFilter(GROUP, "mine", respaced, "Custom", "TrailChanges")]
    alarms = [StoredAlarm("trail-changes", "Custom", "TrailChanges", True, (TOPIC,))]
    [result] = check([GROUP], filters, alarms, [TOPIC], controls=[control])
    assert result.status == PASS and result.filters == (f"{GROUP}:mine",)


def test_a_filter_without_an_alarm_fails() -> None:
    [result] = check([GROUP], _filters(), [], [TOPIC], controls=[CONTROLS[0]])
    assert result.status == FAIL and "no alarm" in result.findings[0] and result.filters


def test_an_alarm_on_another_metric_does_not_count() -> None:
    alarms = [StoredAlarm("x", "CISBenchmark", "SomethingElse", True, (TOPIC,))]
    [result] = check([GROUP], _filters(), alarms, [TOPIC], controls=[CONTROLS[0]])
    assert result.status == FAIL and "no alarm" in result.findings[0]


def test_disabled_actions_fail() -> None:
    [result] = check([GROUP], _filters(), _alarms(enabled=False), [TOPIC], controls=[CONTROLS[0]])
    assert result.status == FAIL and "confirmed subscription" in result.findings[0]


def test_a_topic_without_a_confirmed_subscription_fails() -> None:
    [result] = check([GROUP], _filters(), _alarms(), [], controls=[CONTROLS[0]])
    assert result.status == FAIL and result.alarms and not result.notified
