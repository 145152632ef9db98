"""CloudWatch metric-alarm evaluation, pure: configuration, one evaluation, one transition.

`evaluate` turns an alarm's datapoints (period start → statistic value) into a new state with
AWS's reason texts; `transition` says whether that fires actions and what history item to keep.
Nothing here reads a clock or a store: the caller passes `now` and the datapoints (for example
from `MetricAggregator.series`) and persists what comes back. docs/alarms.md explains the rules.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from trailkeeper.monitoring.metrics import (
    STATISTICS,
    MetricError,
    MetricKey,
    epoch_seconds,
    from_epoch,
    period_problem,
)


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


# operator → (comparison, the words AWS uses for it in reason texts)
COMPARISONS: Final[dict[str, tuple[Callable[[float, float], bool], str]]] = {
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
ANOMALY_BAND_OPERATORS: Final = (
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
)
TREAT_MISSING_DATA: Final = ("missing", "ignore", "breaching", "notBreaching")
MAX_ACTIONS: Final = 5
MAX_ALARM_NAME: Final = 255
MAX_DESCRIPTION: Final = 1024
ONE_DAY: Final = 86_400
SEVEN_DAYS: Final = 604_800
REASON_DATAPOINTS: Final = (
    10  # datapoints listed in a reason text; StateReason holds 1,023 characters
)
MAX_REASON_DATA: Final = 4_000  # StateReasonData limit (botocore cloudwatch model)

# Statistic/operator pairs whose value can only move further past the threshold as the period
# fills up: a breach seen in the still-open period is then final (Sum assumes values >= 0,
# which metric-filter counts are).
_SETTLED_WHEN_BREACHING: Final = {
    ("Sum", ">"),
    ("SampleCount", ">"),
    ("Maximum", ">"),
    ("Minimum", "<"),
}


class AlarmConfigError(MetricError):
    """PutMetricAlarm would refuse this configuration; `problems` lists every reason."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        code = self.problems[0][0]
        super().__init__(code, " ".join(message for _, message in self.problems))


@dataclass(frozen=True)
class AlarmConfig:
    """A metric alarm as PutMetricAlarm defines it (the static-threshold, single-metric kind)."""

    name: str
    metric: MetricKey
    period: int
    evaluation_periods: int
    threshold: float
    comparison_operator: str
    statistic: str
    datapoints_to_alarm: int | None = None
    treat_missing_data: str = "missing"
    actions_enabled: bool = True
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    insufficient_data_actions: tuple[str, ...] = ()
    description: str | None = None

    @property
    def required_breaches(self) -> int:
        """M: DatapointsToAlarm, defaulting to EvaluationPeriods."""
        return self.datapoints_to_alarm or self.evaluation_periods

    @property
    def evaluation_range(self) -> int:
        """Periods fetched per evaluation: N + max(N // 3, 2) (5 for N = 3, as in AWS's tables)."""
        return self.evaluation_periods + max(self.evaluation_periods // 3, 2)

    def breaches(self, value: float) -> bool:
        return COMPARISONS[self.comparison_operator][0](value, self.threshold)

    def actions_for(self, state: AlarmState) -> tuple[str, ...]:
        return {
            AlarmState.ALARM: self.alarm_actions,
            AlarmState.OK: self.ok_actions,
            AlarmState.INSUFFICIENT_DATA: self.insufficient_data_actions,
        }[state]

    def problems(self) -> list[tuple[str, str]]:
        """Every (AWS error code, message) PutMetricAlarm would answer; empty when valid."""
        found = _name_problems(self) + _period_problems(self) + _choice_problems(self)
        return found + _action_problems(self)

    def validate(self) -> AlarmConfig:
        """Raise AlarmConfigError naming every invalid parameter; return self when valid."""
        found = self.problems()
        if found:
            raise AlarmConfigError(found)
        return self


def _name_problems(config: AlarmConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not 1 <= len(config.name) <= MAX_ALARM_NAME or not config.name.isascii():
        found.append(
            (
                "ValidationError",
                f"AlarmName must be 1 to {MAX_ALARM_NAME} ASCII characters (got {config.name!r}).",
            )
        )
    if config.description is not None and len(config.description) > MAX_DESCRIPTION:
        found.append(
            ("ValidationError", f"AlarmDescription must be at most {MAX_DESCRIPTION} characters.")
        )
    return found


def _period_problems(config: AlarmConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    problem = period_problem(config.period)
    if problem:
        found.append(("ValidationError", problem))
    n = config.evaluation_periods
    if n < 1:
        found.append(("ValidationError", f"EvaluationPeriods must be at least 1 (got {n})."))
    m = config.datapoints_to_alarm
    if m is not None and m < 1:
        found.append(("ValidationError", f"DatapointsToAlarm must be at least 1 (got {m})."))
    if m is not None and m > n:
        found.append(
            (
                "ValidationError",
                f"DatapointsToAlarm must be less than or equal to EvaluationPeriods (got {m} > {n}).",
            )
        )
    limit = ONE_DAY if config.period < 3600 else SEVEN_DAYS
    if not problem and n >= 1 and config.period * n > limit:
        found.append(
            (
                "ValidationError",
                f"Period * EvaluationPeriods must not exceed {limit} seconds for a {config.period}-second period "
                f"(got {config.period} * {n} = {config.period * n}); use fewer or shorter periods.",
            )
        )
    return found


def _choice_problems(config: AlarmConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if not math.isfinite(config.threshold):
        found.append(
            ("ValidationError", f"Threshold must be a finite number (got {config.threshold!r}).")
        )
    op = config.comparison_operator
    if op in ANOMALY_BAND_OPERATORS:
        found.append(
            (
                "ValidationError",
                f"ComparisonOperator {op} needs an anomaly-detection band, which trailkeeper does not support; use one of {', '.join(COMPARISONS)}.",
            )
        )
    elif op not in COMPARISONS:
        found.append(
            (
                "ValidationError",
                f"ComparisonOperator {op!r} is unknown; use one of {', '.join(COMPARISONS)}.",
            )
        )
    if config.statistic not in STATISTICS:
        found.append(
            (
                "ValidationError",
                f"Statistic {config.statistic!r} is not supported (percentiles are not kept); use one of {', '.join(STATISTICS)}.",
            )
        )
    if config.treat_missing_data not in TREAT_MISSING_DATA:
        found.append(
            (
                "ValidationError",
                f"TreatMissingData {config.treat_missing_data!r} is unknown; use one of {', '.join(TREAT_MISSING_DATA)}.",
            )
        )
    return found


def _action_problems(config: AlarmConfig) -> list[tuple[str, str]]:
    lists = {
        "AlarmActions": config.alarm_actions,
        "OKActions": config.ok_actions,
        "InsufficientDataActions": config.insufficient_data_actions,
    }
    return [
        ("ValidationError", f"{name} has {len(arns)} actions; at most {MAX_ACTIONS} are allowed.")
        for name, arns in lists.items()
        if len(arns) > MAX_ACTIONS
    ]


@dataclass(frozen=True)
class EvaluatedDatapoint:
    """One of the datapoints an evaluation used. `value` is None for a missing period; `breaching`
    is then the TreatMissingData verdict, or None when the period was only counted as unknown."""

    timestamp: datetime
    value: float | None
    breaching: bool | None


@dataclass(frozen=True)
class Evaluation:
    config: AlarmConfig
    previous_state: AlarmState
    new_state: AlarmState
    reason: str
    reason_data: str
    evaluated: tuple[EvaluatedDatapoint, ...]
    query_date: datetime

    @property
    def changed(self) -> bool:
        return self.new_state != self.previous_state

    @property
    def breaching_periods(self) -> tuple[datetime, ...]:
        """Starts of the real periods that breached: where to look up the contributing event IDs."""
        return tuple(p.timestamp for p in self.evaluated if p.value is not None and p.breaching)


@dataclass(frozen=True)
class _Outcome:
    state: AlarmState | None  # None: keep the current state (TreatMissingData = ignore)
    reason: str
    evaluated: list[EvaluatedDatapoint]


def evaluate(
    config: AlarmConfig,
    datapoints: Mapping[datetime, float],
    now: datetime,
    current_state: AlarmState,
) -> Evaluation:
    """Evaluate the alarm at `now`.

    `datapoints` maps period starts (aligned to the epoch, timezone-aware) to the alarm's statistic.
    The evaluation range is the R = N + max(N // 3, 2) consecutive periods that end with:
      * the still-open period [floor(now / Period) * Period, +Period) when it has a datapoint that
        breaches and cannot un-breach as the period fills (Sum, SampleCount or Maximum against a
        Greater… operator; Minimum against a Less… operator), so a Sum ≥ 1 alarm fires within a
        second of the matching event;
      * otherwise the last complete period, the one before the open one (an open period that has
        no data yet, or whose partial value may still change, is not counted as missing).
    Datapoints outside the range, including ones stamped after the open period, are not used.
    """
    window = _window(config.validate(), datapoints, now)
    outcome = _decide(config, window)
    state = AlarmState(current_state)
    new_state = outcome.state if outcome.state is not None else state
    evaluated = tuple(outcome.evaluated)
    reason_data = _reason_data(config, evaluated, now)
    return Evaluation(config, state, new_state, outcome.reason, reason_data, evaluated, now)


def evaluation_window(
    config: AlarmConfig, now: datetime, open_period_counts: bool
) -> list[datetime]:
    """Starts of the R periods in range, oldest first (see `evaluate`)."""
    period = config.period
    open_start = epoch_seconds(now) // period * period
    last = open_start if open_period_counts else open_start - period
    count = config.evaluation_range
    return [from_epoch(last - (count - 1 - i) * period) for i in range(count)]


def _window(
    config: AlarmConfig, datapoints: Mapping[datetime, float], now: datetime
) -> list[tuple[datetime, float | None]]:
    values = {_aligned(config.period, at): value for at, value in datapoints.items()}
    open_start = epoch_seconds(now) // config.period * config.period
    open_value = values.get(open_start)
    counts = open_value is not None and _settled_breach(config, open_value)
    return [(at, values.get(epoch_seconds(at))) for at in evaluation_window(config, now, counts)]


def _aligned(period: int, at: datetime) -> int:
    seconds = epoch_seconds(at)
    if seconds % period:
        raise ValueError(f"datapoint {at.isoformat()} does not start a {period}-second period")
    return seconds


def _settled_breach(config: AlarmConfig, value: float) -> bool:
    direction = ">" if config.comparison_operator.startswith("Greater") else "<"
    return (config.statistic, direction) in _SETTLED_WHEN_BREACHING and config.breaches(value)


def _decide(config: AlarmConfig, window: list[tuple[datetime, float | None]]) -> _Outcome:
    real = [EvaluatedDatapoint(at, v, config.breaches(v)) for at, v in window if v is not None]
    n = config.evaluation_periods
    if len(real) >= n:
        # Enough real datapoints: the most recent N decide and TreatMissingData plays no part.
        return _threshold_outcome(config, real[-n:], full=True)
    if config.treat_missing_data in ("breaching", "notBreaching"):
        return _filled_outcome(config, window, real)
    return _unfilled_outcome(config, window, real)


def _threshold_outcome(
    config: AlarmConfig, points: list[EvaluatedDatapoint], full: bool
) -> _Outcome:
    breaching = sum(1 for p in points if p.breaching)
    state = AlarmState.ALARM if breaching >= config.required_breaches else AlarmState.OK
    return _Outcome(state, threshold_reason(config, points, state, full), points)


def _filled_outcome(
    config: AlarmConfig, window: list[tuple[datetime, float | None]], real: list[EvaluatedDatapoint]
) -> _Outcome:
    """breaching / notBreaching: every real datapoint plus the fewest missing ones (the newest)
    treated as the verdict, N in all."""
    verdict = config.treat_missing_data == "breaching"
    missing = [at for at, v in window if v is None]
    needed = config.evaluation_periods - len(real)
    fills = [EvaluatedDatapoint(at, None, verdict) for at in missing[len(missing) - needed :]]
    points = sorted(real + fills, key=lambda p: p.timestamp)
    breaching = sum(1 for p in points if p.breaching)
    state = AlarmState.ALARM if breaching >= config.required_breaches else AlarmState.OK
    return _Outcome(state, filled_reason(config, len(real), needed), points)


def _unfilled_outcome(
    config: AlarmConfig, window: list[tuple[datetime, float | None]], real: list[EvaluatedDatapoint]
) -> _Outcome:
    """missing / ignore with fewer than N real datapoints: missing ones are not considered."""
    keep = config.treat_missing_data == "ignore"
    breaching = sum(1 for p in real if p.breaching)
    if real and (breaching >= config.required_breaches or breaching < len(real)):
        # Decided by the real datapoints alone: enough breaches, or one within the threshold.
        return _threshold_outcome(config, real, full=False)
    if real and _premature_alarm(config, window):
        state = None if keep else AlarmState.ALARM
        return _Outcome(state, premature_reason(config, real), real)
    unknown = config.evaluation_periods - len(real)
    missing = [EvaluatedDatapoint(at, None, None) for at, v in window if v is None][-unknown:]
    points = sorted(real + missing, key=lambda p: p.timestamp)
    if keep:
        return _Outcome(None, ignored_reason(config, unknown), points)
    return _Outcome(AlarmState.INSUFFICIENT_DATA, insufficient_reason(unknown), points)


def _premature_alarm(config: AlarmConfig, window: list[tuple[datetime, float | None]]) -> bool:
    """AWS's "premature alarm" rule, read so that it agrees with AWS's own tables. The caller has
    checked that every real datapoint in range breaches; the rule then asks that the oldest one be
    at least M periods old (the newest period in range being 1 period old)."""
    ages = [len(window) - i for i, (_, v) in enumerate(window) if v is not None]
    return bool(ages) and ages[0] >= config.required_breaches


# --- reason texts -------------------------------------------------------------------------


def threshold_reason(
    config: AlarmConfig, points: Sequence[EvaluatedDatapoint], state: AlarmState, full: bool
) -> str:
    """The AWS text for a decision made by real datapoints, e.g. "Threshold Crossed: 1 out of the
    last 1 datapoints [0.0 (28/08/22 15:34:00)] was greater than or equal to the threshold (0.0)
    (minimum 1 datapoint for OK -> ALARM transition)."

    Lists the datapoints that voted for the new state, newest first (at most REASON_DATAPOINTS).
    The "minimum" clause is written only when N real datapoints were evaluated."""
    alarm = state is AlarmState.ALARM
    voters = [p for p in reversed(points) if bool(p.breaching) == alarm]
    words = COMPARISONS[config.comparison_operator][1]
    listed = ", ".join(
        f"{java_double(p.value or 0.0)} ({reason_time(p.timestamp)})"
        for p in voters[:REASON_DATAPOINTS]
    )
    more = ", ..." if len(voters) > REASON_DATAPOINTS else ""
    text = (
        f"Threshold Crossed: {len(voters)} out of the last {len(points)} datapoints [{listed}{more}] "
        f"{_was(len(voters))} {'' if alarm else 'not '}{words} the threshold ({java_double(config.threshold)})"
    )
    if not full:
        return text + "."
    minimum = (
        config.required_breaches
        if alarm
        else config.evaluation_periods - config.required_breaches + 1
    )
    arrow = "OK -> ALARM" if alarm else "ALARM -> OK"
    return text + f" (minimum {_count(minimum, 'datapoint')} for {arrow} transition)."


def filled_reason(config: AlarmConfig, received: int, filled: int) -> str:
    """ "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were
    treated as [Breaching]." (AWS writes NonBreaching for notBreaching.)"""
    verdict = "Breaching" if config.treat_missing_data == "breaching" else "NonBreaching"
    got = (
        "no datapoints were"
        if received == 0
        else f"{_count(received, 'datapoint')} {_was(received)}"
    )
    return (
        f"Threshold Crossed: {got} received for {_count(config.evaluation_periods, 'period')} and "
        f"{_count(filled, 'missing datapoint')} {_was(filled)} treated as [{verdict}]."
    )


def insufficient_reason(unknown: int) -> str:
    """ "Insufficient Data: 3 datapoints were unknown.\""""
    return f"Insufficient Data: {_count(unknown, 'datapoint')} {_was(unknown)} unknown."


def premature_reason(config: AlarmConfig, real: Sequence[EvaluatedDatapoint]) -> str:
    """trailkeeper's wording (AWS publishes none) for the premature-alarm rule."""
    listed = ", ".join(
        f"{java_double(p.value or 0.0)} ({reason_time(p.timestamp)})"
        for p in reversed(real[-REASON_DATAPOINTS:])
    )
    words = COMPARISONS[config.comparison_operator][1]
    return (
        f"Threshold Crossed: {_count(len(real), 'datapoint')} [{listed}] {_was(len(real))} {words} the threshold "
        f"({java_double(config.threshold)}) and no datapoint since was within it; the oldest breach is at least "
        f"{_count(config.required_breaches, 'period')} old (missing datapoints treated as [Missing])."
    )


def ignored_reason(config: AlarmConfig, unknown: int) -> str:
    """Kept for the evaluation record only: an `ignore` alarm keeps its state and its old reason."""
    return f"Missing data ignored: {_count(unknown, 'datapoint')} of the last {config.evaluation_periods} {_was(unknown)} missing; state kept."


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _was(n: int) -> str:
    return "was" if n == 1 else "were"


def reason_time(at: datetime) -> str:
    """dd/mm/yy HH:MM:SS, UTC: the datapoint time format of AWS reason texts."""
    return from_epoch(epoch_seconds(at)).strftime("%d/%m/%y %H:%M:%S")


def cloudwatch_time(at: datetime) -> str:
    """2022-08-28T15:39:16.518+0000: CloudWatch's timestamp format in reason data and SNS messages."""
    utc = from_epoch(epoch_seconds(at)).replace(microsecond=at.microsecond)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def java_double(value: float) -> str:
    """Java's Double.toString, which AWS texts use: 0.0, 150.0, 1.0E7, 1.0E-4."""
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(float(value))
    sign, digits, exponent = Decimal(repr(float(value))).as_tuple()
    assert isinstance(exponent, int)  # finite values only: thresholds and datapoints are checked
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) - 1 + exponent
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"


def _reason_data(
    config: AlarmConfig, evaluated: Sequence[EvaluatedDatapoint], now: datetime
) -> str:
    """StateReasonData as AWS writes it (compact JSON): evaluatedDatapoints newest first, only
    timestamps for missing periods; recentDatapoints oldest first; startDate only with real data."""
    data: dict[str, Any] = {"version": "1.0", "queryDate": cloudwatch_time(now)}
    real = [p for p in evaluated if p.value is not None]
    if real:
        data["startDate"] = cloudwatch_time(evaluated[0].timestamp)
    data.update(statistic=config.statistic, period=config.period)
    data["recentDatapoints"] = [p.value for p in real]
    data["threshold"] = float(config.threshold)
    data["evaluatedDatapoints"] = [_evaluated_dict(p) for p in reversed(evaluated)]
    text = _compact(data)
    while len(text) > MAX_REASON_DATA and data["evaluatedDatapoints"]:
        # Too long for the field: drop the oldest entries, keep the newest evidence.
        if "value" in data["evaluatedDatapoints"].pop():
            data["recentDatapoints"] = data["recentDatapoints"][1:]
        text = _compact(data)
    return text


def _evaluated_dict(point: EvaluatedDatapoint) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": cloudwatch_time(point.timestamp)}
    if point.value is not None:
        out["value"] = point.value
    return out


def _compact(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


# --- transitions --------------------------------------------------------------------------


@dataclass(frozen=True)
class StateUpdate:
    """A DescribeAlarmHistory item of type StateUpdate."""

    alarm_name: str
    timestamp: datetime
    old_state: AlarmState
    new_state: AlarmState
    old_reason: str
    new_reason: str
    new_reason_data: str

    @property
    def summary(self) -> str:
        return f"Alarm updated from {self.old_state} to {self.new_state}"

    def history_data(self) -> str:
        old: dict[str, Any] = {"stateValue": str(self.old_state)}
        if self.old_reason:
            old["stateReason"] = self.old_reason
        new = {
            "stateValue": str(self.new_state),
            "stateReason": self.new_reason,
            "stateReasonData": json.loads(self.new_reason_data),
        }
        return _compact({"version": "1.0", "oldState": old, "newState": new})

    def to_dict(self) -> dict[str, Any]:
        return {
            "AlarmName": self.alarm_name,
            "AlarmType": "MetricAlarm",
            "Timestamp": self.timestamp,
            "HistoryItemType": "StateUpdate",
            "HistorySummary": self.summary,
            "HistoryData": self.history_data(),
        }


@dataclass(frozen=True)
class Transition:
    """What a state change means: history to keep and, if any, the actions to run."""

    changed: bool
    fire: bool
    action_kind: str | None  # "AlarmActions", "OKActions" or "InsufficientDataActions"
    actions: tuple[str, ...]
    history: StateUpdate | None


ACTION_KINDS: Final = {
    AlarmState.ALARM: "AlarmActions",
    AlarmState.OK: "OKActions",
    AlarmState.INSUFFICIENT_DATA: "InsufficientDataActions",
}


def transition(
    previous_state: AlarmState, evaluation: Evaluation, previous_reason: str = ""
) -> Transition:
    """Actions fire once per state change, and only when the alarm's actions are enabled;
    staying in a state (even ALARM) fires nothing and writes no history."""
    old, new = AlarmState(previous_state), evaluation.new_state
    if old == new:
        return Transition(False, False, None, (), None)
    config = evaluation.config
    history = StateUpdate(
        config.name,
        evaluation.query_date,
        old,
        new,
        previous_reason,
        evaluation.reason,
        evaluation.reason_data,
    )
    actions = config.actions_for(new) if config.actions_enabled else ()
    return Transition(True, bool(actions), ACTION_KINDS[new], actions, history)
