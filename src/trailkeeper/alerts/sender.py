"""The link from alerts to SNS: publishes each notification the outbox holds, then marks it sent.

At least once out of the outbox, exactly once into the topic: a row leaves the outbox only after
its publish returned, and the publish is keyed by the alert (`alert:<id>`), which SNS's keyed
publish remembers, so a crash between the two publishes it again harmlessly. A failing publish
(an unknown topic, a busy database) keeps the row, with the error, and tries again later with a
growing pause: an alert's notification is never given up.

`Alerts` wakes the sender when a batch queued a notification; it also looks every `POLL_S`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from trailkeeper._internal.loop import WakeableLoop
from trailkeeper.alerts.lifecycle import Alerts
from trailkeeper.alerts.model import Notification

log = logging.getLogger(__name__)

POLL_S = 5.0
BATCH = 100  # notifications per round, so a long outbox does not hold the round forever
FIRST_RETRY_S = 5.0
MAX_RETRY_S = 900.0
SENT_EVENT = "AlertNotificationQueued"
FAILED_EVENT = "AlertNotificationFailed"

Emit = Callable[[str, dict[str, Any]], None]


class Publish(Protocol):
    """`trailkeeper.notify.topics.Notifications.publish`, or a test's stand-in."""

    def __call__(self, topic_arn: str, message: str, *, subject: str, dedup_key: str) -> object: ...


class AlertSender:
    def __init__(self, alerts: Alerts, publish: Publish, emit: Emit | None = None) -> None:
        self.alerts = alerts
        self.publish = publish
        self.emit = emit
        self._loop = WakeableLoop("alert-sender", self._round, POLL_S)
        self._lock = threading.Lock()  # one sending round at a time (thread and tests)
        alerts.on_notification(self.wake)

    def send_pending(self) -> int:
        """Publish every notification that is due; how many were published."""
        done = 0
        with self._lock:
            while True:
                due = self.alerts.repo.due_notifications(self.alerts.clock.now(), BATCH)
                sent = sum(self._send(n) for n in due)
                done += sent
                if len(due) < BATCH or sent == 0:
                    return done

    def _send(self, n: Notification) -> bool:
        try:
            result = self.publish(n.topic_arn, n.message, subject=n.subject, dedup_key=n.dedup_key)
        except Exception as e:  # any failure of the topic or the queue: the row waits for a retry
            self._failed(n, e)
            return False
        self.alerts.repo.notification_sent(n, self.alerts.clock.now())
        if self.emit is not None:
            self.emit(SENT_EVENT, {"alertId": n.alert_id, "topicArn": n.topic_arn,
                                   "messageId": result if isinstance(result, str) else None})
        return True

    def _failed(self, n: Notification, error: Exception) -> None:
        now = self.alerts.clock.now()
        wait = retry_delay(n.attempts + 1)
        log.warning("alert %s: publishing to %s failed (attempt %d), next try in %.0fs: %s",
                    n.alert_id, n.topic_arn, n.attempts + 1, wait, error)
        self.alerts.repo.notification_failed(n, now + timedelta(seconds=wait), str(error))
        if self.emit is not None:
            self.emit(FAILED_EVENT, {"alertId": n.alert_id, "topicArn": n.topic_arn,
                                     "attempts": n.attempts + 1, "error": str(error)})

    # ---- background ----
    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)

    def _round(self) -> float:
        self.send_pending()
        return _until(self.alerts.repo.next_due(), self.alerts.clock.now())


def retry_delay(attempts: int) -> float:
    """Seconds before attempt `attempts` + 1: doubling from FIRST_RETRY_S, capped at MAX_RETRY_S."""
    return min(MAX_RETRY_S, FIRST_RETRY_S * 2.0 ** min(attempts - 1, 20))


def _until(due: datetime | None, now: datetime) -> float:
    if due is None:
        return POLL_S
    return max(0.0, min(POLL_S, (due - now).total_seconds()))
