"""Every acknowledged event, offered to the default bus's rules, and the matches sent to their
targets (issue #12 items 1 and 5).

`EventRouter` is the handler of the `event-rules` spool consumer: it runs on the acknowledgement
path (a record is routed as soon as it is durable in the spool, not when a trail delivers it),
and the consumer's durable offset makes routing resume where it stopped after a crash.

At least once, and in practice once: each target invocation is an SNS publish keyed by
(rule, target, eventID), so a batch offered again after a crash queues nothing twice. A
publish that fails (the topic is gone, say) waits in `event_target_retries` and is retried with
backoff within the target's RetryPolicy (`TargetRetrier`); giving up is recorded as an
`EventTargetInvocationFailed` event and kept in the table. An outage of the state database is
not a failed publish: the consumer step raises and the batch is offered again later.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

from trailkeeper.clock import Clock, iso_seconds
from trailkeeper.consumers.base import OUTAGES
from trailkeeper.consumers.spool_consumer import Spooled
from trailkeeper.rules.bus import EventBus, RoutedRule
from trailkeeper.rules.envelope import envelope
from trailkeeper.rules.store import Invocation, SqliteRuleRepository
from trailkeeper.rules.targets import Target, shape_input

log = logging.getLogger(__name__)

CONSUMER_NAME: Final = "event-rules"
GAVE_UP_EVENT: Final = "EventTargetInvocationFailed"
FIRST_RETRY_S: Final = 1.0
MAX_RETRY_INTERVAL_S: Final = 300.0
RETRY_POLL_S: Final = 1.0
_BUS_NAMESPACE: Final = uuid.UUID("6f1b2c1e-9a57-4c55-8d0e-3c5e0d1f7a21")

Publish = Callable[[str, str, str], None]  # topic ARN, message, dedup key
Emit = Callable[[str, dict[str, Any]], None]
Detect = Callable[[Sequence[Spooled]], None]


def bus_event_id(event_id: str) -> str:
    """The bus event's id: derived from the record's eventID, so a replay offers the same event."""
    return str(uuid.uuid5(_BUS_NAMESPACE, event_id))


def dedup_key(rule: str, target_id: str, event_id: str) -> str:
    return f"events:{rule}:{target_id}:{event_id}"


class EventRouter:
    def __init__(self, bus: EventBus, repo: SqliteRuleRepository, publish: Publish, clock: Clock, emit: Emit,
                 detect: Detect | None = None) -> None:
        self.bus = bus
        self.repo = repo
        self.publish = publish
        self.clock = clock
        self.emit = emit
        self.detect = detect

    def __call__(self, batch: Sequence[Spooled]) -> None:
        routing = self.bus.routing()
        if routing.rules:
            for item in batch:
                event_id = str(item.record.get("eventID", ""))
                event = envelope(item.record, bus_event_id(event_id))
                for routed in routing.matching(item.record, event):
                    for target in routed.targets:
                        self._invoke(routed, target, event, event_id,
                                     retry=item.record.get("eventName") != GAVE_UP_EVENT)
        if self.detect is not None:
            self.detect(batch)

    def _invoke(self, routed: RoutedRule, target: Target, event: dict[str, Any], event_id: str, retry: bool) -> None:
        """`retry` is False for the record of a give-up: retrying its own failed delivery could
        give up again and feed itself."""
        now = self.clock.now()
        message = shape_input(target, event, routed.arn, routed.rule.name, iso_seconds(now))
        try:
            self.publish(target.arn, message, dedup_key(routed.rule.name, target.id, event_id))
        except OUTAGES:
            raise
        except Exception as e:
            log.warning("rule %s: target %s failed: %s", routed.rule.name, target.id, e)
            if not retry:
                return
            self.repo.add_retry(Invocation(0, routed.rule.name, target.id, target.arn, event_id, message,
                                           now.timestamp(), now.timestamp() + FIRST_RETRY_S, 1, _reason(e), None))


class TargetRetrier:
    """Retries failed target invocations within their target's RetryPolicy."""

    def __init__(self, bus: EventBus, repo: SqliteRuleRepository, publish: Publish, clock: Clock, emit: Emit) -> None:
        self.bus = bus
        self.repo = repo
        self.publish = publish
        self.clock = clock
        self.emit = emit

    def retry_due(self) -> float:
        """One round; the seconds until the next is due."""
        now = self.clock.now().timestamp()
        for invocation in self.repo.due(now):
            self._retry(invocation, now)
        return RETRY_POLL_S

    def _retry(self, invocation: Invocation, now: float) -> None:
        target = self._target(invocation)
        key = dedup_key(invocation.rule, invocation.target_id, invocation.event_id)
        error = "the target was removed from its rule"
        if target is not None:
            try:
                self.publish(invocation.target_arn, invocation.message, key)
                self.repo.delivered(invocation.id)
                return
            except OUTAGES:
                raise
            except Exception as e:
                error = _reason(e)
        attempts = invocation.attempts + 1
        out_of_policy = target is None or attempts > target.retry.max_attempts \
            or now - invocation.first_attempt >= target.retry.max_age_s
        if out_of_policy:
            self.repo.retried(invocation.id, attempts, now, error, failed=now)
            self._gave_up(invocation, attempts, error)
        else:
            wait = min(FIRST_RETRY_S * 2 ** (attempts - 1), MAX_RETRY_INTERVAL_S)
            self.repo.retried(invocation.id, attempts, now + wait, error, failed=None)

    def _target(self, invocation: Invocation) -> Target | None:
        targets = self.repo.targets(invocation.rule).get(invocation.rule, [])
        return next((t for t in targets if t.id == invocation.target_id and t.arn == invocation.target_arn), None)

    def _gave_up(self, invocation: Invocation, attempts: int, error: str) -> None:
        log.error("rule %s: gave up on target %s for event %s after %d attempts: %s", invocation.rule,
                  invocation.target_id, invocation.event_id, attempts, error)
        self.emit(GAVE_UP_EVENT, {"ruleName": invocation.rule, "targetId": invocation.target_id,
                                  "targetArn": invocation.target_arn, "eventID": invocation.event_id,
                                  "attempts": attempts, "error": error})


def _reason(error: Exception) -> str:
    code = getattr(error, "code", None)
    return f"{code}: {error}" if code else f"{type(error).__name__}: {error}"
