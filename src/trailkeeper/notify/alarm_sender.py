"""The link from CloudWatch alarms to SNS: turns each pending notification CloudWatch stored
with an alarm transition into the CloudWatch alarm message (`notify/alarm_message.py`),
published to every SNS topic among the transition's actions.

Exactly once into the queue: each publish is keyed by the pending row and the topic
(`alarm:{seq}:{topic ARN}`), so a crash after some publishes and before the row is removed
publishes nothing twice when the row is taken up again; the row is removed only after every
publish it owes was queued durably. An action that is not a topic of this account, or a topic
that does not exist, is recorded as a failed action (`AlarmActionFailed`) and not retried, as
CloudWatch does with an action it cannot run.

CloudWatch wakes the sender when it stores a transition (`CloudWatch.on_notification`), so an
alarm reaches the delivery queue within milliseconds; it also looks every `POLL_S` seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import orjson

from trailkeeper._internal.loop import WakeableLoop
from trailkeeper.monitoring.alarms import AlarmState
from trailkeeper.monitoring.cloudwatch import CloudWatch, alarm_time, config_from_dict
from trailkeeper.monitoring.cloudwatch_store import PendingNotification
from trailkeeper.notify.alarm_message import AlarmChange, message, subject
from trailkeeper.notify.topics import Notifications, SnsError

log = logging.getLogger(__name__)

POLL_S = 5.0
ACTION_FAILED_EVENT = "AlarmActionFailed"
NOTIFIED_EVENT = "AlarmNotificationQueued"

Emit = Callable[[str, dict[str, Any]], None]


class AlarmSender:
    """Publishes CloudWatch's pending alarm notifications to their SNS topics."""

    def __init__(self, cloudwatch: CloudWatch, notifications: Notifications, emit: Emit) -> None:
        self.cloudwatch = cloudwatch
        self.notifications = notifications
        self.emit = emit
        self._loop = WakeableLoop("alarm-sender", self._round, POLL_S)
        self._lock = threading.Lock()  # one sending round at a time (thread and tests)
        cloudwatch.on_notification(self.wake)

    def send_pending(self) -> int:
        """Publish every pending notification; how many rows were done (and removed)."""
        done = 0
        with self._lock:
            for pending in self.cloudwatch.repo.pending_notifications():
                self._send(pending)
                if pending.seq is not None:
                    self.cloudwatch.repo.remove_pending(pending.seq)
                done += 1
        return done

    def _send(self, pending: PendingNotification) -> None:
        change = self._change(pending)
        for action in pending.actions:
            if change is None:
                self._failed(pending, action, f"alarm {pending.alarm_name} was deleted before its notification "
                                              "was sent")
                continue
            if not action.startswith("arn:aws:sns:"):
                self._failed(pending, action, "trailkeeper runs SNS topic actions only")
                continue
            try:
                message_id = self.notifications.publish(action, message(change), subject(change),
                                                        dedup_key=f"alarm:{pending.seq}:{action}")
            except SnsError as e:
                self._failed(pending, action, str(e))
                continue
            self.emit(NOTIFIED_EVENT, {"alarmName": pending.alarm_name, "newState": pending.new_state,
                                       "topicArn": action, "messageId": message_id})

    def _change(self, pending: PendingNotification) -> AlarmChange | None:
        """The transition as the message reports it: the alarm's configuration, and the old state
        and reason from the history item stored with the transition."""
        alarm = self.cloudwatch.repo.get_alarm(pending.alarm_name)
        if alarm is None:
            return None
        old_state, reason = AlarmState.INSUFFICIENT_DATA, alarm.reason
        for item in reversed(self.cloudwatch.history(pending.alarm_name)):
            if item.item_type == "StateUpdate" and item.timestamp == pending.timestamp:
                data = orjson.loads(item.data)
                old_state = AlarmState(data["oldState"]["stateValue"])
                reason = data["newState"].get("stateReason", reason)
                break
        return AlarmChange(config_from_dict(alarm.config), self.cloudwatch.account_id, self.cloudwatch.region,
                           old_state, AlarmState(pending.new_state), reason, alarm_time(pending.timestamp),
                           alarm_time(alarm.config_updated), pending.event_ids)

    def _failed(self, pending: PendingNotification, action: str, error: str) -> None:
        self.emit(ACTION_FAILED_EVENT, {"alarmName": pending.alarm_name, "newState": pending.new_state,
                                        "action": action, "error": error})

    # ---- background ----
    def start(self) -> None:
        self._loop.start()

    def wake(self) -> None:
        self._loop.wake()

    def stop(self, timeout: float = 5.0) -> None:
        self._loop.stop(timeout)

    def _round(self) -> float:
        self.send_pending()
        return POLL_S
