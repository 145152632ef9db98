"""The CloudWatch service over the memory repository and a frozen clock: alarm lifecycle, evaluation
on arrival and on tick, notifications owed by transitions, SetAlarmState, deletes, statistics,
ListMetrics filters, and races between evaluation and other writers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from trailkeeper.clock import FrozenClock
from trailkeeper.monitoring.alarms import AlarmConfig, AlarmConfigError
from trailkeeper.monitoring.cloudwatch import CloudWatch, config_from_dict, config_to_dict
from trailkeeper.monitoring.cloudwatch_store import (
    HistoryRecord,
    MemoryCloudWatchRepository,
    PendingNotification,
)
from trailkeeper.monitoring.metrics import Datum, MetricError, MetricKey, MetricRow, StatisticSet

ACCOUNT, REGION = "123456789012", "eu-west-1"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:security-alerts"
OK_TOPIC = "arn:aws:sns:eu-west-1:123456789012:all-clear"
UNKNOWN_TOPIC = "arn:aws:sns:eu-west-1:123456789012:no-data"
METRIC = MetricKey.of("CISBenchmark", "RootAccountUsage")
# 12:00:30 lies in the open 300-second period [12:00:00, 12:05:00).
T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
# The CIS remediation alarm: Sum >= 1 over one 300-second period.
CIS = AlarmConfig(name="root-usage", metric=METRIC, period=300, evaluation_periods=1, threshold=1.0,
                  comparison_operator="GreaterThanOrEqualToThreshold", statistic="Sum",
                  alarm_actions=(TOPIC,))


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, second, tzinfo=UTC)


def one(value: float, when: datetime, event_id: str | None = None, metric: MetricKey = METRIC) -> Datum:
    return Datum(metric, when, StatisticSet.single(value, event_id))


def service(repo: MemoryCloudWatchRepository | None = None,
            clock: FrozenClock | None = None) -> tuple[CloudWatch, FrozenClock]:
    clock = clock or FrozenClock(T0)
    return CloudWatch(repo or MemoryCloudWatchRepository(), clock, ACCOUNT, REGION), clock


def state_updates(cw: CloudWatch, name: str = CIS.name) -> list[HistoryRecord]:
    return [h for h in cw.history(name) if h.item_type == "StateUpdate"]


# --- creating and updating -------------------------------------------------------------------------

def test_a_new_alarm_is_unchecked_insufficient_data() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    alarm = cw.alarm(CIS.name)
    assert (alarm.state, alarm.reason, alarm.reason_data) == ("INSUFFICIENT_DATA", "Unchecked: Initial alarm creation", None)
    assert alarm.state_updated == alarm.config_updated == T0.timestamp()
    assert config_from_dict(alarm.config) == CIS
    [created] = cw.history(CIS.name)
    assert (created.item_type, created.summary, created.timestamp) == (
        "ConfigurationUpdate", 'Alarm "root-usage" created', T0.timestamp())
    assert orjson.loads(created.data)["createdAlarm"]["threshold"] == 1.0
    assert cw.repo.pending_notifications() == []


def test_the_alarm_arn_names_region_account_and_alarm() -> None:
    cw, _ = service()
    assert cw.alarm_arn("root-usage") == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:root-usage"


def test_the_stored_configuration_round_trips() -> None:
    full = replace(CIS, metric=MetricKey.of("N", "M", {"b": "2", "a": "1"}), datapoints_to_alarm=1,
                   treat_missing_data="notBreaching", actions_enabled=False, ok_actions=(OK_TOPIC,),
                   insufficient_data_actions=(UNKNOWN_TOPIC,), description="root used")
    assert config_from_dict(orjson.loads(orjson.dumps(config_to_dict(full)))) == full


def test_an_update_keeps_the_state_and_its_time() -> None:
    cw, clock = service()
    cw.put_alarm(CIS)
    cw.put_metric_data([one(1.0, T0, "ev-1")])
    before = cw.alarm(CIS.name)
    assert before.state == "ALARM"
    clock.advance(timedelta(seconds=5))
    cw.put_alarm(replace(CIS, threshold=5.0, description="now five"))
    after = cw.alarm(CIS.name)
    assert (after.state, after.reason, after.reason_data, after.state_updated) == (
        before.state, before.reason, before.reason_data, before.state_updated)
    assert after.config_updated == T0.timestamp() + 5
    assert config_from_dict(after.config).threshold == 5.0
    assert [h.summary for h in cw.history(CIS.name) if h.item_type == "ConfigurationUpdate"] == [
        'Alarm "root-usage" created', 'Alarm "root-usage" updated']


def test_an_invalid_configuration_is_refused_and_nothing_is_stored() -> None:
    cw, _ = service()
    with pytest.raises(AlarmConfigError):
        cw.put_alarm(replace(CIS, period=45, statistic="p99"))
    assert cw.alarms() == [] and cw.history(None) == []


# --- evaluation when a datapoint arrives -----------------------------------------------------------

def test_a_breaching_datapoint_in_the_open_period_fires_at_once_with_its_event_id() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    cw.put_metric_data([one(1.0, T0 - timedelta(seconds=10), "ev-1")])
    alarm = cw.alarm(CIS.name)
    assert alarm.state == "ALARM" and alarm.state_updated == T0.timestamp()
    assert alarm.reason == ("Threshold Crossed: 1 out of the last 1 datapoints [1.0 (01/03/26 12:00:00)] was "
                            "greater than or equal to the threshold (1.0) "
                            "(minimum 1 datapoint for OK -> ALARM transition).")
    [update] = state_updates(cw)
    assert (update.summary, update.timestamp, update.event_ids) == (
        "Alarm updated from INSUFFICIENT_DATA to ALARM", T0.timestamp(), ("ev-1",))
    data = orjson.loads(update.data)
    assert data["oldState"] == {"stateValue": "INSUFFICIENT_DATA", "stateReason": "Unchecked: Initial alarm creation"}
    assert data["newState"]["stateValue"] == "ALARM"
    assert cw.repo.pending_notifications() == [
        PendingNotification(CIS.name, T0.timestamp(), "ALARM", (TOPIC,), ("ev-1",))]


def test_every_event_of_the_breaching_period_is_evidence() -> None:
    cw, _ = service()
    cw.put_alarm(replace(CIS, threshold=3.0))
    cw.put_metric_data([one(1.0, at(12, 0, 1), "ev-1"), one(1.0, at(12, 0, 29), "ev-2")])
    assert cw.alarm(CIS.name).state == "INSUFFICIENT_DATA"  # a Sum of 2 may still grow: not decided
    cw.put_metric_data([one(1.0, at(12, 0, 30), "ev-3")])
    assert cw.repo.pending_notifications()[0].event_ids == ("ev-1", "ev-2", "ev-3")
    assert state_updates(cw)[0].event_ids == ("ev-1", "ev-2", "ev-3")


def test_a_datapoint_of_another_metric_does_not_touch_the_alarm() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    other = MetricKey.of("CISBenchmark", "RootAccountUsage", {"Trail": "t"})
    cw.put_metric_data([one(5.0, T0, "ev-1", other)])
    assert cw.alarm(CIS.name).state == "INSUFFICIENT_DATA" and state_updates(cw) == []


def test_a_non_breaching_value_in_the_open_period_decides_nothing_yet() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    cw.put_metric_data([one(0.0, T0, "ev-0")])
    assert cw.alarm(CIS.name).state == "INSUFFICIENT_DATA" and state_updates(cw) == []


def test_with_actions_disabled_the_transition_is_recorded_but_no_action_is_owed() -> None:
    cw, _ = service()
    cw.put_alarm(replace(CIS, actions_enabled=False))
    cw.put_metric_data([one(1.0, T0, "ev-1")])
    assert cw.alarm(CIS.name).state == "ALARM"
    assert [h.event_ids for h in state_updates(cw)] == [("ev-1",)]
    assert cw.repo.pending_notifications() == []


def test_disabling_actions_later_stops_notifications() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    cw.set_actions_enabled([CIS.name, "no-such-alarm"], False)
    assert config_from_dict(cw.alarm(CIS.name).config).actions_enabled is False
    cw.put_metric_data([one(1.0, T0, "ev-1")])
    assert cw.alarm(CIS.name).state == "ALARM" and cw.repo.pending_notifications() == []
    cw.set_actions_enabled([CIS.name], True)
    assert config_from_dict(cw.alarm(CIS.name).config).actions_enabled is True


def test_an_alarm_without_actions_owes_nothing() -> None:
    cw, _ = service()
    cw.put_alarm(replace(CIS, alarm_actions=()))
    cw.put_metric_data([one(1.0, T0, "ev-1")])
    assert cw.alarm(CIS.name).state == "ALARM" and cw.repo.pending_notifications() == []


def test_staying_in_alarm_fires_no_second_notification() -> None:
    cw, clock = service()
    cw.put_alarm(CIS)
    cw.put_metric_data([one(1.0, T0, "ev-1")])
    clock.advance(timedelta(seconds=20))
    cw.put_metric_data([one(1.0, T0 + timedelta(seconds=20), "ev-2")])
    assert cw.tick() == 0
    assert cw.tick(at(12, 5, 30)) == 0  # the closed period still breaches
    assert len(state_updates(cw)) == 1
    assert [n.event_ids for n in cw.repo.pending_notifications()] == [("ev-1",)]


# --- evaluation on tick: TreatMissingData once the breach has aged out ------------------------------

# N = 1 evaluates a range of 3 periods: the 12:00 breach is used until 12:15 has closed (12:20:30).
@pytest.mark.parametrize(("mode", "later", "owed"), [
    pytest.param("missing", "INSUFFICIENT_DATA", UNKNOWN_TOPIC, id="missing-goes-insufficient-data"),
    pytest.param("notBreaching", "OK", OK_TOPIC, id="not-breaching-goes-ok"),
    pytest.param("breaching", "ALARM", None, id="breaching-stays-in-alarm"),
    pytest.param("ignore", "ALARM", None, id="ignore-keeps-the-state"),
])
def test_tick_after_the_breach_ages_out(mode: str, later: str, owed: str | None) -> None:
    cw, clock = service()
    cw.put_alarm(replace(CIS, treat_missing_data=mode, ok_actions=(OK_TOPIC,),
                         insufficient_data_actions=(UNKNOWN_TOPIC,)))
    cw.put_metric_data([one(1.0, T0, "ev-1")])
    assert cw.alarm(CIS.name).state == "ALARM"
    assert cw.tick(at(12, 15, 30)) == 0 and cw.alarm(CIS.name).state == "ALARM"
    clock.set(at(12, 20, 30))
    assert cw.tick() == (1 if later != "ALARM" else 0)
    alarm = cw.alarm(CIS.name)
    assert alarm.state == later
    assert alarm.state_updated == (at(12, 20, 30) if later != "ALARM" else T0).timestamp()
    notifications = cw.repo.pending_notifications()
    assert notifications[0].new_state == "ALARM"
    expected = [] if owed is None else [PendingNotification(CIS.name, at(12, 20, 30).timestamp(), later, (owed,), ())]
    assert notifications[1:] == expected
    assert [h.summary for h in state_updates(cw)][1:] == (
        [] if owed is None else [f"Alarm updated from ALARM to {later}"])


def test_tick_counts_the_alarms_that_changed() -> None:
    cw, _ = service()
    cw.put_alarm(replace(CIS, name="a", treat_missing_data="notBreaching"))
    cw.put_alarm(replace(CIS, name="b", treat_missing_data="breaching"))
    cw.put_alarm(replace(CIS, name="c"))
    assert cw.tick() == 2
    assert [(a.name, a.state) for a in cw.alarms()] == [("a", "OK"), ("b", "ALARM"), ("c", "INSUFFICIENT_DATA")]
    assert cw.tick() == 0


# --- SetAlarmState ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("state", "reason_data", "code"), [
    pytest.param("BROKEN", None, "InvalidParameterValue", id="unknown-state"),
    pytest.param("alarm", None, "InvalidParameterValue", id="state-is-case-sensitive"),
    pytest.param("ALARM", "{not json", "InvalidFormat", id="reason-data-not-json"),
    pytest.param("ALARM", "", "InvalidFormat", id="reason-data-empty"),
])
def test_set_state_refuses_bad_input_and_changes_nothing(state: str, reason_data: str | None, code: str) -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    with pytest.raises(MetricError) as raised:
        cw.set_state(CIS.name, state, "testing", reason_data)
    assert raised.value.code == code
    assert cw.alarm(CIS.name).state == "INSUFFICIENT_DATA"
    assert state_updates(cw) == [] and cw.repo.pending_notifications() == []


def test_set_state_of_an_unknown_alarm_is_not_found() -> None:
    cw, _ = service()
    with pytest.raises(MetricError) as raised:
        cw.set_state("nope", "ALARM", "testing", None)
    assert (raised.value.code, raised.value.status) == ("ResourceNotFound", 404)


def test_set_state_runs_the_actions_and_lasts_until_the_next_evaluation() -> None:
    cw, clock = service()
    cw.put_alarm(CIS)
    clock.advance(timedelta(seconds=3))
    cw.set_state(CIS.name, "ALARM", "testing the pager", '{"why": "drill"}')
    alarm = cw.alarm(CIS.name)
    assert (alarm.state, alarm.reason, alarm.reason_data) == ("ALARM", "testing the pager", '{"why": "drill"}')
    [update] = state_updates(cw)
    data = orjson.loads(update.data)
    assert data["newState"] == {"stateValue": "ALARM", "stateReason": "testing the pager",
                                "stateReasonData": {"why": "drill"}}
    assert data["oldState"]["stateValue"] == "INSUFFICIENT_DATA"
    assert cw.repo.pending_notifications() == [
        PendingNotification(CIS.name, T0.timestamp() + 3, "ALARM", (TOPIC,), ())]
    assert cw.tick() == 1  # no data: back to INSUFFICIENT_DATA
    assert cw.alarm(CIS.name).state == "INSUFFICIENT_DATA"


def test_set_state_to_the_current_state_records_nothing() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    cw.set_state(CIS.name, "INSUFFICIENT_DATA", "again", None)
    assert cw.alarm(CIS.name).reason == "Unchecked: Initial alarm creation"
    assert state_updates(cw) == []


# --- deleting --------------------------------------------------------------------------------------

def test_deleting_an_unknown_name_deletes_nothing() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    with pytest.raises(MetricError) as raised:
        cw.delete_alarms([CIS.name, "nope", "also-nope"])
    assert (raised.value.code, raised.value.status) == ("ResourceNotFound", 404)
    assert "nope, also-nope" in str(raised.value)
    assert [a.name for a in cw.alarms()] == [CIS.name]
    assert [h.summary for h in cw.history(None)] == ['Alarm "root-usage" created']


def test_deleting_removes_the_alarm_and_keeps_its_history() -> None:
    cw, _ = service()
    cw.put_alarm(CIS)
    cw.put_alarm(replace(CIS, name="other"))
    cw.delete_alarms([CIS.name])
    assert [a.name for a in cw.alarms()] == ["other"]
    with pytest.raises(MetricError):
        cw.alarm(CIS.name)
    assert [h.summary for h in cw.history(CIS.name)] == ['Alarm "root-usage" created', 'Alarm "root-usage" deleted']


# --- statistics and ListMetrics ---------------------------------------------------------------------

ALL = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"]
TRAIL = MetricKey.of("CISBenchmark", "RootAccountUsage", {"Trail": "main"})


def _published(cw: CloudWatch) -> None:
    cw.put_metric_data([one(2.0, at(12, 0, 5), "ev-a"), one(4.0, at(12, 0, 15), "ev-b"),
                        one(1.0, at(12, 4, 59)), one(10.0, at(12, 5, 0), "ev-c"),
                        one(100.0, at(12, 1), "ev-x", TRAIL)])


@pytest.mark.parametrize(("start", "expected"), [
    pytest.param(at(12, 0), [(at(12, 0), 3, 7.0, 1.0, 4.0, ["ev-a", "ev-b"]), (at(12, 5), 1, 10.0, 10.0, 10.0, ["ev-c"])],
                 id="aligned-start"),
    pytest.param(at(12, 3), [(at(12, 0), 3, 7.0, 1.0, 4.0, ["ev-a", "ev-b"]), (at(12, 5), 1, 10.0, 10.0, 10.0, ["ev-c"])],
                 id="start-inside-a-period-reports-that-whole-period"),
    pytest.param(at(12, 5), [(at(12, 5), 1, 10.0, 10.0, 10.0, ["ev-c"])], id="later-start"),
])
def test_statistics_by_period(start: datetime, expected: list[tuple[Any, ...]]) -> None:
    cw, _ = service()
    _published(cw)
    got = cw.statistics(METRIC, start, at(12, 10), 300, ALL)
    assert [(p["Timestamp"], p["SampleCount"], p["Sum"], p["Minimum"], p["Maximum"], p["EventIds"])
            for p in got] == expected
    assert [p["Average"] for p in got] == [s / n for _, n, s, *_ in expected]


def test_statistics_need_end_after_start() -> None:
    cw, _ = service()
    with pytest.raises(MetricError) as raised:
        cw.statistics(METRIC, at(12, 5), at(12, 5), 300, ["Sum"])
    assert raised.value.code == "InvalidParameterValue"


def test_statistics_refuse_an_invalid_period() -> None:
    cw, _ = service()
    for period in (0, -60, 45):
        with pytest.raises(MetricError):
            cw.statistics(METRIC, at(12, 0), at(12, 10), period, ["Sum"])


A = MetricKey.of("CISBenchmark", "RootAccountUsage")
B = MetricKey.of("CISBenchmark", "UnauthorizedApiCalls", {"Trail": "t1"})
C = MetricKey.of("Other", "UnauthorizedApiCalls", {"Trail": "t2", "Region": "x"})


@pytest.mark.parametrize(("namespace", "name", "dimensions", "expected"), [
    pytest.param(None, None, [], [A, B, C], id="no-filter-sorted"),
    pytest.param("CISBenchmark", None, [], [A, B], id="namespace"),
    pytest.param(None, "UnauthorizedApiCalls", [], [B, C], id="name"),
    pytest.param("Other", "UnauthorizedApiCalls", [], [C], id="namespace-and-name"),
    pytest.param(None, None, [("Trail", None)], [B, C], id="dimension-without-value-matches-any-value"),
    pytest.param(None, None, [("Trail", "t2")], [C], id="dimension-with-value"),
    pytest.param(None, None, [("Trail", "T2")], [], id="dimension-value-is-case-sensitive"),
    pytest.param(None, None, [("Trail", None), ("Region", None)], [C], id="every-dimension-filter-applies"),
    pytest.param(None, None, [("Missing", None)], [], id="absent-dimension"),
    pytest.param("cisbenchmark", None, [], [], id="namespace-is-case-sensitive"),
])
def test_list_metrics_filters(namespace: str | None, name: str | None,
                              dimensions: list[tuple[str, str | None]], expected: list[MetricKey]) -> None:
    cw, _ = service()
    cw.put_metric_data([one(1.0, T0, None, C), one(1.0, T0, None, A), one(1.0, T0, None, B), one(2.0, T0, None, A)])
    assert cw.list_metrics(namespace, name, dimensions) == expected


# --- races: evaluation against other evaluations and other writers -----------------------------------

class StallingRepository(MemoryCloudWatchRepository):
    """Calls `stall` whenever an evaluation reads the metric's rows (after it read the alarm)."""

    def __init__(self, stall: Callable[[], None]) -> None:
        super().__init__()
        self.stall = stall

    def rows(self, metric: MetricKey | None = None, since: int | None = None) -> list[MetricRow]:
        self.stall()
        return super().rows(metric, since)


def _run(*targets: Callable[[], None]) -> None:
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as e:
                errors.append(e)
        return run
    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors


def test_two_writers_do_not_record_the_same_transition_twice() -> None:
    # Both evaluations are held at a barrier after reading the alarm: were they not serialised,
    # both would see INSUFFICIENT_DATA and record INSUFFICIENT_DATA -> ALARM. Serialised, the
    # first waits out the barrier alone and the second reads the ALARM the first wrote.
    barrier = threading.Barrier(2, timeout=0.5)

    def stall() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
    cw, _ = service(StallingRepository(stall))
    cw.put_alarm(CIS)
    _run(lambda: cw.put_metric_data([one(1.0, T0, "ev-1")]),
         lambda: cw.put_metric_data([one(1.0, T0, "ev-2")]))
    assert cw.alarm(CIS.name).state == "ALARM"
    assert len(state_updates(cw)) == 1
    assert len(cw.repo.pending_notifications()) == 1


def _while_evaluating(write: Callable[[CloudWatch], None]) -> CloudWatch:
    """Run `write` while an evaluation that will move the alarm to ALARM has read it."""
    reading, written = threading.Event(), threading.Event()

    def stall() -> None:
        reading.set()
        written.wait(timeout=0.5)
    cw, _ = service(StallingRepository(stall))
    cw.put_alarm(CIS)

    def other_writer() -> None:
        assert reading.wait(timeout=10)
        write(cw)
        written.set()
    _run(lambda: cw.put_metric_data([one(1.0, T0, "ev-1")]), other_writer)
    return cw


def test_an_evaluation_never_brings_back_an_alarm_deleted_meanwhile() -> None:
    cw = _while_evaluating(lambda cw: cw.delete_alarms([CIS.name]))
    assert cw.alarms() == []


def test_an_evaluation_never_undoes_an_update_made_meanwhile() -> None:
    cw = _while_evaluating(lambda cw: cw.put_alarm(replace(CIS, threshold=7.0)))
    assert config_from_dict(cw.alarm(CIS.name).config).threshold == 7.0


def test_an_evaluation_never_undoes_disabling_actions_meanwhile() -> None:
    cw = _while_evaluating(lambda cw: cw.set_actions_enabled([CIS.name], False))
    assert config_from_dict(cw.alarm(CIS.name).config).actions_enabled is False
