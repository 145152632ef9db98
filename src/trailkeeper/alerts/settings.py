"""Alert settings: the false-positive switches of spec §7, the allow-list, the topic each
severity notifies and the defaults of the rules' alert policies.

They are data, kept in the state database and changed through `Alerts.update_settings`, so
turning a switch needs no release and leaves an audit record. `updated` checks a change whole
and names every problem at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from trailkeeper.alerts.model import (
    MAX_THRESHOLD,
    SEVERITIES,
    AlertError,
    AlertPolicy,
    window_problems,
)

DEFAULT_DEDUP_WINDOW_S = 3_600  # Panther's choice for 116 of its 136 CloudTrail rules
DEFAULT_THRESHOLD = 1  # every match counts: the first one opens the alert
DEFAULT_THRESHOLD_WINDOW_S = 3_600
MAX_ALLOWED_PRINCIPALS = 500
MAX_ARN_CHARS = 2_048
TOPIC_ARN = re.compile(r"arn:aws:sns:[a-z0-9-]{1,32}:\d{12}:[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True)
class EffectivePolicy:
    """A rule's policy with the settings' defaults filled in."""

    dedup_fields: tuple[str, ...] | None
    dedup_window_s: int
    threshold: int
    threshold_window_s: int


@dataclass(frozen=True)
class AlertSettings:
    # Calls AWS services make for the account (userIdentity.type AWSService, invokedBy, userAgent
    # "AWS Internal"): they are not the account's people acting.
    ignore_service_principals: bool = True
    # ConsoleLogin by an assumed role, a SAML or web-identity user or an IAM Identity Center role:
    # their MFA happens at the identity provider, so CloudTrail reports none (MFA rules misfire).
    ignore_federated_console_logins: bool = True
    # Calls that failed (errorCode set). Off: failures matter to brute-force and probing rules.
    ignore_failed_calls: bool = False
    allowed_principals: tuple[str, ...] = ()  # principal ARN globs (`*`) never alerted on
    topics: Mapping[str, str] = field(default_factory=dict)  # severity -> SNS topic ARN
    default_topic: str | None = None  # for severities `topics` does not name; None: no notification
    dedup_window_s: int = DEFAULT_DEDUP_WINDOW_S
    threshold: int = DEFAULT_THRESHOLD
    threshold_window_s: int = DEFAULT_THRESHOLD_WINDOW_S

    def topic_for(self, severity: str) -> str | None:
        return self.topics.get(severity, self.default_topic)

    def effective(self, policy: AlertPolicy) -> EffectivePolicy:
        def pick(value: int | None, default: int) -> int:
            return default if value is None else value
        return EffectivePolicy(policy.dedup_fields, pick(policy.dedup_window_s, self.dedup_window_s),
                               pick(policy.threshold, self.threshold),
                               pick(policy.threshold_window_s, self.threshold_window_s))

    def to_dict(self) -> dict[str, Any]:
        """The settings under the names `updated` takes (lists for tuples: JSON's form)."""
        data = asdict(self)
        data["allowed_principals"] = list(self.allowed_principals)
        data["topics"] = dict(self.topics)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertSettings:
        return cls().updated(data)

    def updated(self, changes: Mapping[str, Any]) -> AlertSettings:
        """These settings with `changes` applied (a key replaces the whole value: `topics` is the
        complete map). AlertError InvalidSettings naming every problem found."""
        problems = settings_problems(changes)
        if problems:
            raise AlertError("InvalidSettings", "alert settings refused: " + "; ".join(problems),
                             hint=f"settings are {', '.join(SETTING_NAMES)}; severities are {', '.join(SEVERITIES)}")
        merged = {**self.to_dict(), **changes}
        merged["allowed_principals"] = tuple(merged["allowed_principals"])
        merged["topics"] = dict(merged["topics"])
        return AlertSettings(**merged)


SETTING_NAMES = tuple(f.name for f in fields(AlertSettings))
_SWITCHES = ("ignore_service_principals", "ignore_federated_console_logins", "ignore_failed_calls")


def changed(old: AlertSettings, new: AlertSettings) -> dict[str, tuple[Any, Any]]:
    """Each setting whose value differs: name -> (old, new), for the audit record of a change."""
    before, after = old.to_dict(), new.to_dict()
    return {name: (before[name], after[name]) for name in SETTING_NAMES if before[name] != after[name]}


def settings_problems(changes: Mapping[str, Any]) -> list[str]:
    found = [f"unknown setting {name!r}" for name in changes if name not in SETTING_NAMES]
    for name in _SWITCHES:
        if name in changes and not isinstance(changes[name], bool):
            found.append(f"{name} must be true or false, got {changes[name]!r}")
    if "allowed_principals" in changes:
        found += _allow_list_problems(changes["allowed_principals"])
    if "topics" in changes:
        found += _topics_problems(changes["topics"])
    if changes.get("default_topic") is not None:
        found += _arn_problems("default_topic", changes["default_topic"])
    found += window_problems("dedup_window_s", changes.get("dedup_window_s"), 0)
    found += window_problems("threshold_window_s", changes.get("threshold_window_s"), 1)
    if "threshold" in changes:
        value = changes["threshold"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THRESHOLD:
            found.append(f"threshold must be a whole number from 1 to {MAX_THRESHOLD}, got {value!r}")
    for name in ("dedup_window_s", "threshold_window_s"):
        if name in changes and changes[name] is None:
            found.append(f"{name} needs a value")
    return found


def _allow_list_problems(value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        return ["allowed_principals must be a list of principal ARNs"]
    if len(value) > MAX_ALLOWED_PRINCIPALS:
        return [f"allowed_principals holds at most {MAX_ALLOWED_PRINCIPALS} entries, got {len(value)}"]
    return [f"allowed_principals entry {v!r} is not an ARN (arn:aws:..., `*` for any characters)"
            for v in value if not v.startswith("arn:") or len(v) > MAX_ARN_CHARS]


def _topics_problems(value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return ["topics must map severities to SNS topic ARNs"]
    found = [f"topics: unknown severity {k!r} (severities are {', '.join(SEVERITIES)})"
             for k in value if k not in SEVERITIES]
    for severity, arn in value.items():
        found += _arn_problems(f"topics[{severity}]", arn)
    return found


def _arn_problems(name: str, arn: Any) -> list[str]:
    if isinstance(arn, str) and TOPIC_ARN.fullmatch(arn):
        return []
    return [f"{name} {arn!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"]
