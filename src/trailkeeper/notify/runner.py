"""The notification machinery the server runs: the delivery worker and the alarm sender,
started and stopped together (service.py)."""

from __future__ import annotations

from collections.abc import Mapping

from trailkeeper.clock import Clock
from trailkeeper.monitoring.cloudwatch import CloudWatch
from trailkeeper.notify.alarm_sender import AlarmSender, Emit
from trailkeeper.notify.delivery import DeliveryWorker
from trailkeeper.notify.settings import SmtpSettings
from trailkeeper.notify.topics import Notifications
from trailkeeper.notify.transports import Transport, default_transports


class NotificationRunner:
    def __init__(self, notifications: Notifications, cloudwatch: CloudWatch, emit: Emit, clock: Clock,
                 smtp: SmtpSettings | None = None, transports: Mapping[str, Transport] | None = None) -> None:
        self.worker = DeliveryWorker(notifications, transports or default_transports(smtp), emit, clock)
        self.sender = AlarmSender(cloudwatch, notifications, emit)

    def start(self) -> None:
        """Deliver what a previous run left queued, and send what alarms still owe, at once."""
        self.worker.start()
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()
        self.worker.stop()
