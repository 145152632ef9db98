"""What the alerts read from a CloudTrail record: field values by dotted path, the principal,
the dedup key, the summary a notification carries, and the false-positive switches' tests.

All pure functions of the record (and the settings), so the hot path reads no database for them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from trailkeeper._internal.glob import segments_match
from trailkeeper.alerts.model import (
    IGNORED_ALLOW_LISTED,
    IGNORED_FAILED_CALL,
    IGNORED_FEDERATED_CONSOLE_LOGIN,
    IGNORED_SERVICE_PRINCIPAL,
    Suppression,
)
from trailkeeper.alerts.settings import AlertSettings

_FEDERATED_TYPES = frozenset({"AssumedRole", "SAMLUser", "WebIdentityUser"})
# IAM Identity Center (SSO) provisions its roles under this path and name prefix.
_SSO_ROLE_PATH = ":role/aws-reserved/sso.amazonaws.com/"
_SSO_ROLE_PREFIX = "AWSReservedSSO_"
SUMMARY_FIELDS = ("eventID", "eventName", "eventSource", "sourceIPAddress", "eventTime", "awsRegion")


def lookup(value: Any, path: str) -> Any:
    """The value at dotted `path` in nested objects, None when absent. A key that itself holds
    dots (a flattened record) is found too, as Sigma rules expect."""
    if not isinstance(value, Mapping):
        return None
    if path in value:
        return value[path]
    head, dot, rest = path.partition(".")
    while dot:
        if head in value:
            found = lookup(value[head], rest)
            if found is not None:
                return found
        step, dot, rest = rest.partition(".")
        head = f"{head}.{step}"
    return None


def text(value: Any) -> str | None:
    """A field value as text: strings as they are, anything else as compact JSON (so `false`
    matches the string "false", as Sigma compares); None for an absent or null field."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def principal(record: Mapping[str, Any]) -> str:
    """Who acted: userIdentity.arn, else its principalId, else `accountId:type`."""
    identity = record.get("userIdentity")
    if not isinstance(identity, Mapping):
        return "unknown"
    for key in ("arn", "principalId"):
        found = identity.get(key)
        if isinstance(found, str) and found:
            return found
    return f"{identity.get('accountId') or 'unknown'}:{identity.get('type') or 'unknown'}"


def dedup_key(rule_id: str, record: Mapping[str, Any], dedup_fields: Sequence[str] | None) -> str:
    """The rule id and the values the key is made of, as a JSON array (unambiguous whatever
    the values hold); the rule is always part of it, so two rules never share an alert."""
    values = [principal(record)] if dedup_fields is None else [text(lookup(record, f)) or "" for f in dedup_fields]
    return orjson.dumps([rule_id, *values]).decode()


def summary(record: Mapping[str, Any]) -> dict[str, str | None]:
    found = {name: text(record.get(name)) for name in SUMMARY_FIELDS}
    found["principal"] = principal(record)
    return found


def false_positive(record: Mapping[str, Any], settings: AlertSettings,
                   allow_list: Sequence[tuple[str, Sequence[str]]]) -> tuple[str, str] | None:
    """(reason code, detail) when a switch or the allow-list says to ignore this record.
    `allow_list` is `compile_allow_list(settings.allowed_principals)`, made once per batch."""
    identity = record.get("userIdentity")
    identity = identity if isinstance(identity, Mapping) else {}
    if settings.ignore_service_principals and _service_principal(record, identity):
        return IGNORED_SERVICE_PRINCIPAL, "a call an AWS service made"
    if settings.ignore_federated_console_logins and _federated_console_login(record, identity):
        return IGNORED_FEDERATED_CONSOLE_LOGIN, f"console sign-in by {identity.get('type')}"
    if settings.ignore_failed_calls and record.get("errorCode"):
        return IGNORED_FAILED_CALL, f"the call failed ({record.get('errorCode')})"
    pattern = _allowed(identity, allow_list)
    if pattern is not None:
        return IGNORED_ALLOW_LISTED, f"allow-listed by {pattern}"
    return None


def compile_allow_list(patterns: Sequence[str]) -> list[tuple[str, list[str]]]:
    return [(p, p.split("*")) for p in patterns]


def _service_principal(record: Mapping[str, Any], identity: Mapping[str, Any]) -> bool:
    return (identity.get("type") == "AWSService" or bool(identity.get("invokedBy"))
            or record.get("userAgent") == "AWS Internal")


def _federated_console_login(record: Mapping[str, Any], identity: Mapping[str, Any]) -> bool:
    if record.get("eventName") != "ConsoleLogin":
        return False
    if identity.get("type") in _FEDERATED_TYPES:
        return True
    issuer = lookup(identity, "sessionContext.sessionIssuer")
    if not isinstance(issuer, Mapping):
        return False
    return (str(issuer.get("userName") or "").startswith(_SSO_ROLE_PREFIX)
            or _SSO_ROLE_PATH in str(issuer.get("arn") or ""))


def _allowed(identity: Mapping[str, Any], allow_list: Sequence[tuple[str, Sequence[str]]]) -> str | None:
    """The allow-list entry matching the principal's ARN or, for a role session, the role's."""
    if not allow_list:
        return None
    arns = [a for a in (identity.get("arn"), lookup(identity, "sessionContext.sessionIssuer.arn"))
            if isinstance(a, str) and a]
    for pattern, segments in allow_list:
        if any(segments_match(segments, arn) for arn in arns):
            return pattern
    return None


def suppressed_by(suppressions: Sequence[Suppression], rule_id: str,
                  record: Mapping[str, Any]) -> Suppression | None:
    """The first suppression whose rule (if it names one) and every field match the record."""
    for s in suppressions:
        if s.rule_id is not None and s.rule_id != rule_id:
            continue
        if all(_glob_match(pattern, text(lookup(record, path))) for path, pattern in s.fields.items()):
            return s
    return None


def _glob_match(pattern: str, value: str | None) -> bool:
    return value is not None and segments_match(pattern.split("*"), value)
