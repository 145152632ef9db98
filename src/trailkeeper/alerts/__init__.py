"""Alerts (issue #12): what a detection rule's match means, and the alert objects that follow.

`lifecycle.Alerts` decides each match (false-positive switches, suppressions, thresholds,
dedup) and keeps alerts through open -> acknowledged -> closed; `sender.AlertSender` publishes
their notifications from the crash-safe outbox; `settings.AlertSettings` holds the switches and
defaults; `store` is the SQLite repository. docs/alerts.md describes the semantics.
"""

from trailkeeper.alerts.lifecycle import Alerts
from trailkeeper.alerts.model import (
    SEVERITIES,
    Alert,
    AlertError,
    AlertPage,
    AlertPolicy,
    AlertState,
    Change,
    Detection,
    Notification,
    Outcome,
    OutcomeKind,
    Suppression,
)
from trailkeeper.alerts.sender import AlertSender, Publish
from trailkeeper.alerts.settings import AlertSettings, changed
from trailkeeper.alerts.store import SqliteAlertRepository

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertError",
    "AlertPage",
    "AlertPolicy",
    "AlertSender",
    "AlertSettings",
    "AlertState",
    "Alerts",
    "Change",
    "Detection",
    "Notification",
    "Outcome",
    "OutcomeKind",
    "Publish",
    "SqliteAlertRepository",
    "Suppression",
    "changed",
]
