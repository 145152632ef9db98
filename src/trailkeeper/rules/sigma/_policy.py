"""The optional per-rule alert policy, a custom top-level attribute pySigma keeps for us:

    trailkeeper:
      dedup: [userIdentity.arn, sourceIPAddress]   # group-by fields of one alert
      dedup_window: 60m                             # how long matches fold into that alert
      threshold: 5                                  # alert only at the 5th match ...
      threshold_window: 1h                          # ... within this window

Durations are whole seconds or a number with s, m, h or d. Every value is checked; a bad one
refuses the rule (an alert policy silently ignored would page someone too often or never).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from trailkeeper.rules.sigma._errors import Unsupported

ATTRIBUTE: Final = "trailkeeper"
KEYS: Final = frozenset({"dedup", "dedup_window", "threshold", "threshold_window"})
DEFAULT_DEDUP_WINDOW_S: Final = 3600  # Panther's default, used by most of its CloudTrail rules
MAX_WINDOW_S: Final = 86_400  # a day, Matano's cap: longer windows hide new incidents
MAX_DEDUP_FIELDS: Final = 3  # Elastic's suppression limit; more is a per-event key in disguise
MAX_THRESHOLD: Final = 10_000
# Unique per event: a dedup key made of them never folds two matches together.
PER_EVENT_FIELDS: Final = frozenset({"eventID", "requestID", "eventTime", "sharedEventID"})
_DURATION = re.compile(r"([0-9]{1,9})([smhd]?)")
_UNIT_S: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True)
class AlertPolicy:
    dedup_fields: tuple[str, ...] | None = None
    dedup_window_s: int | None = None
    threshold: int | None = None
    threshold_window_s: int | None = None


def alert_policy(custom_attributes: Mapping[str, Any]) -> AlertPolicy:
    """The rule's policy (all None when it has no `trailkeeper:` attribute)."""
    spec = custom_attributes.get(ATTRIBUTE)
    if spec is None:
        return AlertPolicy()
    if not isinstance(spec, Mapping):
        raise Unsupported(f"`{ATTRIBUTE}:` must be a mapping with keys {', '.join(sorted(KEYS))}")
    unknown = sorted(str(key) for key in spec if key not in KEYS)
    if unknown:
        raise Unsupported(f"`{ATTRIBUTE}:` has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KEYS))}")
    dedup = _dedup_fields(spec.get("dedup"))
    dedup_window = _window(spec, "dedup_window")
    threshold = _threshold(spec.get("threshold"))
    threshold_window = _window(spec, "threshold_window")
    if dedup_window is not None and dedup is None:
        dedup = ()  # a window alone folds every match of the rule into one alert
    if dedup is not None and dedup_window is None:
        dedup_window = DEFAULT_DEDUP_WINDOW_S
    if (threshold is None) != (threshold_window is None):
        raise Unsupported(f"`{ATTRIBUTE}:` threshold and threshold_window go together (N matches within a window)")
    return AlertPolicy(dedup, dedup_window, threshold, threshold_window)


def _dedup_fields(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    fields = [value] if isinstance(value, str) else value
    if not isinstance(fields, list) or not all(isinstance(field, str) and field for field in fields):
        raise Unsupported(f"`{ATTRIBUTE}: dedup` must be a field path or a list of field paths")
    if not 1 <= len(fields) <= MAX_DEDUP_FIELDS or len(set(fields)) != len(fields):
        raise Unsupported(f"`{ATTRIBUTE}: dedup` takes 1 to {MAX_DEDUP_FIELDS} distinct fields")
    unique = sorted(set(fields) & PER_EVENT_FIELDS)
    if unique:
        raise Unsupported(f"`{ATTRIBUTE}: dedup` on {', '.join(unique)}: unique per event, it would never deduplicate")
    return tuple(fields)


def _window(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    seconds = duration_seconds(value)
    if seconds is None or not 1 <= seconds <= MAX_WINDOW_S:
        raise Unsupported(f"`{ATTRIBUTE}: {key}` {value!r}: give 1 s to 1 d, e.g. 300, 15m, 1h, 1d")
    return seconds


def duration_seconds(value: Any) -> int | None:
    """Seconds in `value` (an int, or text such as 90, 90s, 15m, 1h, 1d); None if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    found = _DURATION.fullmatch(value.strip())
    if found is None:
        return None
    return int(found.group(1)) * _UNIT_S[found.group(2)]


def _threshold(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_THRESHOLD:
        raise Unsupported(f"`{ATTRIBUTE}: threshold` {value!r}: give a whole number from 1 to {MAX_THRESHOLD}")
    return value
