"""The delivery worker: sends queued SNS deliveries, retries failures with backoff, gives up
after the policy's window, and records every failure and every give-up as an audit event.

A delivery row is removed only after its receiver acknowledged it, so a crash at any point
leaves it queued: it is sent again after the restart, with the same MessageId and the same
signed document (at least once, as SNS; receivers deduplicate by MessageId). Deliveries are
sent concurrently, so one slow receiver does not hold back the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from trailkeeper._internal.loop import WakeableLoop
from trailkeeper.clock import Clock, iso_seconds
from trailkeeper.notify.model import Delivery, RetryPolicy
from trailkeeper.notify.topics import Notifications
from trailkeeper.notify.transports import DeliveryError, Transport, redacted_endpoint

log = logging.getLogger(__name__)

MAX_PARALLEL = 8  # deliveries in flight at once
BATCH = 100  # due deliveries read per round
IDLE_POLL_S = 5.0  # the longest the worker sleeps with nothing due (a safety net: it is woken)
FAILED_EVENT = "SnsDeliveryFailed"
ABANDONED_EVENT = "SnsDeliveryAbandoned"

Emit = Callable[[str, dict[str, Any]], None]


class DeliveryWorker:
    """Sends what `notifications` queued through `transports` (one per protocol)."""

    def __init__(self, notifications: Notifications, transports: Mapping[str, Transport], emit: Emit,
                 clock: Clock, policy: RetryPolicy | None = None) -> None:
        self.notifications = notifications
        self.transports = transports
        self.emit = emit
        self.clock = clock
        self.policy = policy or notifications.policy
        self._loop = WakeableLoop("sns-delivery", self._round, retry_s=1.0)
        self._inflight: set[int] = set()
        self._inflight_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        notifications.on_queued(self.wake)

    # ---- foreground (tests, and one round of the thread) ----
    def deliver_due(self) -> int:
        """Attempt every delivery due now, one after another; how many were attempted."""
        due = self.notifications.repo.due(self._now(), BATCH)
        for delivery in due:
            self.attempt(delivery)
        return len(due)

    def attempt(self, delivery: Delivery) -> bool:
        """Send one delivery; True when its receiver took it. A failure is recorded and
        rescheduled (or given up when the policy's window has passed)."""
        repo = self.notifications.repo
        sub = self.notifications.subscription(delivery.subscription_arn)
        if sub is None:  # unsubscribed since it was queued: nothing is owed any more
            repo.delivered(delivery.id)
            return False
        transport = self.transports.get(sub.protocol)
        try:
            if transport is None:
                raise DeliveryError(f"no transport for protocol {sub.protocol}")
            transport.send(self.notifications.outgoing(delivery.message, sub))
        except DeliveryError as e:
            self._failed(delivery, sub.protocol, sub.endpoint, str(e))
            return False
        except Exception as e:  # a transport bug must not kill the worker or lose the row
            log.exception("delivery %s failed unexpectedly", delivery.id)
            self._failed(delivery, sub.protocol, sub.endpoint, f"internal error: {type(e).__name__}: {e}")
            return False
        repo.delivered(delivery.id)
        return True

    def _failed(self, delivery: Delivery, protocol: str, endpoint: str, error: str) -> None:
        now = self._now()
        attempts = delivery.attempts + 1
        details: dict[str, Any] = {
            "messageId": delivery.message_id, "messageType": delivery.message.get("Type", ""),
            "topicArn": delivery.message.get("TopicArn", ""), "subscriptionArn": delivery.subscription_arn,
            "protocol": protocol, "endpoint": redacted_endpoint(protocol, endpoint), "attempts": attempts,
            "error": error}
        if now - delivery.created >= self.policy.window:
            self.notifications.repo.give_up(delivery.id, attempts, error, now)
            self.emit(ABANDONED_EVENT, {**details, "retryWindowSeconds": self.policy.window})
            return
        retry_at = now + self.policy.delay(attempts)
        self.notifications.repo.retry_later(delivery.id, attempts, retry_at, error)
        self.emit(FAILED_EVENT, {**details, "nextAttemptTime": iso_seconds(datetime.fromtimestamp(retry_at, UTC))})

    # ---- background ----
    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=MAX_PARALLEL, thread_name_prefix="sns-delivery")
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)
        if self._pool is not None:
            # Deliveries in flight may finish (bounded); whatever did not stays queued and is sent
            # again after the restart.
            self._pool.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self._inflight_lock:
                    if not self._inflight:
                        break
                time.sleep(0.02)

    def _round(self) -> float:
        self._dispatch()
        return self._until_next_due()

    def _dispatch(self) -> None:
        assert self._pool is not None
        for delivery in self.notifications.repo.due(self._now(), BATCH):
            with self._inflight_lock:
                if delivery.id in self._inflight:
                    continue
                self._inflight.add(delivery.id)
            self._pool.submit(self._attempt_in_pool, delivery)

    def _attempt_in_pool(self, delivery: Delivery) -> None:
        try:
            self.attempt(delivery)
        except Exception:
            log.exception("SNS delivery %s could not be recorded", delivery.id)
        finally:
            with self._inflight_lock:
                self._inflight.discard(delivery.id)
            self._loop.wake()

    def _until_next_due(self) -> float:
        due = self.notifications.repo.next_due()
        if due is None:
            return IDLE_POLL_S
        if due <= self._now():
            # What is due is in flight: its completion wakes the loop.
            with self._inflight_lock:
                return IDLE_POLL_S if self._inflight else 0.0
        return min(IDLE_POLL_S, due - self._now())

    def _now(self) -> float:
        return self.clock.now().timestamp()
