"""The CloudWatch metrics and alarms service: metric datapoints over `monitoring.metrics`, alarms
over `monitoring.alarms`, state in a `CloudWatchRepository`.

Alarms are evaluated when a datapoint of their metric arrives (so a `Sum >= 1` alarm fires
within a second of the datapoint) and on the periodic `tick(now)`. A transition to ALARM keeps
the IDs of the events behind the breaching datapoints in its history item. A transition whose
new state has actions to run (AlarmActions, OKActions or InsufficientDataActions, and
ActionsEnabled) also queues a pending notification with those actions and event IDs, written in
the same transaction as the new state; with nothing to run (actions disabled, as AWS then runs
none, or none configured) nothing is queued. Every change of an alarm's stored record happens
under one lock, so an evaluation never writes back a configuration or an alarm it read before
a concurrent update or delete.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from trailkeeper.clock import Clock
from trailkeeper.monitoring.alarms import (
    AlarmConfig,
    AlarmState,
    evaluate,
    transition,
)
from trailkeeper.monitoring.cloudwatch_store import (
    AlarmRecord,
    CloudWatchRepository,
    HistoryRecord,
    PendingNotification,
)
from trailkeeper.monitoring.metrics import (
    BUCKET_SECONDS,
    Datum,
    MetricAggregator,
    MetricError,
    MetricKey,
    MetricRow,
    StatisticSet,
    epoch_seconds,
    from_epoch,
)

NEW_ALARM_REASON = "Unchecked: Initial alarm creation"


def config_to_dict(config: AlarmConfig) -> dict[str, Any]:
    return {
        "name": config.name, "metric": config.metric.to_dict(), "period": config.period,
        "evaluation_periods": config.evaluation_periods, "threshold": config.threshold,
        "comparison_operator": config.comparison_operator, "statistic": config.statistic,
        "datapoints_to_alarm": config.datapoints_to_alarm, "treat_missing_data": config.treat_missing_data,
        "actions_enabled": config.actions_enabled, "alarm_actions": list(config.alarm_actions),
        "ok_actions": list(config.ok_actions), "insufficient_data_actions": list(config.insufficient_data_actions),
        "description": config.description,
    }


def config_from_dict(data: dict[str, Any]) -> AlarmConfig:
    return AlarmConfig(
        name=data["name"], metric=MetricKey.from_dict(data["metric"]), period=data["period"],
        evaluation_periods=data["evaluation_periods"], threshold=data["threshold"],
        comparison_operator=data["comparison_operator"], statistic=data["statistic"],
        datapoints_to_alarm=data["datapoints_to_alarm"], treat_missing_data=data["treat_missing_data"],
        actions_enabled=data["actions_enabled"], alarm_actions=tuple(data["alarm_actions"]),
        ok_actions=tuple(data["ok_actions"]), insufficient_data_actions=tuple(data["insufficient_data_actions"]),
        description=data["description"],
    )


def not_found(message: str) -> MetricError:
    return MetricError("ResourceNotFound", message, 404)


class CloudWatch:
    """Metrics and alarms of one account and region."""

    def __init__(self, repo: CloudWatchRepository, clock: Clock, account_id: str, region: str) -> None:
        self.repo = repo
        self.clock = clock
        self.account_id = account_id
        self.region = region
        # Evaluations read the state they replace: one at a time, so two PutMetricData calls
        # cannot both see OK and both record the same OK -> ALARM transition.
        self._evaluating = threading.Lock()
        # Called after a transition that owes a notification is stored (the alarm sender's wake-up).
        self._notification_listeners: list[Callable[[], None]] = []

    def on_notification(self, callback: Callable[[], None]) -> None:
        """Call `callback` (cheap, non-blocking) after each stored transition that queued a
        pending notification, so that its sender runs at once rather than on its next poll."""
        self._notification_listeners.append(callback)

    def _record_transition(self, record: AlarmRecord, history: HistoryRecord,
                           notification: PendingNotification | None) -> None:
        self.repo.record_transition(record, history, notification)
        if notification is not None:
            for callback in self._notification_listeners:
                callback()

    def close(self) -> None:
        self.repo.close()

    def alarm_arn(self, name: str) -> str:
        return f"arn:aws:cloudwatch:{self.region}:{self.account_id}:alarm:{name}"

    # ---- metrics ------------------------------------------------------------------------------
    def put_metric_data(self, data: Sequence[Datum]) -> None:
        """Store the datapoints, then evaluate at once the alarms on the metrics they touched."""
        aggregator = MetricAggregator()
        for datum in data:
            aggregator.load([MetricRow(epoch_seconds(datum.timestamp) // 10 * 10, datum.metric, datum.stats)])
        self.repo.add_rows(aggregator.rows())
        touched = {datum.metric for datum in data}
        now = self.clock.now()
        for alarm in self.repo.alarms():
            if MetricKey.from_dict(alarm.config["metric"]) in touched:
                self._evaluate(alarm.name, now)

    def _aggregator(self, metric: MetricKey, since: datetime, period: int) -> MetricAggregator:
        """The stored buckets of `metric` from the start of the period that contains `since`
        (a period is reported whole, so its buckets before `since` count too)."""
        first = epoch_seconds(since)
        if period > 0:
            first -= first % period
        aggregator = MetricAggregator()
        aggregator.load(self.repo.rows(metric, since=first - first % BUCKET_SECONDS))
        return aggregator

    def statistics(self, metric: MetricKey, start: datetime, end: datetime, period: int,
                   statistics: Sequence[str]) -> list[dict[str, Any]]:
        if end <= start:
            raise MetricError("InvalidParameterValue",
                              "The parameter StartTime must be less than the parameter EndTime.")
        aggregator = self._aggregator(metric, start, period)
        return [p.to_dict() for p in aggregator.statistics(metric, start, end, period, statistics)]

    def list_metrics(self, namespace: str | None, name: str | None,
                     dimensions: Sequence[tuple[str, str | None]]) -> list[MetricKey]:
        """Metrics matching every given filter; a dimension filter without a value matches any value."""
        def matches(key: MetricKey) -> bool:
            dims = dict(key.dimensions)
            return ((namespace is None or key.namespace == namespace) and (name is None or key.name == name)
                    and all(k in dims and (v is None or dims[k] == v) for k, v in dimensions))
        return [key for key in self.repo.metrics() if matches(key)]

    # ---- alarms -------------------------------------------------------------------------------
    def put_alarm(self, config: AlarmConfig) -> None:
        """Create or update; a new alarm starts INSUFFICIENT_DATA, an update keeps its state."""
        config.validate()
        with self._evaluating:
            self._put_alarm(config)

    def _put_alarm(self, config: AlarmConfig) -> None:
        now = self.clock.now().timestamp()
        existing = self.repo.get_alarm(config.name)
        stored = config_to_dict(config)
        if existing is None:
            record = AlarmRecord(config.name, stored, str(AlarmState.INSUFFICIENT_DATA), NEW_ALARM_REASON,
                                 None, now, now)
            summary, kind = f"Alarm \"{config.name}\" created", "Create"
        else:
            record = replace(existing, config=stored, config_updated=now)
            summary, kind = f"Alarm \"{config.name}\" updated", "Update"
        data = orjson.dumps({"version": "1.0", "type": kind, "createdAlarm" if existing is None else "updatedAlarm":
                             stored}).decode()
        self.repo.put_alarm(record, HistoryRecord(config.name, now, "ConfigurationUpdate", summary, data))

    def delete_alarms(self, names: Sequence[str]) -> None:
        with self._evaluating:
            missing = [n for n in names if self.repo.get_alarm(n) is None]
            if missing:
                raise not_found(f"Could not find alarm(s): {', '.join(missing)}; nothing was deleted.")
            now = self.clock.now().timestamp()
            for name in names:
                data = orjson.dumps({"version": "1.0", "type": "Delete"}).decode()
                self.repo.remove_alarm(name, HistoryRecord(name, now, "ConfigurationUpdate",
                                                           f"Alarm \"{name}\" deleted", data))

    def alarm(self, name: str) -> AlarmRecord:
        found = self.repo.get_alarm(name)
        if found is None:
            raise not_found(f"Alarm {name} not found; create it with PutMetricAlarm.")
        return found

    def alarms(self) -> list[AlarmRecord]:
        return self.repo.alarms()

    def history(self, name: str | None) -> list[HistoryRecord]:
        return self.repo.history(name)

    def set_actions_enabled(self, names: Sequence[str], enabled: bool) -> None:
        with self._evaluating:
            for name in names:
                found = self.repo.get_alarm(name)
                if found is not None:  # AWS ignores names it does not know here
                    config = dict(found.config, actions_enabled=enabled)
                    self.repo.record_transition(replace(found, config=config), None, None)

    def set_state(self, name: str, state: str, reason: str, reason_data: str | None) -> None:
        """SetAlarmState: the state holds until the next evaluation decides otherwise."""
        try:
            new = AlarmState(state)
        except ValueError:
            raise MetricError("InvalidParameterValue",
                              f"StateValue {state!r} is not one of OK, ALARM, INSUFFICIENT_DATA.") from None
        if reason_data is not None:
            try:
                orjson.loads(reason_data)
            except orjson.JSONDecodeError:
                raise MetricError("InvalidFormat", "StateReasonData is not valid JSON; pass a JSON document.") from None
        with self._evaluating:
            found = self.alarm(name)
            now = self.clock.now()
            if found.state == new:
                return
            summary = f"Alarm updated from {found.state} to {new}"
            new_state: dict[str, Any] = {"stateValue": str(new), "stateReason": reason}
            if reason_data is not None:
                new_state["stateReasonData"] = orjson.loads(reason_data)
            data = orjson.dumps({"version": "1.0", "oldState": {"stateValue": found.state, "stateReason": found.reason},
                                 "newState": new_state}).decode()
            record = replace(found, state=str(new), reason=reason, reason_data=reason_data,
                             state_updated=now.timestamp())
            history = HistoryRecord(name, now.timestamp(), "StateUpdate", summary, data)
            self._record_transition(record, history, self._notification(found, new, now, ()))

    # ---- evaluation ---------------------------------------------------------------------------
    def tick(self, now: datetime | None = None) -> int:
        """Evaluate every alarm at `now` (the periodic timer); returns how many changed state."""
        when = now if now is not None else self.clock.now()
        return sum(self._evaluate(alarm.name, when) for alarm in self.repo.alarms())

    def _evaluate(self, name: str, now: datetime) -> bool:
        with self._evaluating:
            found = self.repo.get_alarm(name)
            if found is None:
                return False
            config = config_from_dict(found.config)
            since = from_epoch(epoch_seconds(now) - (config.evaluation_range + 2) * config.period)
            aggregator = self._aggregator(config.metric, since, config.period)
            end = from_epoch(epoch_seconds(now) // config.period * config.period + config.period)
            series = aggregator.series(config.metric, since, end, config.period, config.statistic)
            evaluation = evaluate(config, series, now, AlarmState(found.state))
            change = transition(AlarmState(found.state), evaluation, found.reason)
            if not change.changed or change.history is None:
                return False
            periods = aggregator.aggregate(config.metric, since, end, config.period)
            event_ids = tuple(i for at in evaluation.breaching_periods
                              for i in periods.get(epoch_seconds(at), StatisticSet(0, 0, 0, 0)).event_ids)
            update = change.history
            record = replace(found, state=str(update.new_state), reason=update.new_reason,
                             reason_data=update.new_reason_data, state_updated=now.timestamp())
            history = HistoryRecord(name, now.timestamp(), "StateUpdate", update.summary, update.history_data(),
                                    event_ids)
            self._record_transition(record, history, self._notification(found, update.new_state, now, event_ids))
            return True

    @staticmethod
    def _notification(found: AlarmRecord, new: AlarmState, now: datetime,
                      event_ids: tuple[str, ...]) -> PendingNotification | None:
        """What the sender owes for a transition to `new`: the new state's actions, or nothing
        when there are none to run (ActionsEnabled false: AWS runs no action then)."""
        config = config_from_dict(found.config)
        actions = config.actions_for(new) if config.actions_enabled else ()
        if not actions:
            return None
        return PendingNotification(found.name, now.timestamp(), str(new), actions, event_ids)


def alarm_time(seconds: float) -> datetime:
    """A stored epoch time as the aware datetime the API answers."""
    return datetime.fromtimestamp(seconds, from_epoch(0).tzinfo)

