"""Advanced event selectors (CloudTrail's `AdvancedEventSelectors`): validation and matching.

A record is selected when any selector matches; a selector matches when every one of its
field selectors does; a field selector holds when, for each operator it uses, the field's
value (any of them, for multi-valued fields such as resources.ARN) satisfies it. Equals,
StartsWith and EndsWith need some value to match one of the listed strings; NotEquals,
NotStartsWith and NotEndsWith need no value to match any of them.
"""

from __future__ import annotations

import re
from typing import Any

from trailkeeper.errors import TrailError

POSITIVE = ("Equals", "StartsWith", "EndsWith")
NEGATIVE = ("NotEquals", "NotStartsWith", "NotEndsWith")
OPERATORS = POSITIVE + NEGATIVE
FIELDS = ("eventCategory", "readOnly", "eventSource", "eventName", "eventType", "resources.type", "resources.ARN",
          "userIdentity.arn", "errorCode")
MAX_CONDITION_VALUES = 500
_FIELD_RE = re.compile(r"[\w.]{1,1000}")


def _bad(message: str) -> TrailError:
    return TrailError("InvalidEventSelectorsException", message)


def validate_advanced(selectors: object) -> tuple[dict[str, Any], ...]:
    """Check AdvancedEventSelectors as CloudTrail would; return them normalised."""
    if not isinstance(selectors, list) or not selectors:
        raise _bad("AdvancedEventSelectors must be a non-empty list.")
    out: list[dict[str, Any]] = []
    total = 0
    for i, sel in enumerate(selectors):
        if not isinstance(sel, dict) or not isinstance(sel.get("FieldSelectors"), list) or not sel["FieldSelectors"]:
            raise _bad(f"AdvancedEventSelectors[{i}] needs a non-empty FieldSelectors list.")
        name = sel.get("Name", "")
        if not isinstance(name, str) or len(name) > 1000:
            raise _bad(f"AdvancedEventSelectors[{i}].Name must be a string of at most 1000 characters.")
        fields = []
        for j, fs in enumerate(sel["FieldSelectors"]):
            where = f"AdvancedEventSelectors[{i}].FieldSelectors[{j}]"
            field = fs.get("Field") if isinstance(fs, dict) else None
            if not isinstance(field, str) or not _FIELD_RE.fullmatch(field):
                raise _bad(f"{where}.Field must be 1-1000 word characters, digits, '.' or '_'.")
            if field not in FIELDS:
                raise _bad(f"{where}.Field {field!r} is not supported; use one of {', '.join(FIELDS)}.")
            ops = {op: fs[op] for op in OPERATORS if op in fs}
            if not ops:
                raise _bad(f"{where} needs at least one of {', '.join(OPERATORS)}.")
            for op, values in ops.items():
                if not isinstance(values, list) or not values or not all(
                        isinstance(v, str) and 1 <= len(v) <= 2048 for v in values):
                    raise _bad(f"{where}.{op} must be a list of 1-2048-character strings.")
                total += len(values)
            fields.append({"Field": field, **ops})
        out.append({"Name": name, "FieldSelectors": fields} if name else {"FieldSelectors": fields})
    if total > MAX_CONDITION_VALUES:
        raise _bad(f"At most {MAX_CONDITION_VALUES} condition values are allowed, got {total}.")
    return tuple(out)


def _values(record: dict[str, Any], field: str) -> list[str]:
    if field == "readOnly":
        return ["true" if record.get("readOnly") is True else "false"]
    if field == "eventCategory":
        return [str(record.get("eventCategory", "Management"))]
    if field.startswith("resources."):
        attr = field.split(".", 1)[1]
        return [str(r[attr]) for r in record.get("resources") or [] if isinstance(r, dict) and attr in r]
    if field == "userIdentity.arn":
        identity = record.get("userIdentity")
        return [str(identity["arn"])] if isinstance(identity, dict) and "arn" in identity else []
    value = record.get(field)
    return [str(value)] if value is not None else []


def _matches(kind: str, value: str, condition: str) -> bool:
    if kind.endswith("Equals"):
        return value == condition
    if kind.endswith("StartsWith"):
        return value.startswith(condition)
    return value.endswith(condition)


def _holds(op: str, conditions: list[str], values: list[str]) -> bool:
    hit = any(_matches(op, v, c) for v in values for c in conditions)
    return hit if op in POSITIVE else not hit


def selects_advanced(selectors: tuple[dict[str, Any], ...], record: dict[str, Any]) -> bool:
    return any(
        all(_holds(op, fs[op], _values(record, fs["Field"])) for fs in sel["FieldSelectors"] for op in OPERATORS if op in fs)
        for sel in selectors
    )
