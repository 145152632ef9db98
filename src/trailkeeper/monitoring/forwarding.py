"""What forwarding a trail to a log group means, as pure functions (issue #11 item 1).

CloudTrail writes each event as one log event of the stream `{account}_CloudTrail_{region}` in
the trail's log group, the event's compact JSON as the message; an event too large for a log
event is not forwarded (and counted). CloudTrail accepts a role only if its policies let it
`logs:CreateLogStream` and `logs:PutLogEvents` on that stream: `forwarding_denials` evaluates
the role's policy documents the way IAM does for those two calls (an explicit Deny wins; an
Allow needs the action and the resource to match; `*` and `?` are wildcards; actions are
case-insensitive, resources are not). Decisions where IAM has a request context or a validator
this check lacks: an Allow under a (non-empty) Condition does not count, a Deny under one does
(it may apply when CloudTrail calls); a statement IAM would refuse to store (an Action, NotAction,
Resource or NotResource that is not a string or a non-empty list of strings, or both an element
and its Not… form) applies to nothing, so it neither allows nor denies.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

FORWARDING_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
# A log event is at most 256 KiB including 26 bytes of per-event overhead (CloudWatch Logs).
MAX_LOG_EVENT_BYTES = 262_144 - 26


def stream_name(account_id: str, region: str) -> str:
    return f"{account_id}_CloudTrail_{region}"


def default_log_group(account_id: str, suffix: str | None = None) -> str:
    """The name the CloudTrail console proposes: aws-cloudtrail-logs-{account}-{8 hex}."""
    return f"aws-cloudtrail-logs-{account_id}-{suffix or secrets.token_hex(4)}"


def log_group_arn(region: str, account_id: str, group: str) -> str:
    return f"arn:aws:logs:{region}:{account_id}:log-group:{group}"


def stream_arn(region: str, account_id: str, group: str, stream: str) -> str:
    return f"{log_group_arn(region, account_id, group)}:log-stream:{stream}"


def log_message(body: bytes) -> str | None:
    """The log-event message of one stored record (compact JSON), or None when it is too large
    to be a log event (not forwarded; the caller counts it)."""
    compact = orjson.dumps(orjson.loads(body))
    return None if len(compact) > MAX_LOG_EVENT_BYTES else compact.decode("utf-8")


def forwarding_denials(policies: Iterable[Mapping[str, Any]], region: str, account_id: str,
                       group: str) -> list[str]:
    """The forwarding actions the policies do not allow on the trail's stream (empty: all
    allowed), each with why: CloudTrail refuses such a role (InvalidCloudWatchLogsRoleArnException)."""
    resource = stream_arn(region, account_id, group, stream_name(account_id, region))
    statements = [s for policy in policies for s in _statements(policy)]
    return [f"{action}: {why}" for action in FORWARDING_ACTIONS
            if (why := _decision(statements, action, resource)) is not None]


def _statements(policy: object) -> list[Mapping[str, Any]]:
    if not isinstance(policy, Mapping):
        return []  # not a policy document: it grants nothing
    found = policy.get("Statement", [])
    items = found if isinstance(found, list) else [found]
    return [s for s in items if isinstance(s, Mapping)]


def _decision(statements: list[Mapping[str, Any]], action: str, resource: str) -> str | None:
    """None when allowed; otherwise the reason it is not."""
    applying = [s for s in statements if _applies(s, action, resource)]
    if any(s.get("Effect") == "Deny" for s in applying):
        return f"explicitly denied on {resource}"
    allows = [s for s in applying if s.get("Effect") == "Allow"]
    if not allows:
        return f"no statement allows it on {resource}"
    if all(_conditional(s) for s in allows):
        # Conditions depend on the request context, which a check at configuration time lacks.
        return "allowed only under a Condition; allow it without one"
    return None


def _conditional(statement: Mapping[str, Any]) -> bool:
    return "Condition" in statement and statement["Condition"] != {}


def _applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    return (_matches_field(statement, "Action", "NotAction", action, fold=True)
            and _matches_field(statement, "Resource", "NotResource", resource, fold=False))


def _matches_field(statement: Mapping[str, Any], name: str, negated: str, value: str, fold: bool) -> bool:
    if (name in statement) == (negated in statement):
        return False  # neither (IAM requires one) or both (IAM refuses that): applies to nothing
    patterns = _patterns(statement[name] if name in statement else statement[negated])
    if patterns is None:
        return False  # malformed: a negated form must not turn "no pattern" into "everything"
    matched = any(_glob_match(p, value, fold) for p in patterns)
    return matched if name in statement else not matched


def _patterns(value: object) -> list[str] | None:
    """The patterns of a string or a non-empty list of strings; None for anything else."""
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) for v in items):
        return None
    return [v for v in items if isinstance(v, str)]


def _glob_match(pattern: str, value: str, fold: bool) -> bool:
    """IAM wildcards: `*` any run (also across ':' and '/'), `?` one character, nothing else special.

    Greedy with one backtrack point (the last `*`), so O(len(pattern) * len(value)) at worst: a
    regex translation backtracks exponentially on patterns like `*a*a*a*a*a*a*a*a*a*a*b`, and
    policy documents come from users."""
    if fold:
        pattern, value = pattern.lower(), value.lower()
    p = v = 0
    star, resume = -1, 0
    while v < len(value):
        if p < len(pattern) and pattern[p] == "*":
            star, resume = p, v
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", value[v]):
            p += 1
            v += 1
        elif star >= 0:
            p, resume = star + 1, resume + 1
            v = resume
        else:
            return False
    return pattern[p:].strip("*") == ""


__all__ = ["FORWARDING_ACTIONS", "MAX_LOG_EVENT_BYTES", "default_log_group", "forwarding_denials",
           "log_group_arn", "log_message", "stream_arn", "stream_name"]
