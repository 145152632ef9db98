"""pySigma's parsed rule compiled into trailkeeper's matcher (`_nodes`), or refused.

pySigma parses the YAML, the modifiers and the condition (`1 of selection_*`, `not`, brackets)
into a condition tree whose leaves are (field, typed value) pairs; this module checks what the
tree may hold and turns it into nodes. Anything it cannot evaluate faithfully raises
Unsupported with a reason: no rule is ever kept that would match everything or nothing by
accident.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem
from sigma.rule import SigmaRule as ParsedRule
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from trailkeeper.rules.sigma._errors import Unsupported
from trailkeeper.rules.sigma._nodes import (
    COMPARISONS,
    AbsentLeaf,
    CidrLeaf,
    CompareLeaf,
    FieldRefLeaf,
    KeywordLeaf,
    Node,
    NotOf,
    TextLeaf,
    all_of,
    any_of,
)
from trailkeeper.rules.sigma._record import FieldPath, number_text
from trailkeeper.rules.sigma._strings import Part, TextTest, compile_parts, regex_test

Placeholders = Mapping[str, Sequence[str]]

SUPPORTED_MODIFIERS: Final = frozenset({
    "all", "contains", "startswith", "endswith", "cased", "re", "i", "ignorecase", "m", "multiline",
    "s", "dotall", "cidr", "exists", "fieldref", "expand", "neq", "gt", "gte", "lt", "lte",
})
# Why each modifier pySigma knows is refused (unknown ones pySigma itself reports).
REFUSED_MODIFIERS: Final[dict[str, str]] = {
    **dict.fromkeys(("base64", "base64offset"), "matches base64-encoded text, which CloudTrail records never carry"),
    **dict.fromkeys(("utf16", "utf16be", "wide"), "matches UTF-16 bytes; CloudTrail records are UTF-8 JSON text"),
    "windash": "expands Windows command-line dashes; CloudTrail records hold no command lines",
    **dict.fromkeys(("minute", "hour", "day", "week", "month", "year"),
                    "time-part modifiers are not implemented (eventTime formats vary)"),
}
REFUSED_STATUSES: Final[dict[str, str]] = {
    "deprecated": "its authors retired it; use the rule that replaces it (see `related:`)",
    "unsupported": "SigmaHQ marks it as needing features no backend supports",
}
LOGSOURCE: Final = {"product": "aws", "service": "cloudtrail"}
_PY_FLAGS: Final = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}


def compile_rule(parsed: ParsedRule, placeholders: Placeholders) -> Node:
    """The rule's matcher; Unsupported names the first thing that prevents one."""
    check_status(parsed)
    check_logsource(parsed)
    check_detections(parsed, placeholders)
    conditions = parsed.detection.condition
    for text in conditions:
        if "|" in text:
            raise Unsupported(f"condition {text!r}: aggregations (`| count() ...`) are not supported; "
                              "write a plain condition and use the `trailkeeper: {threshold: ...}` attribute")
    compiler = _Compiler(placeholders)
    # Several conditions are several searches of one rule: an event matching any of them matches.
    return any_of([compiler.condition(parsed_condition.parse()) for parsed_condition in parsed.detection.parsed_condition])


def check_status(parsed: ParsedRule) -> None:
    status = parsed.status.name.lower() if parsed.status else None
    if status in REFUSED_STATUSES:
        raise Unsupported(f"status {status}: {REFUSED_STATUSES[status]}")


def check_logsource(parsed: ParsedRule) -> None:
    source = parsed.logsource
    found = {"product": source.product, "service": source.service}
    if {key: (value or "").lower() for key, value in found.items()} != LOGSOURCE or source.category:
        shown = ", ".join(f"{key}: {value}" for key, value in
                          (("category", source.category), *found.items()) if value)
        raise Unsupported(f"logsource {{{shown}}} is not CloudTrail (product: aws, service: cloudtrail)")


def check_detections(parsed: ParsedRule, placeholders: Placeholders) -> None:
    detections = parsed.detection.detections
    if "timeframe" in detections:
        raise Unsupported("detection.timeframe (an aggregation window) is not supported; "
                          "use the `trailkeeper: {threshold_window: ...}` attribute")
    for name, detection in detections.items():
        for item in _items(detection):
            _check_item(name, item, placeholders)


def _items(detection: SigmaDetection) -> Iterator[SigmaDetectionItem]:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            yield from _items(item)
        else:
            yield item


def _check_item(name: str, item: SigmaDetectionItem, placeholders: Placeholders) -> None:
    where = f"detection {name!r}, " + (f"field {item.field!r}" if item.field else "keywords")
    modifiers = [reverse_modifier_mapping[modifier.__name__] for modifier in item.modifiers]
    for modifier in modifiers:
        if modifier in REFUSED_MODIFIERS:
            raise Unsupported(f"{where}: modifier {modifier!r} {REFUSED_MODIFIERS[modifier]}")
        if modifier not in SUPPORTED_MODIFIERS:
            raise Unsupported(f"{where}: modifier {modifier!r} is not supported")
    if not item.value:
        raise Unsupported(f"{where}: an empty value list; write `null` for a missing field")
    if "expand" in modifiers:
        names = {part.name for value in item.value for part in _parts_of(value) if isinstance(part, Placeholder)}
        if not names:
            raise Unsupported(f"{where}: modifier 'expand' without a %placeholder% in the value")
        missing = sorted(names - {key for key, values in placeholders.items() if values})
        if missing:
            shown = ", ".join(f"%{key}%" for key in missing)
            raise Unsupported(f"{where}: placeholder {shown} has no configured values "
                              "(set them in the Sigma placeholders configuration)")


def _parts_of(value: SigmaType) -> list[Any]:
    if isinstance(value, SigmaString):
        return list(value.s)
    if isinstance(value, SigmaRegularExpression):
        return list(value.regexp.s)
    return []


class _Compiler:
    def __init__(self, placeholders: Placeholders) -> None:
        self.placeholders = placeholders

    def condition(self, item: Any) -> Node:
        if isinstance(item, ConditionAND):
            return all_of([self.condition(arg) for arg in item.args])
        if isinstance(item, ConditionOR):
            return any_of([self.condition(arg) for arg in item.args])
        if isinstance(item, ConditionNOT):
            return NotOf(self.condition(item.args[0]))
        if isinstance(item, ConditionFieldEqualsValueExpression):
            return self.field(FieldPath(item.field), item.value)
        if isinstance(item, ConditionValueExpression):
            return self.keyword(item.value)
        raise Unsupported(f"condition element {type(item).__name__} is not supported")

    def field(self, path: FieldPath, value: SigmaType) -> Node:
        if isinstance(value, SigmaExpansion):
            return any_of([self.field(path, item) for item in value.values])
        if isinstance(value, SigmaNull):
            return AbsentLeaf(path, want_absent=True)
        if isinstance(value, SigmaExists):
            return AbsentLeaf(path, want_absent=not value.exists)
        if isinstance(value, SigmaCompareExpression):
            return self.compare(path, value)
        if isinstance(value, SigmaCIDRExpression):
            return CidrLeaf(path, value.network)
        if isinstance(value, SigmaFieldReference):
            return FieldRefLeaf(path, FieldPath(value.field), value.starts_with, value.ends_with)
        if isinstance(value, SigmaRegularExpression):
            return TextLeaf(path, False, [regex_test(self.regex(value))])
        fold, tests = self.text_tests(value)
        return TextLeaf(path, fold, tests)

    def keyword(self, value: SigmaType) -> Node:
        if isinstance(value, SigmaRegularExpression):
            return KeywordLeaf(False, [regex_test(self.regex(value))])
        if isinstance(value, SigmaString):
            value = _surrounded(value)
        fold, tests = self.text_tests(value)
        return KeywordLeaf(fold, tests)

    def text_tests(self, value: SigmaType) -> tuple[bool, list[TextTest]]:
        """Equality-style tests (with wildcards) for strings, numbers and booleans."""
        if isinstance(value, SigmaBool):
            return True, [compile_parts(["true" if value.boolean else "false"], True)]
        if isinstance(value, SigmaNumber):
            return True, [compile_parts([number_text(value.number)], True)]
        if isinstance(value, SigmaString):
            fold = not isinstance(value, SigmaCasedString)
            return fold, [compile_parts(parts, fold) for parts in self.expand(value)]
        raise Unsupported(f"a value of type {type(value).__name__} cannot be matched here")

    def expand(self, value: SigmaString) -> list[list[Part]]:
        """The value's parts, once per combination of configured placeholder values."""
        if not value.contains_placeholder():
            return [_plain_parts(value.s)]

        def values_of(placeholder: Placeholder) -> Iterator[SigmaString]:
            for text in self.placeholders.get(placeholder.name, ()):
                yield SigmaString(text)

        try:
            expanded = value.replace_placeholders(values_of)
        except SigmaError as e:
            raise Unsupported(f"expanding placeholders: {e.args[0] if e.args else e}") from e
        return [_plain_parts(item.s) for item in expanded]

    def compare(self, path: FieldPath, value: SigmaCompareExpression) -> Node:
        op = value.op.name.lower()
        if op not in COMPARISONS:  # pySigma 2 turns `neq` into a negated item, not this
            raise Unsupported(f"comparison {op!r} is not supported")
        return CompareLeaf(path, op, value.number.number)

    def regex(self, value: SigmaRegularExpression) -> re.Pattern[str]:
        flags = 0
        for flag in value.flags:
            flags |= _PY_FLAGS[flag]
        text = "".join(self._regex_piece(part) for part in value.regexp.s)
        try:
            return re.compile(text, flags)
        except (re.error, RecursionError, OverflowError) as e:
            raise Unsupported(f"regular expression {text!r} is invalid: {e}") from e

    def _regex_piece(self, part: Any) -> str:
        if isinstance(part, Placeholder):
            choices = [re.escape(text) for text in self.placeholders.get(part.name, ())]
            return "(?:" + "|".join(choices) + ")"
        if isinstance(part, SpecialChars):
            return "*" if part is SpecialChars.WILDCARD_MULTI else "?"
        return str(part)


def _plain_parts(parts: Sequence[Any]) -> list[Part]:
    out: list[Part] = []
    for part in parts:
        if isinstance(part, Placeholder):  # checked before compiling; defensive
            raise Unsupported(f"placeholder %{part.name}% has no configured values")
        out.append(part)
    return out


def _surrounded(value: SigmaString) -> SigmaString:
    """Keywords match anywhere in the record, as `contains` does."""
    if not value.startswith(SpecialChars.WILDCARD_MULTI):
        value = SpecialChars.WILDCARD_MULTI + value
    if not value.endswith(SpecialChars.WILDCARD_MULTI):
        value = value + SpecialChars.WILDCARD_MULTI
    return value


