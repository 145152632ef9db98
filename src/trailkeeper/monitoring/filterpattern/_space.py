"""Space-delimited patterns `[ip, user, ..., status_code = 4*, bytes > 1000]`.

The event is split on runs of whitespace; `[...]` and `"..."` make one field (without the
brackets or quotes). Without `...` the event must have exactly as many fields as the pattern;
`...` (at most once) stands for any number of fields, zero included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from trailkeeper.monitoring.filterpattern._cursor import Cursor
from trailkeeper.monitoring.filterpattern._match import NAME_CHARS, Event, Match
from trailkeeper.monitoring.filterpattern._values import (
    VALUE_END_SPACE,
    RegexBudget,
    Value,
    check_operator,
    compare_text,
    read_operator,
    read_value,
    reject_single_boolean,
)

ELLIPSIS = "..."
# A bracketed or quoted run first; an unterminated '[' or '"' is just text.
_EVENT_FIELD = re.compile(r'\[([^\]]*)\]|"([^"]*)"|([^ \t\r\n]+)')


@dataclass(frozen=True)
class Condition:
    op: str
    value: Value


@dataclass(frozen=True)
class Field:
    """A named column; `any_of` is an OR of AND-groups (&& binds tighter than ||)."""

    name: str
    any_of: tuple[tuple[Condition, ...], ...] = ()

    def holds(self, text: str) -> bool:
        if not self.any_of:
            return True
        return any(all(compare_text(c.op, c.value, text) for c in group) for group in self.any_of)

    def render(self) -> str:
        if not self.any_of:
            return self.name
        groups = (
            " && ".join(f"{self.name} {c.op} {c.value.render()}" for c in group)
            for group in self.any_of
        )
        return " || ".join(groups)


@dataclass(frozen=True)
class SpaceBody:
    fields: tuple[Field, ...]
    _before: tuple[Field, ...] = field(init=False, compare=False, repr=False)
    _after: tuple[Field, ...] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if ELLIPSIS in names:
            cut = names.index(ELLIPSIS)
            object.__setattr__(self, "_before", self.fields[:cut])
            object.__setattr__(self, "_after", self.fields[cut + 1 :])
        else:
            object.__setattr__(self, "_before", self.fields)
            object.__setattr__(self, "_after", None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.name != ELLIPSIS)

    def match(self, event: Event) -> Match | None:
        values = split_event(event.message)
        before, after = self._before, self._after
        if after is None:
            if len(values) != len(before):
                return None
            after = ()
        elif len(values) < len(before) + len(after):
            return None
        tail = values[len(values) - len(after) :] if after else []
        pairs = list(zip(before, values, strict=False)) + list(zip(after, tail, strict=True))
        if not all(f.holds(text) for f, text in pairs):
            return None
        return Match(_extracted(values, pairs, len(before), len(values) - len(after)))

    def render(self) -> str:
        return "[" + ", ".join(f.render() for f in self.fields) + "]"


def split_event(message: str) -> list[str]:
    # Exactly one of the three groups takes part in each match; lastindex names it.
    return [m.group(m.lastindex or 0) for m in _EVENT_FIELD.finditer(message)]


def _extracted(
    values: list[str], pairs: list[tuple[Field, str]], gap_start: int, gap_end: int
) -> dict[str, str]:
    # As AWS's TestMetricFilter example shows, fields under `...` come back by position ($1..).
    out = {f"${i + 1}": values[i] for i in range(gap_start, gap_end)}
    out.update({f"${f.name}": text for f, text in pairs})
    return out


# -- parsing ------------------------------------------------------------------------------


def parse_space(cur: Cursor, budget: RegexBudget) -> SpaceBody:
    cur.take("[")
    cur.skip_ws()
    if cur.startswith("]"):
        raise cur.error("empty pattern []: name the fields, e.g. [ip, user, ..., status_code]")
    fields: list[Field] = []
    while True:
        cur.skip_ws()
        at = cur.pos
        fields.append(_parse_field(cur, budget))
        _check_unique(cur, fields, at)
        cur.skip_ws()
        reject_single_boolean(cur)
        if cur.take("]"):
            break
        if not cur.take(","):
            raise cur.error(f"expected ',' or ']' at {cur.shown()}")
        cur.skip_ws()
        if cur.startswith("]"):
            raise cur.error("trailing comma: remove it, or name the extra field")
    cur.skip_ws()
    if not cur.at_end():
        raise cur.error("text after the closing ]: remove it")
    return SpaceBody(tuple(fields))


def _check_unique(cur: Cursor, fields: list[Field], at: int) -> None:
    name = fields[-1].name
    if name in (f.name for f in fields[:-1]):
        if name == ELLIPSIS:
            raise cur.error("'...' may appear at most once in a pattern", at)
        raise cur.error(f"the field name '{name}' is used twice: give each field its own", at)


def _parse_field(cur: Cursor, budget: RegexBudget) -> Field:
    if cur.take(ELLIPSIS):
        return Field(ELLIPSIS)
    name = cur.take_while(NAME_CHARS)
    if not name:
        raise cur.error(
            f"expected a field name at {cur.shown()} (letters, digits, '_' and '-') or '...'"
        )
    cur.skip_ws()
    if cur.at_end() or cur.peek() in ",]":
        return Field(name)
    groups: list[list[Condition]] = [[_parse_condition(cur, budget)]]
    while True:
        cur.skip_ws()
        reject_single_boolean(cur)
        if cur.take("&&"):
            groups[-1].append(_next_condition(cur, name, budget))
        elif cur.take("||"):
            groups.append([_next_condition(cur, name, budget)])
        else:
            return Field(name, tuple(tuple(group) for group in groups))


def _next_condition(cur: Cursor, name: str, budget: RegexBudget) -> Condition:
    cur.skip_ws()
    at = cur.pos
    other = cur.take_while(NAME_CHARS)
    if other != name:
        raise cur.error(
            f"&& and || may only join conditions on the same field ('{name}'): "
            f"give '{other or cur.shown()}' a field of its own",
            at,
        )
    cur.skip_ws()
    return _parse_condition(cur, budget)


def _parse_condition(cur: Cursor, budget: RegexBudget) -> Condition:
    op = read_operator(cur)
    cur.skip_ws()
    at = cur.pos
    value = read_value(cur, VALUE_END_SPACE, budget)
    check_operator(cur, op, value, at)
    return Condition(op, value)
