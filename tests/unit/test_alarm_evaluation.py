"""Alarm evaluation against AWS's truth tables, reason-text vectors, the open-period rule and transitions."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trailkeeper.monitoring.alarms import (
    AlarmConfig,
    AlarmConfigError,
    AlarmState,
    evaluate,
    evaluation_window,
    java_double,
    transition,
)
from trailkeeper.monitoring.metrics import MetricAggregator, MetricKey, epoch_seconds, from_epoch

OK, ALARM, INSUFFICIENT = AlarmState.OK, AlarmState.ALARM, AlarmState.INSUFFICIENT_DATA
KEEP = "keep"
METRIC = MetricKey.of("CloudTrailMetrics", "RootAccountUsageCount")
# 12:00:30 lies in the open period [12:00, 12:05); the range of 5 ends with 11:55.
NOW = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
BASE = AlarmConfig(
    name="root-usage",
    metric=METRIC,
    period=300,
    evaluation_periods=3,
    threshold=1.0,
    comparison_operator="GreaterThanOrEqualToThreshold",
    statistic="Average",
    alarm_actions=("arn:aws:sns:eu-west-1:123456789012:alarm",),
    ok_actions=("arn:aws:sns:eu-west-1:123456789012:ok",),
    insufficient_data_actions=("arn:aws:sns:eu-west-1:123456789012:unknown",),
)


def config(m: int | None = None, missing: str = "missing", **changes: object) -> AlarmConfig:
    return replace(BASE, datapoints_to_alarm=m, treat_missing_data=missing, **changes)  # type: ignore[arg-type]


def row(pattern: str, now: datetime = NOW, period: int = 300) -> dict[datetime, float]:
    """'0-X-X' → datapoints for the five periods before the open one, oldest first:
    0 within the threshold, X breaching, - missing."""
    open_start = from_epoch(epoch_seconds(now) // period * period)
    starts = [
        open_start - timedelta(seconds=period * (len(pattern) - i)) for i in range(len(pattern))
    ]
    values = {"0": 0.0, "X": 5.0}
    return {at: values[c] for at, c in zip(starts, pattern, strict=True) if c != "-"}


# --- the truth tables of spec §3.2 (AWS's own tables), every row by every TreatMissingData ---------

M3N3 = [
    ("0-X-X", OK, OK, OK, OK),
    ("0----", OK, OK, OK, OK),
    ("-----", INSUFFICIENT, KEEP, ALARM, OK),
    ("0XX-X", ALARM, ALARM, ALARM, ALARM),
    ("----X", INSUFFICIENT, KEEP, ALARM, OK),
    ("X----", ALARM, KEEP, ALARM, OK),
]
M2N3 = [
    ("0-X-X", ALARM, ALARM, ALARM, ALARM),
    ("00X0X", ALARM, ALARM, ALARM, ALARM),
    ("0-X--", OK, OK, ALARM, OK),
    ("----0", OK, OK, ALARM, OK),
    ("----X", INSUFFICIENT, KEEP, ALARM, OK),
]
MODES = ("missing", "ignore", "breaching", "notBreaching")


def _table_cases() -> list[Any]:
    cases = []
    for label, m, table in (("M3N3", 3, M3N3), ("M2N3", 2, M2N3)):
        for pattern, *expected in table:
            for mode, want in zip(MODES, expected, strict=True):
                name = f"{label} {pattern} {mode}→{'keep state' if want == KEEP else want}"
                cases.append(pytest.param(m, pattern, mode, want, id=name))
    return cases


@pytest.mark.parametrize(("m", "pattern", "mode", "want"), _table_cases())
def test_truth_tables(m: int, pattern: str, mode: str, want: object) -> None:
    # INSUFFICIENT_DATA as the current state: a kept state must then stay INSUFFICIENT_DATA.
    result = evaluate(config(m, mode), row(pattern), NOW, INSUFFICIENT)
    assert result.new_state == (INSUFFICIENT if want == KEEP else want)
    if mode in {"breaching", "notBreaching"} or pattern.count("-") <= 2:
        # AWS: "the number of datapoints evaluated is equal to the value of Evaluation Periods".
        assert len(result.evaluated) == 3


@pytest.mark.parametrize("current", [OK, ALARM, INSUFFICIENT])
@pytest.mark.parametrize(("m", "pattern"), [(3, "-----"), (3, "----X"), (3, "X----"), (2, "----X")])
def test_ignore_keeps_each_current_state(m: int, pattern: str, current: AlarmState) -> None:
    result = evaluate(config(m, "ignore"), row(pattern), NOW, current)
    assert result.new_state == current
    assert not result.changed


@pytest.mark.parametrize(
    ("m", "pattern", "want"),
    [
        pytest.param(3, "X----", ALARM, id="AWS table row: oldest breaching 5 periods old"),
        pytest.param(3, "--X--", ALARM, id="AWS prose: - - X - - alarms under missing"),
        pytest.param(3, "---X-", INSUFFICIENT, id="breach only 2 periods old, M=3: too young"),
        pytest.param(3, "--XX-", ALARM, id="two breaches, the oldest 3 periods old"),
        pytest.param(2, "0-X--", OK, id="a non-breaching datapoint in range: no premature alarm"),
    ],
)
def test_premature_alarm_rule(m: int, pattern: str, want: AlarmState) -> None:
    result = evaluate(config(m, "missing"), row(pattern), NOW, OK)
    assert result.new_state == want
    if want == ALARM:
        assert result.reason.startswith("Threshold Crossed: ")


def test_enough_real_datapoints_ignore_treat_missing_data() -> None:
    # 4 real datapoints ≥ N: the most recent 3 (X X X) decide, even with notBreaching.
    result = evaluate(config(3, "notBreaching"), row("0XX-X"), NOW, OK)
    assert result.new_state == ALARM
    assert [p.value for p in result.evaluated] == [5.0, 5.0, 5.0]


def test_datapoints_older_than_the_range_do_not_count() -> None:
    old = row("X")  # the period just before the open one...
    shifted = {at - timedelta(minutes=25): v for at, v in old.items()}  # ...moved 5 periods back
    result = evaluate(config(1, "missing", evaluation_periods=1), shifted, NOW, OK)
    assert result.new_state == INSUFFICIENT


@pytest.mark.parametrize(("n", "periods"), [(1, 3), (2, 4), (3, 5), (6, 8), (10, 13)])
def test_evaluation_range(n: int, periods: int) -> None:
    assert config(None, evaluation_periods=n).evaluation_range == periods
    window = evaluation_window(config(None, evaluation_periods=n), NOW, open_period_counts=False)
    assert len(window) == periods
    assert window[-1] == datetime(2026, 3, 1, 11, 55, tzinfo=UTC)


def test_misaligned_datapoint_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="does not start a 300-second period"):
        evaluate(BASE, {datetime(2026, 3, 1, 11, 56, tzinfo=UTC): 1.0}, NOW, OK)


# --- validation: each refusal its own case -------------------------------------------------------

REFUSALS = [
    ("period 45", {"period": 45}, "Period must be 10, 20, 30 or a multiple of 60"),
    ("period 0", {"period": 0}, "Period must be"),
    ("period 90", {"period": 90}, "Period must be"),
    ("N 0", {"evaluation_periods": 0}, "EvaluationPeriods must be at least 1"),
    ("M 0", {"datapoints_to_alarm": 0}, "DatapointsToAlarm must be at least 1"),
    (
        "M > N",
        {"datapoints_to_alarm": 4},
        "DatapointsToAlarm must be less than or equal to EvaluationPeriods",
    ),
    (
        "60 s x 1441 > 1 day",
        {"period": 60, "evaluation_periods": 1441},
        "must not exceed 86400 seconds",
    ),
    (
        "1800 s x 49 > 1 day",
        {"period": 1800, "evaluation_periods": 49},
        "must not exceed 86400 seconds",
    ),
    (
        "3600 s x 169 > 7 days",
        {"period": 3600, "evaluation_periods": 169},
        "must not exceed 604800 seconds",
    ),
    (
        "unknown operator",
        {"comparison_operator": "GreaterThan"},
        "ComparisonOperator 'GreaterThan' is unknown",
    ),
    (
        "anomaly operator",
        {"comparison_operator": "LessThanLowerThreshold"},
        "anomaly-detection band",
    ),
    ("percentile statistic", {"statistic": "p90"}, "Statistic 'p90' is not supported"),
    ("unknown statistic", {"statistic": "Avg"}, "Statistic 'Avg'"),
    (
        "TreatMissingData case",
        {"treat_missing_data": "Missing"},
        "TreatMissingData 'Missing' is unknown",
    ),
    ("non-ASCII name", {"name": "alarme-été"}, "AlarmName must be 1 to 255 ASCII characters"),
    ("empty name", {"name": ""}, "AlarmName"),
    ("NaN threshold", {"threshold": float("nan")}, "Threshold must be a finite number"),
    (
        "six alarm actions",
        {"alarm_actions": tuple(f"arn:{i}" for i in range(6))},
        "AlarmActions has 6 actions",
    ),
    ("long description", {"description": "d" * 1025}, "AlarmDescription"),
]


@pytest.mark.parametrize(("changes", "message"), [pytest.param(c, m, id=i) for i, c, m in REFUSALS])
def test_validation_refuses(changes: dict[str, object], message: str) -> None:
    bad = replace(BASE, **changes)  # type: ignore[arg-type]
    with pytest.raises(AlarmConfigError, match=message) as caught:
        bad.validate()
    assert caught.value.code == "ValidationError"
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"period": 10}, id="period 10"),
        pytest.param({"period": 20}, id="period 20"),
        pytest.param({"period": 30}, id="period 30"),
        pytest.param({"period": 60, "evaluation_periods": 1440}, id="60 s x 1440 = 1 day"),
        pytest.param({"period": 3600, "evaluation_periods": 168}, id="3600 s x 168 = 7 days"),
        pytest.param({"datapoints_to_alarm": 3}, id="M = N"),
    ],
)
def test_validation_accepts_limits(changes: dict[str, object]) -> None:
    ok = replace(BASE, **changes)  # type: ignore[arg-type]
    assert ok.validate() is ok


def test_validation_reports_every_problem() -> None:
    with pytest.raises(AlarmConfigError) as caught:
        replace(BASE, period=45, statistic="p99", treat_missing_data="never").validate()
    assert len(caught.value.problems) == 3
    assert (
        "Period" in str(caught.value)
        and "p99" in str(caught.value)
        and "never" in str(caught.value)
    )


def test_evaluate_refuses_an_invalid_config() -> None:
    with pytest.raises(AlarmConfigError):
        evaluate(replace(BASE, comparison_operator="Bogus"), {}, NOW, OK)


# --- reason texts: known-answer vectors (AWS texts where AWS publishes them) -------------------


def _single(
    when: str, value: float, now: str, threshold: float, op: str, period: int, state: AlarmState
) -> str:
    cfg = replace(
        BASE, period=period, evaluation_periods=1, threshold=threshold, comparison_operator=op
    )
    at = datetime.fromisoformat(when).replace(tzinfo=UTC)
    return evaluate(cfg, {at: value}, datetime.fromisoformat(now).replace(tzinfo=UTC), state).reason


def test_reason_spec_example() -> None:
    reason = _single(
        "2022-08-28T15:34:00",
        0.0,
        "2022-08-28T15:35:30",
        0.0,
        "GreaterThanOrEqualToThreshold",
        60,
        OK,
    )
    assert reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (28/08/22 15:34:00)] was greater than or equal "
        "to the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )


def test_reason_alarm_to_ok_from_aws_notification() -> None:
    reason = _single(
        "2023-03-08T00:45:00",
        0.0,
        "2023-03-08T00:50:30",
        1.0,
        "GreaterThanOrEqualToThreshold",
        300,
        INSUFFICIENT,
    )
    assert reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [0.0 (08/03/23 00:45:00)] was not greater than or "
        "equal to the threshold (1.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )


def test_reason_less_than_or_equal_from_aws_notification() -> None:
    reason = _single(
        "2018-08-15T21:15:00",
        6.046241709654764,
        "2018-08-15T21:20:02",
        70.0,
        "LessThanOrEqualToThreshold",
        300,
        INSUFFICIENT,
    )
    assert reason == (
        "Threshold Crossed: 1 out of the last 1 datapoints [6.046241709654764 (15/08/18 21:15:00)] was less than "
        "or equal to the threshold (70.0) (minimum 1 datapoint for OK -> ALARM transition)."
    )


def test_reason_m_of_n_lists_breaching_datapoints_newest_first() -> None:
    result = evaluate(config(2), row("00X0X"), NOW, OK)
    assert result.reason == (
        "Threshold Crossed: 2 out of the last 3 datapoints [5.0 (01/03/26 11:55:00), 5.0 (01/03/26 11:45:00)] "
        "were greater than or equal to the threshold (1.0) (minimum 2 datapoints for OK -> ALARM transition)."
    )


@pytest.mark.parametrize(
    ("n", "mode", "pattern", "text"),
    [
        (1, "missing", "-----", "Insufficient Data: 1 datapoint was unknown."),
        (5, "missing", "-------", "Insufficient Data: 5 datapoints were unknown."),
        (
            3,
            "notBreaching",
            "-----",
            "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [NonBreaching].",
        ),
        (
            2,
            "breaching",
            "-----",
            "Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints were treated as [Breaching].",
        ),
        (
            3,
            "breaching",
            "----0",
            "Threshold Crossed: 1 datapoint was received for 3 periods and 2 missing datapoints were treated as [Breaching].",
        ),
    ],
    ids=[
        "insufficient N=1",
        "insufficient N=5",
        "all missing notBreaching",
        "all missing breaching",
        "one real, two filled",
    ],
)
def test_reason_missing_data(n: int, mode: str, pattern: str, text: str) -> None:
    assert evaluate(config(None, mode, evaluation_periods=n), row(pattern), NOW, OK).reason == text


def test_reason_data_matches_aws_shape() -> None:
    # An AWS StateReasonData (DescribeAlarms), minus the sampleCount trailkeeper does not pass in.
    cfg = replace(
        BASE,
        period=60,
        evaluation_periods=1,
        threshold=0.0,
        comparison_operator="GreaterThanThreshold",
        statistic="Sum",
    )
    now = datetime(2025, 5, 15, 15, 31, 44, 984000, tzinfo=UTC)
    result = evaluate(cfg, {datetime(2025, 5, 15, 15, 29, tzinfo=UTC): 1.0}, now, OK)
    assert result.reason_data == (
        '{"version":"1.0","queryDate":"2025-05-15T15:31:44.984+0000","startDate":"2025-05-15T15:29:00.000+0000",'
        '"statistic":"Sum","period":60,"recentDatapoints":[1.0],"threshold":0.0,'
        '"evaluatedDatapoints":[{"timestamp":"2025-05-15T15:29:00.000+0000","value":1.0}]}'
    )


def test_reason_data_without_data_has_timestamps_only() -> None:
    data = json.loads(evaluate(config(None, evaluation_periods=2), {}, NOW, OK).reason_data)
    assert "startDate" not in data and data["recentDatapoints"] == []
    assert data["evaluatedDatapoints"] == [
        {"timestamp": "2026-03-01T11:55:00.000+0000"},
        {"timestamp": "2026-03-01T11:50:00.000+0000"},
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0.0"),
        (150.0, "150.0"),
        (0.001, "0.001"),
        (1e-4, "1.0E-4"),
        (9999999.0, "9999999.0"),
        (1e7, "1.0E7"),
        (12345678.0, "1.2345678E7"),
        (-2.5e-5, "-2.5E-5"),
        (7.9053535353535365, "7.9053535353535365"),
    ],
)
def test_java_double(value: float, text: str) -> None:
    assert java_double(value) == text


# --- the open period ---------------------------------------------------------------------------

SUM_ALARM = replace(BASE, evaluation_periods=1, statistic="Sum", treat_missing_data="notBreaching")


def test_event_in_open_period_breaches_now() -> None:
    metrics = MetricAggregator()
    event_at = datetime(2026, 3, 1, 12, 0, 0, 400000, tzinfo=UTC)
    metrics.add(METRIC, event_at, 1.0, event_id="ev-1")
    now = event_at + timedelta(seconds=0.6)  # under a second later, 299 s before the period closes
    series = metrics.series(
        METRIC, now - timedelta(hours=1), now + timedelta(seconds=300), 300, "Sum"
    )
    result = evaluate(SUM_ALARM, series, now, OK)
    assert result.new_state == ALARM
    assert result.breaching_periods == (datetime(2026, 3, 1, 12, 0, tzinfo=UTC),)
    evidence = metrics.aggregate(
        METRIC, result.breaching_periods[0], now + timedelta(seconds=1), 300
    )
    assert [s.event_ids for s in evidence.values()] == [("ev-1",)]


def test_open_period_without_data_is_not_missing() -> None:
    # The alarm fired in 12:00; at 12:05:01 the new period is empty: still ALARM, not a flap to OK.
    data = {datetime(2026, 3, 1, 12, 0, tzinfo=UTC): 1.0}
    result = evaluate(SUM_ALARM, data, datetime(2026, 3, 1, 12, 5, 1, tzinfo=UTC), ALARM)
    assert result.new_state == ALARM and not result.changed


@pytest.mark.parametrize(
    ("changes", "open_value"),
    [
        pytest.param({"statistic": "Average"}, 5.0, id="Average can still fall"),
        pytest.param(
            {"comparison_operator": "LessThanThreshold", "threshold": 5.0},
            1.0,
            id="Sum<5 can still rise",
        ),
        pytest.param({}, 0.0, id="not breaching yet"),
    ],
)
def test_open_period_counts_only_when_its_breach_is_final(
    changes: dict[str, object], open_value: float
) -> None:
    cfg = replace(SUM_ALARM, **changes)  # type: ignore[arg-type]
    last_complete = datetime(2026, 3, 1, 11, 55, tzinfo=UTC)
    closed_ok = 10.0 if cfg.comparison_operator.startswith("Less") else 0.0
    data = {last_complete: closed_ok, datetime(2026, 3, 1, 12, 0, tzinfo=UTC): open_value}
    result = evaluate(cfg, data, NOW, OK)
    assert result.new_state == OK
    assert [p.timestamp for p in result.evaluated] == [last_complete]


# --- transitions -------------------------------------------------------------------------------


def test_transition_fires_once_per_change() -> None:
    cfg = config(1, "notBreaching", evaluation_periods=1)
    states = OK
    fired: list[tuple[str | None, str]] = []
    for minute, value in [(0, 0.0), (5, 5.0), (10, 5.0), (15, 5.0), (20, 0.0), (25, 0.0)]:
        at = datetime(2026, 3, 1, 12, minute, tzinfo=UTC)
        result = evaluate(cfg, {at: value}, at + timedelta(seconds=330), states)
        step = transition(states, result)
        fired.extend((step.action_kind, a) for a in step.actions if step.fire)
        states = result.new_state
    assert fired == [("AlarmActions", cfg.alarm_actions[0]), ("OKActions", cfg.ok_actions[0])]


def test_repeat_evaluation_fires_nothing() -> None:
    result = evaluate(config(2), row("00X0X"), NOW, OK)
    first = transition(OK, result)
    again = transition(ALARM, evaluate(config(2), row("00X0X"), NOW + timedelta(seconds=20), ALARM))
    assert first.changed and first.fire and first.actions == BASE.alarm_actions
    assert not again.changed and not again.fire and again.history is None and again.actions == ()


def test_insufficient_data_actions() -> None:
    step = transition(OK, evaluate(BASE, {}, NOW, OK))
    assert (step.action_kind, step.actions) == (
        "InsufficientDataActions",
        BASE.insufficient_data_actions,
    )


def test_disabled_actions_still_record_history() -> None:
    result = evaluate(
        replace(BASE, actions_enabled=False, datapoints_to_alarm=2), row("00X0X"), NOW, OK
    )
    step = transition(OK, result)
    assert step.changed and not step.fire and step.actions == ()
    assert step.history is not None


def test_history_item_shape() -> None:
    result = evaluate(config(2), row("00X0X"), NOW, OK)
    step = transition(OK, result, previous_reason="Insufficient Data: 3 datapoints were unknown.")
    assert step.history is not None
    item = step.history.to_dict()
    assert item["AlarmName"] == "root-usage" and item["AlarmType"] == "MetricAlarm"
    assert item["HistoryItemType"] == "StateUpdate" and item["Timestamp"] == NOW
    assert item["HistorySummary"] == "Alarm updated from OK to ALARM"
    data = json.loads(item["HistoryData"])
    assert data["oldState"] == {
        "stateValue": "OK",
        "stateReason": "Insufficient Data: 3 datapoints were unknown.",
    }
    assert data["newState"]["stateValue"] == "ALARM"
    assert data["newState"]["stateReason"] == result.reason
    assert data["newState"]["stateReasonData"] == json.loads(result.reason_data)


def test_long_reasons_stay_within_the_api_limits() -> None:
    cfg = config(None, evaluation_periods=100, period=60)
    result = evaluate(cfg, row("X" * 100, period=60), NOW, OK)
    assert result.new_state == ALARM
    assert result.reason.count("(01/03/26") == 10 and ", ...]" in result.reason
    assert len(result.reason) <= 1023
    data = json.loads(result.reason_data)
    assert len(result.reason_data) <= 4000
    assert data["evaluatedDatapoints"][0]["timestamp"] == "2026-03-01T11:59:00.000+0000"
    assert 0 < len(data["evaluatedDatapoints"]) == len(data["recentDatapoints"]) < 100


def test_filling_uses_the_newest_missing_periods() -> None:
    # 0 - - - - with breaching: the real 0 plus the two newest missing periods, N = 3 in all.
    result = evaluate(config(3, "breaching"), row("0----"), NOW, OK)
    assert [(p.timestamp.strftime("%H:%M"), p.value, p.breaching) for p in result.evaluated] == [
        ("11:35", 0.0, False),
        ("11:50", None, True),
        ("11:55", None, True),
    ]
