"""`Alerts`: what a detection means (ignored, suppressed, counted towards a threshold, a repeat
of an alert, or a new alert) and the life of an alert after that (open -> acknowledged ->
closed), with suppressions and settings.

A batch of detections is one transaction, and an opening writes its notification into the
outbox inside it, so a crash loses neither and repeats neither; `alerts/sender.py` publishes the
outbox. Time is the clock's (arrival time), not the record's eventTime: CloudTrail delivers late
and out of order, and a window measured in event time would open and close on delivery luck.
Every method that changes something returns the objects the caller's audit record needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from trailkeeper.alerts.fields import (
    compile_allow_list,
    dedup_key,
    false_positive,
    summary,
    suppressed_by,
)
from trailkeeper.alerts.ids import ID_PATTERN, IdMaker
from trailkeeper.alerts.message import message, subject
from trailkeeper.alerts.model import (
    MAX_EVENT_IDS,
    SEVERITIES,
    SYSTEM_ACTOR,
    Alert,
    AlertError,
    AlertPage,
    AlertState,
    Change,
    Detection,
    Notification,
    Outcome,
    OutcomeKind,
    Suppression,
    invalid,
)
from trailkeeper.alerts.settings import AlertSettings, EffectivePolicy
from trailkeeper.alerts.store import AlertTx, SqliteAlertRepository
from trailkeeper.clock import Clock

log = logging.getLogger(__name__)

# How long a (rule, eventID) is remembered at least, so a spool replayed after a crash (minutes
# later, in practice) changes nothing; longer when the rule's windows are longer.
SEEN_RETENTION_S = 86_400
PRUNE_EVERY_S = 60  # forgetting expired claims and counters is a batch's chore at most this often
MAX_SUPPRESSION_FIELDS = 3
MAX_SUPPRESSION_S = 90 * 86_400
MAX_PAGE = 1_000
MAX_TEXT_CHARS = 4_096  # comments and reasons


@dataclass(frozen=True)
class _Batch:
    tx: AlertTx
    now: datetime
    settings: AlertSettings
    suppressions: list[Suppression]
    allow_list: list[tuple[str, list[str]]]


class Alerts:
    """The alerts of one state database: matches in, alerts, suppressions and settings out."""

    def __init__(self, repo: SqliteAlertRepository, clock: Clock, *,
                 seen_retention_s: int = SEEN_RETENTION_S) -> None:
        self.repo = repo
        self.clock = clock
        self.seen_retention_s = seen_retention_s
        self._ids = IdMaker()
        newest = repo.newest_id()
        if newest is not None:
            self._ids.seen(newest)
        self._listeners: list[Callable[[], None]] = []
        self._pruned: datetime | None = None

    def on_notification(self, listener: Callable[[], None]) -> None:
        """Call `listener` after a batch that queued a notification committed (the sender's wake)."""
        self._listeners.append(listener)

    # ---- matches ----
    def on_match(self, detection: Detection) -> Outcome:
        return self.on_matches([detection])[0]

    def on_matches(self, detections: Sequence[Detection]) -> list[Outcome]:
        """Decide each detection, in order, in one transaction."""
        if not detections:
            return []
        now = self.clock.now()
        with self.repo.transaction() as tx:
            settings = _settings(tx.settings())
            batch = _Batch(tx, now, settings, tx.active_suppressions(now),
                           compile_allow_list(settings.allowed_principals))
            if self._pruned is None or now - self._pruned >= timedelta(seconds=PRUNE_EVERY_S):
                tx.prune(now)
                self._pruned = now
            outcomes = [self._match(batch, d) for d in detections]
        if any(o.notification_queued for o in outcomes):
            for listener in self._listeners:
                listener()
        return outcomes

    def _match(self, b: _Batch, d: Detection) -> Outcome:
        ignored = false_positive(d.record, b.settings, b.allow_list)
        if ignored is not None:
            return Outcome(OutcomeKind.IGNORED, d.rule_id, d.event_id, reason=ignored[0], detail=ignored[1])
        policy = b.settings.effective(d.policy)
        counting_s = policy.threshold_window_s if policy.threshold > 1 else 0
        keep_s = max(policy.dedup_window_s, counting_s, self.seen_retention_s)
        if not b.tx.claim(d.rule_id, d.event_id, b.now + timedelta(seconds=keep_s)):
            return Outcome(OutcomeKind.DUPLICATE, d.rule_id, d.event_id)
        found = suppressed_by(b.suppressions, d.rule_id, d.record)
        if found is not None:
            b.tx.count_suppressed(found.id, b.now)
            return Outcome(OutcomeKind.SUPPRESSED, d.rule_id, d.event_id, suppression_id=found.id,
                           detail=found.reason)
        key = dedup_key(d.rule_id, d.record, policy.dedup_fields)
        latest = b.tx.latest(key)
        if latest is not None and _absorbs(latest, b.now, policy):
            updated = b.tx.absorb(latest, d.event_id, b.now)
            kind = OutcomeKind.UPDATED if updated is not None else OutcomeKind.DUPLICATE
            return Outcome(kind, d.rule_id, d.event_id, alert=updated or latest)
        return self._count_or_open(b, d, policy, key)

    def _count_or_open(self, b: _Batch, d: Detection, policy: EffectivePolicy, key: str) -> Outcome:
        if policy.threshold == 1:
            return self._open(b, d, policy, key, [(d.event_id, b.now)])
        counted = b.tx.add_pending(key, d.rule_id, d.event_id, b.now, policy.threshold_window_s)
        if counted < policy.threshold:
            return Outcome(OutcomeKind.BELOW_THRESHOLD, d.rule_id, d.event_id, pending=counted)
        return self._open(b, d, policy, key, b.tx.pending(key))

    def _open(self, b: _Batch, d: Detection, policy: EffectivePolicy, key: str,
              pending: list[tuple[str, datetime]]) -> Outcome:
        event_ids = [e for e, _ in pending]
        alert = Alert(self._ids.next(b.now), d.rule_id, d.rule_title, d.severity, key, AlertState.OPEN,
                      min(when for _, when in pending), b.now, len(event_ids),
                      max(0, len(event_ids) - MAX_EVENT_IDS), summary(d.record), b.now)
        why = (f"threshold reached: {len(event_ids)} matches within {policy.threshold_window_s}s"
               if policy.threshold > 1 else f"rule {d.rule_id} matched event {d.event_id}")
        change = Change(alert.id, 1, b.now, SYSTEM_ACTOR, "open", None, AlertState.OPEN, why)
        topic = b.settings.topic_for(d.severity)
        note = (topic, subject(alert), message(alert, event_ids)) if topic else None
        b.tx.open(alert, event_ids, change, note)
        return Outcome(OutcomeKind.OPENED, d.rule_id, d.event_id, alert=alert, notification_queued=note is not None)

    # ---- reading ----
    def list_alerts(self, state: str | None = None, severity: str | None = None, rule: str | None = None,
                    limit: int = 50, next_token: str | None = None) -> AlertPage:
        """Alerts newest first; `next_token` continues after the previous page's last alert."""
        problems = _filter_problems(state, severity, limit, next_token)
        if problems:
            raise invalid("; ".join(problems))
        found = self.repo.page(state, severity, rule, next_token, limit + 1)
        more = len(found) > limit
        return AlertPage(found[:limit], found[limit - 1].id if more else None)

    def get(self, alert_id: str) -> Alert:
        found = self.repo.get(alert_id)
        if found is None:
            raise _not_found(alert_id)
        return found

    def history(self, alert_id: str) -> list[Change]:
        self.get(alert_id)
        return self.repo.history(alert_id)

    def event_ids(self, alert_id: str) -> list[str]:
        """The event IDs behind the alert, in the order they came (at most MAX_EVENT_IDS; the
        alert's `dropped` counts the rest)."""
        self.get(alert_id)
        return self.repo.event_ids(alert_id)

    def pending_notifications(self) -> list[Notification]:
        """Notifications not yet handed to their topic, with their attempts and last error."""
        return self.repo.pending_notifications()

    # ---- life cycle ----
    def acknowledge(self, alert_id: str, actor: str, comment: str = "") -> Alert:
        return self._change(alert_id, actor, comment, "acknowledge", AlertState.ACKNOWLEDGED, (AlertState.OPEN,))

    def close(self, alert_id: str, actor: str, comment: str) -> Alert:
        if not comment.strip():
            raise invalid(f"closing alert {alert_id} needs a comment",
                          "say why it is closed (resolved how, or a false positive because ...)")
        return self._change(alert_id, actor, comment, "close", AlertState.CLOSED,
                            (AlertState.OPEN, AlertState.ACKNOWLEDGED))

    def _change(self, alert_id: str, actor: str, comment: str, action: str, to: AlertState,
                allowed: tuple[AlertState, ...]) -> Alert:
        _check_words(actor=actor, comment=comment)
        now = self.clock.now()
        with self.repo.transaction() as tx:
            alert = tx.get(alert_id)
            if alert is None:
                raise _not_found(alert_id)
            if alert.state not in allowed:
                raise _refused(alert, action)
            tx.set_state(alert_id, to, now)
            tx.add_change(Change(alert_id, tx.next_seq(alert_id), now, actor, action, alert.state, to, comment))
        return replace(alert, state=to, updated=now)

    # ---- suppressions ----
    def suppress(self, fields: Mapping[str, str], duration_s: int, reason: str, actor: str,
                 rule_id: str | None = None) -> Suppression:
        """Keep matches whose fields all match (values may hold `*`) from becoming alerts, for
        `duration_s` seconds, for one rule or (rule_id None) every rule."""
        problems = _suppression_problems(fields, duration_s)
        if problems:
            raise invalid("suppression refused: " + "; ".join(problems))
        _check_words(actor=actor, reason=reason)
        now = self.clock.now()
        made = Suppression(self._ids.next(now), dict(fields), rule_id, reason, actor, now,
                           now + timedelta(seconds=duration_s))
        with self.repo.transaction() as tx:
            tx.put_suppression(made)
        return made

    def suppressions(self, active_only: bool = True) -> list[Suppression]:
        return self.repo.suppressions(self.clock.now() if active_only else None)

    def lift_suppression(self, suppression_id: str, actor: str) -> Suppression:
        _check_words(actor=actor)
        now = self.clock.now()
        with self.repo.transaction() as tx:
            found = tx.get_suppression(suppression_id)
            if found is None:
                raise AlertError("SuppressionNotFound", f"no suppression {suppression_id}", 404)
            if not found.active(now):
                raise AlertError("SuppressionNotActive", f"suppression {suppression_id} was lifted or has "
                                 "expired already", 409)
            lifted = replace(found, lifted=now, lifted_by=actor)
            tx.put_suppression(lifted)
        return lifted

    # ---- settings ----
    def settings(self) -> AlertSettings:
        return _settings(self.repo.settings())

    def update_settings(self, changes: Mapping[str, object], actor: str) -> tuple[AlertSettings, AlertSettings]:
        """Apply `changes` (setting name -> new value) whole or not at all; (old, new)."""
        _check_words(actor=actor)
        now = self.clock.now()
        with self.repo.transaction() as tx:
            old = _settings(tx.settings())
            new = old.updated(changes)
            tx.put_settings(new.to_dict(), actor, now)
        return old, new


def _absorbs(alert: Alert, now: datetime, policy: EffectivePolicy) -> bool:
    """Whether a repeat joins `alert`: it is not closed and its last match is within the window."""
    return alert.state is not AlertState.CLOSED and now - alert.last_seen < timedelta(seconds=policy.dedup_window_s)


def _settings(stored: Mapping[str, object] | None) -> AlertSettings:
    return AlertSettings() if stored is None else AlertSettings.from_dict(stored)


def _refused(alert: Alert, action: str) -> AlertError:
    done = "acknowledged" if action == "acknowledge" else "closed"
    hint = ("a closed alert stays closed; a new match opens a new alert" if alert.state is AlertState.CLOSED
            else "it is acknowledged already; close it, with a comment, when it is dealt with")
    return AlertError("InvalidTransition", f"alert {alert.id} is {alert.state.value}: it cannot be {done}", 409,
                      hint)


def _not_found(alert_id: str) -> AlertError:
    return AlertError("AlertNotFound", f"no alert {alert_id}", 404)


def _check_words(**words: str) -> None:
    for name, value in words.items():
        if name != "comment" and not value.strip():
            raise invalid(f"{name} must not be empty")
        if len(value) > MAX_TEXT_CHARS:
            raise invalid(f"{name} holds at most {MAX_TEXT_CHARS} characters, got {len(value)}")


def _filter_problems(state: str | None, severity: str | None, limit: int, next_token: str | None) -> list[str]:
    found = []
    if state is not None and state not in {s.value for s in AlertState}:
        found.append(f"state {state!r} is not one of {', '.join(s.value for s in AlertState)}")
    if severity is not None and severity not in SEVERITIES:
        found.append(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    if not 1 <= limit <= MAX_PAGE:
        found.append(f"limit must be 1 to {MAX_PAGE}, got {limit}")
    if next_token is not None and not ID_PATTERN.fullmatch(next_token):
        found.append("next_token: pass the next_token of the previous page")
    return found


def _suppression_problems(fields: Mapping[str, str], duration_s: int) -> list[str]:
    found = []
    if not 1 <= len(fields) <= MAX_SUPPRESSION_FIELDS:
        found.append(f"a suppression matches 1 to {MAX_SUPPRESSION_FIELDS} fields, got {len(fields)}")
    for path, value in fields.items():
        if not isinstance(path, str) or not path or not isinstance(value, str) or not value:
            found.append(f"field {path!r}: give a field path and a non-empty value, got {value!r}")
    if isinstance(duration_s, bool) or not isinstance(duration_s, int) or not 0 < duration_s <= MAX_SUPPRESSION_S:
        found.append(f"duration must be 1 to {MAX_SUPPRESSION_S} seconds, got {duration_s!r}")
    return found
