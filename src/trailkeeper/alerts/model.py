"""The alert model: plain records with no I/O (what a detection is, what an alert, a change of
its state, a suppression and the outcome of one match are), and the `AlertError` hierarchy.

`to_dict` gives each record's camelCase form, the one the API answers with and the self-audit
records carry. Times are timezone-aware UTC datetimes; the store keeps epoch microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from trailkeeper.clock import iso_seconds
from trailkeeper.errors import TrailkeeperError

SEVERITIES = ("informational", "low", "medium", "high", "critical")  # Sigma's `level`, mildest first
MAX_EVENT_IDS = 1_000  # event IDs kept per alert; later ones are only counted (`dropped`)
MAX_DEDUP_FIELDS = 5
MAX_WINDOW_S = 86_400  # dedup and threshold windows: a day at most (Matano's cap, Panther's longest)
MAX_THRESHOLD = 10_000  # the rule loader's bound too; past MAX_EVENT_IDS the IDs are only counted
# Unique per event: a dedup key built from them makes every match its own alert (spec §7).
HIGH_CARDINALITY_FIELDS = frozenset({"eventID", "requestID", "eventTime", "sharedEventID"})
SYSTEM_ACTOR = "trailkeeper"  # who the history names for the changes trailkeeper makes itself


class AlertError(TrailkeeperError):
    """An alert operation was refused; `code` names why (AlertNotFound, InvalidTransition, ...)."""

    def __init__(self, code: str, message: str, status: int = 400, hint: str = "") -> None:
        self.code = code
        self.status = status
        super().__init__(message, hint)


def invalid(message: str, hint: str = "") -> AlertError:
    return AlertError("InvalidParameter", message, 400, hint)


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


@dataclass(frozen=True)
class AlertPolicy:
    """A rule's alerting choices; None takes the default from the alert settings.

    `dedup_fields` are dotted paths into the record whose values (with the rule id) form the
    dedup key; None keys on the principal, and () on the rule alone (one alert at a time)."""

    dedup_fields: tuple[str, ...] | None = None
    dedup_window_s: int | None = None
    threshold: int | None = None
    threshold_window_s: int | None = None

    def __post_init__(self) -> None:
        problems = _policy_problems(self)
        if problems:
            raise invalid("alert policy: " + "; ".join(problems))


def _policy_problems(policy: AlertPolicy) -> list[str]:
    found: list[str] = []
    fields = policy.dedup_fields
    if fields is not None:
        if len(fields) > MAX_DEDUP_FIELDS or not all(isinstance(f, str) and f for f in fields):
            found.append(f"dedup_fields must be at most {MAX_DEDUP_FIELDS} non-empty field paths")
        elif HIGH_CARDINALITY_FIELDS & set(fields):
            found.append(f"dedup_fields {sorted(HIGH_CARDINALITY_FIELDS & set(fields))} are unique per event: "
                         "every match would open its own alert")
    found += window_problems("dedup_window_s", policy.dedup_window_s, 0)
    found += window_problems("threshold_window_s", policy.threshold_window_s, 1)
    if policy.threshold is not None and not 1 <= policy.threshold <= MAX_THRESHOLD:
        found.append(f"threshold must be 1 to {MAX_THRESHOLD} matches, got {policy.threshold}")
    return found


def window_problems(name: str, value: int | None, least: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [f"{name} must be a whole number of seconds, got {value!r}"]
    if value < 0:
        return [f"{name} must not be negative, got {value}"]
    if not least <= value <= MAX_WINDOW_S:
        return [f"{name} must be {least} to {MAX_WINDOW_S} seconds, got {value}"]
    return []


@dataclass(frozen=True)
class Detection:
    """A rule matched a record: what the engine hands to `Alerts.on_match`."""

    rule_id: str
    rule_title: str
    severity: str
    record: Mapping[str, Any]
    policy: AlertPolicy = field(default_factory=AlertPolicy)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise invalid(f"rule {self.rule_id}: severity {self.severity!r} is not one of {', '.join(SEVERITIES)}")
        if not self.rule_id:
            raise invalid("a detection needs the id of its rule")
        if not isinstance(self.record.get("eventID"), str) or not self.record["eventID"]:
            raise invalid(f"rule {self.rule_id}: the matched record has no eventID",
                          "alerts link to the events behind them by eventID; match canonical records")

    @property
    def event_id(self) -> str:
        return str(self.record["eventID"])


@dataclass(frozen=True)
class Alert:
    id: str
    rule_id: str
    rule_title: str
    severity: str
    dedup_key: str
    state: AlertState
    first_seen: datetime
    last_seen: datetime
    count: int  # matches absorbed: the event IDs kept plus `dropped`
    dropped: int  # event IDs counted past MAX_EVENT_IDS but not kept
    summary: Mapping[str, str | None]  # the record that opened the alert (`fields.summary`)
    updated: datetime  # the last change of state (the opening, at first)
    notified: datetime | None = None  # when its notification was handed to the topic

    def to_dict(self) -> dict[str, Any]:
        return {"alertId": self.id, "ruleId": self.rule_id, "ruleTitle": self.rule_title,
                "severity": self.severity, "dedupKey": self.dedup_key, "state": self.state.value,
                "firstSeen": iso_seconds(self.first_seen), "lastSeen": iso_seconds(self.last_seen),
                "count": self.count, "droppedEventIds": self.dropped, "trigger": dict(self.summary),
                "updated": iso_seconds(self.updated),
                "notified": iso_seconds(self.notified) if self.notified else None}


@dataclass(frozen=True)
class Change:
    """One entry of an alert's history: who changed its state, when, and why."""

    alert_id: str
    seq: int
    at: datetime
    actor: str
    action: str  # open, acknowledge, close
    from_state: AlertState | None
    to_state: AlertState
    comment: str

    def to_dict(self) -> dict[str, Any]:
        return {"alertId": self.alert_id, "seq": self.seq, "time": iso_seconds(self.at), "actor": self.actor,
                "action": self.action, "fromState": self.from_state.value if self.from_state else None,
                "toState": self.to_state.value, "comment": self.comment}


@dataclass(frozen=True)
class Suppression:
    id: str
    fields: Mapping[str, str]  # field path -> value (`*` matches any run of characters)
    rule_id: str | None  # None: every rule
    reason: str
    actor: str
    created: datetime
    expires: datetime
    lifted: datetime | None = None
    lifted_by: str | None = None
    suppressed: int = 0  # matches it kept from becoming alerts
    last_suppressed: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.lifted is None and now < self.expires

    def to_dict(self) -> dict[str, Any]:
        return {"suppressionId": self.id, "fields": dict(self.fields), "ruleId": self.rule_id,
                "reason": self.reason, "actor": self.actor, "created": iso_seconds(self.created),
                "expires": iso_seconds(self.expires),
                "lifted": iso_seconds(self.lifted) if self.lifted else None, "liftedBy": self.lifted_by,
                "suppressed": self.suppressed,
                "lastSuppressed": iso_seconds(self.last_suppressed) if self.last_suppressed else None}


class OutcomeKind(StrEnum):
    OPENED = "opened"  # a new alert (and its notification, when a topic is set)
    UPDATED = "updated"  # a repeat inside the dedup window: counted, not notified
    BELOW_THRESHOLD = "below-threshold"  # counted towards the rule's threshold
    SUPPRESSED = "suppressed"  # an active suppression matched; counted on it
    IGNORED = "ignored"  # a false-positive switch or the allow-list matched
    DUPLICATE = "duplicate"  # this (rule, eventID) was seen before: a replay


# Why a match was ignored (Outcome.reason): one code per false-positive switch.
IGNORED_SERVICE_PRINCIPAL = "ServicePrincipal"
IGNORED_FEDERATED_CONSOLE_LOGIN = "FederatedConsoleLogin"
IGNORED_FAILED_CALL = "FailedCall"
IGNORED_ALLOW_LISTED = "AllowListedPrincipal"


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    rule_id: str
    event_id: str
    alert: Alert | None = None
    reason: str = ""  # IGNORED: one of the IGNORED_* codes
    detail: str = ""  # human words for the reason (e.g. the allow-list entry that matched)
    suppression_id: str | None = None
    pending: int = 0  # BELOW_THRESHOLD: matches counted for the dedup key so far
    notification_queued: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.kind.value, "ruleId": self.rule_id, "eventId": self.event_id,
                "alertId": self.alert.id if self.alert else None, "reason": self.reason, "detail": self.detail,
                "suppressionId": self.suppression_id, "pending": self.pending,
                "notificationQueued": self.notification_queued}


@dataclass(frozen=True)
class AlertPage:
    items: list[Alert]
    next_token: str | None  # pass to the next `list_alerts` call; None: that was the last page


@dataclass(frozen=True)
class Notification:
    """An alert's notification waiting in the outbox for the sender."""

    row_id: int
    alert_id: str
    topic_arn: str
    subject: str
    message: str
    created: datetime
    next_attempt: datetime
    attempts: int
    last_error: str

    @property
    def dedup_key(self) -> str:
        """The publish's idempotency key: one per alert, so a publish repeated after a crash
        between publishing and marking it sent queues nothing twice."""
        return f"alert:{self.alert_id}"
