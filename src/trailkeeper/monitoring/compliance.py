"""The CIS monitoring check (`trailkeeper monitoring check`), control by control, as compliance
scanners make it (Security Hub CloudWatch.1 to 14, prowler's cloudwatch_log_metric_filter_*):

1. a logging trail forwards to a log group;
2. that log group has a metric filter whose pattern is the control's text (`cis.text_matches`:
   spacing and operand order free, nothing added or removed);
3. an alarm watches the filter's metric (namespace and name);
4. the alarm has actions enabled and an action on a topic with a confirmed subscription.

Pure: the caller gathers what is stored (filters, alarms, confirmed topics, forwarding trails)
into the small records below, so the check runs the same over the API, the CLI and tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trailkeeper.monitoring.cis import CONTROLS, CisControl, text_matches

PASS, FAIL = "PASS", "FAIL"


@dataclass(frozen=True)
class StoredFilter:
    log_group: str
    name: str
    pattern: str
    metric_namespace: str
    metric_name: str


@dataclass(frozen=True)
class StoredAlarm:
    name: str
    metric_namespace: str
    metric_name: str
    actions_enabled: bool
    alarm_actions: tuple[str, ...]


@dataclass(frozen=True)
class ControlResult:
    control: CisControl
    status: str
    filters: tuple[str, ...] = ()  # "group:filter" whose text is the control's
    alarms: tuple[str, ...] = ()  # alarms on those filters' metrics
    notified: tuple[str, ...] = ()  # topics of those alarms with a confirmed subscription
    findings: tuple[str, ...] = field(default=())  # why it fails, what to do

    def to_dict(self) -> dict[str, Any]:
        return {"control": self.control.cis_number, "securityHub": self.control.security_hub_id,
                "topic": self.control.topic, "status": self.status, "filters": list(self.filters),
                "alarms": list(self.alarms), "notifiedTopics": list(self.notified),
                "findings": list(self.findings)}


def check(forwarded_groups: Iterable[str], filters: Iterable[StoredFilter], alarms: Iterable[StoredAlarm],
          confirmed_topics: Iterable[str], controls: Sequence[CisControl] = CONTROLS) -> list[ControlResult]:
    """One result per control, in CIS order."""
    groups, topics = set(forwarded_groups), set(confirmed_topics)
    stored, watching = list(filters), list(alarms)
    return [_check_one(control, groups, stored, watching, topics) for control in controls]


def _check_one(control: CisControl, groups: set[str], filters: list[StoredFilter], alarms: list[StoredAlarm],
               topics: set[str]) -> ControlResult:
    if not groups:
        return ControlResult(control, FAIL, findings=(
            "no logging trail forwards to a log group: run `trailkeeper trail update NAME --log-group GROUP`",))
    matching = [f for f in filters if f.log_group in groups and text_matches(control, f.pattern)]
    if not matching:
        return ControlResult(control, FAIL, findings=(
            f"no metric filter with the CIS {control.cis_number} text on a forwarded log group "
            f"({', '.join(sorted(groups))}): run `trailkeeper monitoring install-cis`",))
    metrics = {(f.metric_namespace, f.metric_name) for f in matching}
    on_metric = [a for a in alarms if (a.metric_namespace, a.metric_name) in metrics]
    names = tuple(f"{f.log_group}:{f.name}" for f in matching)
    if not on_metric:
        return ControlResult(control, FAIL, filters=names, findings=(
            f"no alarm watches the metric of {', '.join(names)}: create one (Sum, 300 s, >= 1)",))
    notified = tuple(sorted({t for a in on_metric if a.actions_enabled for t in a.alarm_actions if t in topics}))
    alarm_names = tuple(a.name for a in on_metric)
    if not notified:
        return ControlResult(control, FAIL, filters=names, alarms=alarm_names, findings=(
            "no alarm action reaches a topic with a confirmed subscription (or actions are disabled): "
            "subscribe someone to the alarm's topic and confirm it",))
    return ControlResult(control, PASS, names, alarm_names, notified)
