"""`parse`: kind detection, limits, and the `FilterPattern` every kind shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from trailkeeper.monitoring.filterpattern._cursor import WHITESPACE, Cursor, FilterPatternError
from trailkeeper.monitoring.filterpattern._json import (
    JsonBody,
    alternatives,
    normalize,
    parse_json,
)
from trailkeeper.monitoring.filterpattern._json import render as render_json
from trailkeeper.monitoring.filterpattern._match import Event, Match, Path, parse_json_selector
from trailkeeper.monitoring.filterpattern._space import SpaceBody, parse_space
from trailkeeper.monitoring.filterpattern._terms import AllBody, RegexBody, parse_terms
from trailkeeper.monitoring.filterpattern._values import RegexBudget, read_regex

Kind = Literal["all", "terms", "json", "space", "regex"]

MAX_PATTERN_LENGTH = 1024
MAX_REGEXES_PER_PATTERN = 2
MAX_REGEX_PATTERNS_PER_LOG_GROUP = 5  # metric and subscription filters together
NO_DIMENSIONS_MESSAGE = "The specified filter pattern does not support dimensions"


class Body(Protocol):
    def match(self, event: Event) -> Match | None: ...

    def render(self) -> str: ...


@dataclass(frozen=True)
class FilterPattern:
    """A parsed filter pattern. Two patterns are equal when their parsed trees are equal,
    whatever whitespace, parentheses or quoting their texts used."""

    kind: Kind
    body: Body
    regex_count: int = 0
    text: str = field(default="", compare=False)

    def match(self, message: str | Event) -> Match | None:
        """The match for one log event's message, or None. Pass an `Event` to share one JSON
        parse between the filters of a log group."""
        return self.body.match(message if isinstance(message, Event) else Event(message))

    def value_of(self, selector: str, message: str | Event) -> float | None:
        """The metric value `selector` takes for `message`: None when the pattern does not
        match or the event has no number there. Raises FilterPatternError for a selector this
        kind of pattern cannot provide."""
        check_metric_selector(self, selector)
        found = self.match(message)
        return None if found is None else found.number(selector)

    @property
    def supports_dimensions(self) -> bool:
        """Only JSON and space-delimited patterns extract values that dimensions can name."""
        return self.kind in ("json", "space")

    @property
    def canonical(self) -> str:
        """Text that parses back to an equal pattern (every string quoted)."""
        return self.body.render()

    def index_key(self) -> frozenset[tuple[Path, str]] | None:
        """(selector, exact string) pairs at least one of which an event must have for this
        pattern to match (`eventName` preferred), or None when the pattern has no such
        condition (terms, space-delimited, regex, globs, `!=`, numbers, predicates)."""
        return alternatives(self.body.expr) if isinstance(self.body, JsonBody) else None

    def normalized(self) -> str:
        """Canonical text with each &&/|| flattened and its operands sorted (JSON only;
        other kinds return `canonical`): equal for texts that differ only in whitespace,
        parentheses, quoting and operand order."""
        if isinstance(self.body, JsonBody):
            return "{ " + render_json(normalize(self.body.expr)) + " }"
        return self.canonical


def parse(text: str) -> FilterPattern:
    """Parse a filter pattern, or raise FilterPatternError naming the position and the fix."""
    if len(text) > MAX_PATTERN_LENGTH:
        raise FilterPatternError(
            f"a filter pattern has at most {MAX_PATTERN_LENGTH} characters, this one has "
            f"{len(text)}: shorten it or split it into several filters",
            MAX_PATTERN_LENGTH,
            text,
        )
    start = len(text) - len(text.lstrip(WHITESPACE))
    end = len(text.rstrip(WHITESPACE))
    if start >= end or text[start:end] == '" "':
        return FilterPattern("all", AllBody(), 0, text)
    cur = Cursor(text, start, end)
    budget = RegexBudget(MAX_REGEXES_PER_PATTERN)
    kind, body = _parse_body(cur, budget)
    return FilterPattern(kind, body, budget.used, text)


def _parse_body(cur: Cursor, budget: RegexBudget) -> tuple[Kind, Body]:
    first, last = cur.text[cur.pos], cur.text[cur.end - 1]
    if first == "{":
        return "json", parse_json(cur, budget)
    if first == "[":
        return "space", parse_space(cur, budget)
    if first == "%" and last == "%" and cur.end - cur.pos >= 2:
        regex = read_regex(cur, budget)
        if not cur.at_end():
            raise cur.error("text after the closing %: a standalone regex is the whole pattern")
        return "regex", RegexBody(regex)
    return "terms", parse_terms(cur)


def check_metric_selector(pattern: FilterPattern, selector: str) -> None:
    """Refuse a metric-value or dimension selector `pattern` cannot provide.

    JSON patterns take `$.path` selectors (as in the pattern itself); space-delimited patterns
    take `$name` for one of their named fields. Term, regex and match-all patterns extract
    nothing: their metric value must be a number such as "1". Positions are in `selector`.
    """
    if pattern.kind == "json":
        parse_json_selector(selector)
        return
    if isinstance(pattern.body, SpaceBody):
        names = pattern.body.names
        if not selector.startswith("$") or selector[1:] not in names:
            listed = ", ".join(f"${n}" for n in names)
            raise FilterPatternError(
                f"'{selector}' is not a field of this pattern: use one of {listed}", 0, selector
            )
        return
    label = {"all": "match-all", "terms": "term"}.get(pattern.kind, pattern.kind)
    raise FilterPatternError(
        f"a {label} pattern extracts no values, so '{selector}' cannot be used: use a "
        "number such as 1 as the metric value, or a JSON or space-delimited pattern",
        0,
        selector,
    )


def check_dimensions(pattern: FilterPattern) -> None:
    """Raise AWS's error (PutMetricFilter) when `pattern` cannot carry dimensions."""
    if not pattern.supports_dimensions:
        raise FilterPatternError(
            NO_DIMENSIONS_MESSAGE,
            0,
            pattern.text,
            hint="use a JSON { } or space-delimited [ ] pattern, or remove the dimensions",
        )
