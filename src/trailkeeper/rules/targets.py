"""What a rule's target receives: the matched bus event, shaped by the target's `Input`,
`InputPath` or `InputTransformer` (EventBridge's three ways; at most one per target).

    shape_input(target, event, rule_arn, rule_name)   # the message text, JSON

- no shaping: the whole event, as JSON;
- `Input`: that constant JSON text, whatever the event;
- `InputPath`: the JSON value at a path of the event (`$`, `$.detail.eventName`, `$.resources[0]`);
- `InputTransformer`: `InputPathsMap` names values by path, and `InputTemplate` places them at
  `<name>`. Inside a JSON string a value is written as string content (its text, escaped);
  elsewhere as JSON. The predefined `<aws.events.rule-arn>`, `<aws.events.rule-name>`,
  `<aws.events.event>` (alias `<aws.events.event.json>`) and `<aws.events.event.ingestion-time>`
  are always there. A path that the event lacks gives the empty string inside a string and
  `null` elsewhere (docs/event-rules.md).
Paths and templates are checked when the target is put (`check_target`), so delivery never
meets a malformed one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from trailkeeper.errors import TrailkeeperError

DEFAULT_MAX_ATTEMPTS: Final = 185  # EventBridge's RetryPolicy defaults
DEFAULT_MAX_AGE_S: Final = 86_400
MIN_MAX_AGE_S: Final = 60
MAX_INPUT: Final = 8192
MAX_INPUT_PATH: Final = 256
MAX_PATHS_MAP: Final = 100
_PATH_STEP = re.compile(r"\.([A-Za-z0-9_@$-]+)|\[(\d+)\]|\['([^'\]]+)'\]")
_PATH_KEY = re.compile(r"[A-Za-z0-9_-]{1,256}")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")
PREDEFINED: Final = ("aws.events.rule-arn", "aws.events.rule-name", "aws.events.event", "aws.events.event.json",
                     "aws.events.event.ingestion-time")


class TargetError(TrailkeeperError):
    """A target's shaping or retry policy is invalid (EventBridge's ValidationException)."""

    code = "ValidationException"
    status = 400


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    max_age_s: int = DEFAULT_MAX_AGE_S


@dataclass(frozen=True)
class InputTransformer:
    template: str
    paths: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    id: str
    arn: str
    input: str | None = None
    input_path: str | None = None
    transformer: InputTransformer | None = None
    retry: RetryPolicy = RetryPolicy()


# ---- paths ------------------------------------------------------------------------------------
def parse_path(path: str) -> list[str | int]:
    """The steps of a JSONPath of the supported form; TargetError when it is not one."""
    if not path.startswith("$"):
        raise TargetError(f"JSON path {path!r} must start with '$'.")
    steps: list[str | int] = []
    at = 1
    while at < len(path):
        found = _PATH_STEP.match(path, at)
        if found is None:
            raise TargetError(f"JSON path {path!r}: unsupported syntax at position {at} (use $.a.b, [0] or ['key']).")
        name, index, quoted = found.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        at = found.end()
    return steps


_MISSING = object()


def value_at(event: Any, steps: list[str | int]) -> Any:
    node = event
    for step in steps:
        present = (isinstance(step, int) and isinstance(node, list) and step < len(node)) or \
            (isinstance(step, str) and isinstance(node, dict) and step in node)
        if not present:
            return _MISSING
        node = node[step]
    return node


# ---- checking ---------------------------------------------------------------------------------
def check_target(target: Target) -> None:
    """Refuse a target whose shaping or retry policy EventBridge would refuse."""
    given = [name for name, value in (("Input", target.input), ("InputPath", target.input_path),
                                      ("InputTransformer", target.transformer)) if value is not None]
    if len(given) > 1:
        raise TargetError(f"Target {target.id}: only one of Input, InputPath and InputTransformer may be given "
                          f"(got {', '.join(given)}).")
    if target.input is not None:
        _check_json(target.input, f"Target {target.id}: Input")
        if len(target.input) > MAX_INPUT:
            raise TargetError(f"Target {target.id}: Input is longer than {MAX_INPUT} characters.")
    if target.input_path is not None:
        if len(target.input_path) > MAX_INPUT_PATH:
            raise TargetError(f"Target {target.id}: InputPath is longer than {MAX_INPUT_PATH} characters.")
        parse_path(target.input_path)
    if target.transformer is not None:
        _check_transformer(target.id, target.transformer)
    _check_retry(target.id, target.retry)


def _check_json(text: str, what: str) -> None:
    try:
        json.loads(text)
    except ValueError as e:
        raise TargetError(f"{what} is not valid JSON: {e}.") from None


def _check_transformer(target_id: str, transformer: InputTransformer) -> None:
    if not 1 <= len(transformer.template) <= MAX_INPUT:
        raise TargetError(f"Target {target_id}: InputTemplate must be 1 to {MAX_INPUT} characters.")
    if len(transformer.paths) > MAX_PATHS_MAP:
        raise TargetError(f"Target {target_id}: InputPathsMap has more than {MAX_PATHS_MAP} entries.")
    for key, path in transformer.paths.items():
        if not _PATH_KEY.fullmatch(key) or key.startswith("aws."):
            raise TargetError(f"Target {target_id}: InputPathsMap key {key!r} must be letters, digits, '_' or '-' "
                              "and must not start with 'aws.'.")
        parse_path(path)
    for name in _PLACEHOLDER.findall(transformer.template):
        if name not in transformer.paths and name not in PREDEFINED:
            raise TargetError(f"Target {target_id}: InputTemplate uses <{name}>, which InputPathsMap does not define.")
    # The template must become JSON once values are placed: try it with stand-ins.
    sample = render(transformer, {"detail": {}}, "arn:aws:events:r:1:rule/x", "x", "1970-01-01T00:00:00Z")
    _check_json(sample, f"Target {target_id}: InputTemplate (with its placeholders filled)")


def _check_retry(target_id: str, retry: RetryPolicy) -> None:
    if not 0 <= retry.max_attempts <= DEFAULT_MAX_ATTEMPTS:
        raise TargetError(f"Target {target_id}: RetryPolicy.MaximumRetryAttempts must be 0 to {DEFAULT_MAX_ATTEMPTS}.")
    if not MIN_MAX_AGE_S <= retry.max_age_s <= DEFAULT_MAX_AGE_S:
        raise TargetError(f"Target {target_id}: RetryPolicy.MaximumEventAgeInSeconds must be {MIN_MAX_AGE_S} to "
                          f"{DEFAULT_MAX_AGE_S}.")


# ---- shaping ----------------------------------------------------------------------------------
def shape_input(target: Target, event: Mapping[str, Any], rule_arn: str, rule_name: str, ingested: str) -> str:
    if target.input is not None:
        return target.input
    if target.input_path is not None:
        value = value_at(event, parse_path(target.input_path))
        return "null" if value is _MISSING else _json(value)
    if target.transformer is not None:
        return render(target.transformer, event, rule_arn, rule_name, ingested)
    return _json(event)


def render(transformer: InputTransformer, event: Mapping[str, Any], rule_arn: str, rule_name: str,
           ingested: str) -> str:
    values: dict[str, Any] = {key: value_at(event, parse_path(path)) for key, path in transformer.paths.items()}
    values.update({"aws.events.rule-arn": rule_arn, "aws.events.rule-name": rule_name,
                   "aws.events.event": dict(event), "aws.events.event.json": dict(event),
                   "aws.events.event.ingestion-time": ingested})
    out: list[str] = []
    in_string = False
    at = 0
    template = transformer.template
    while at < len(template):
        char = template[at]
        found = _PLACEHOLDER.match(template, at) if char == "<" else None
        if found is not None and found.group(1) in values:
            out.append(_placed(values[found.group(1)], in_string))
            at = found.end()
            continue
        if char == "\\" and in_string:
            out.append(template[at:at + 2])
            at += 2
            continue
        if char == '"':
            in_string = not in_string
        out.append(char)
        at += 1
    return "".join(out)


def _placed(value: Any, in_string: bool) -> str:
    if value is _MISSING:
        return "" if in_string else "null"
    if not in_string:
        return _json(value)
    text = value if isinstance(value, str) else _json(value)
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
