"""The notification an alert's opening publishes: a JSON message and an SNS subject.

Both are fixed when the alert opens, in its transaction, so every attempt to publish sends the
same bytes (and the record's summary is still at hand: records are not kept with alerts).
"""

from __future__ import annotations

from typing import Any

import orjson

from trailkeeper.alerts.model import Alert
from trailkeeper.clock import iso_seconds

MAX_SUBJECT_CHARS = 100  # SNS's limit
MESSAGE_EVENT_IDS = 20  # event IDs a message lists; the alert keeps them all


def subject(alert: Alert) -> str:
    """`trailkeeper alert [high]: <rule title>`, cut to SNS's 100 printable ASCII characters."""
    title = "".join(c if " " <= c <= "~" else "?" for c in alert.rule_title or alert.rule_id)
    text = f"trailkeeper alert [{alert.severity}]: {title}"
    return text if len(text) <= MAX_SUBJECT_CHARS else text[:MAX_SUBJECT_CHARS - 3] + "..."


def message(alert: Alert, event_ids: list[str]) -> str:
    body: dict[str, Any] = {
        "alertId": alert.id,
        "ruleId": alert.rule_id,
        "ruleTitle": alert.rule_title,
        "severity": alert.severity,
        "state": alert.state.value,
        "dedupKey": alert.dedup_key,
        "count": alert.count,
        "firstSeen": iso_seconds(alert.first_seen),
        "lastSeen": iso_seconds(alert.last_seen),
        "eventIds": event_ids[:MESSAGE_EVENT_IDS],
        "trigger": dict(alert.summary),
    }
    return orjson.dumps(body).decode()
