"""Events and matches: the shared JSON parse, JSON selectors, and reading metric values."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import orjson

from trailkeeper.monitoring.filterpattern._cursor import Cursor
from trailkeeper.monitoring.filterpattern._values import parse_number

Path = tuple[str | int, ...]
NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-")
_DIGITS = frozenset(string.digits)


class _Missing:
    """The value of a selector that resolves to nothing (distinct from JSON null)."""


MISSING: Final = _Missing()
_UNPARSED: Final = _Missing()  # an Event whose message has not been parsed yet


class Event:
    """One log event's message; its JSON parse happens at most once, however many JSON
    patterns look at it (pass the same Event to every filter of a log group)."""

    __slots__ = ("_document", "message")

    def __init__(self, message: str) -> None:
        self.message = message
        self._document: object = _UNPARSED

    @property
    def document(self) -> object:
        """The parsed message, or MISSING when it is not JSON."""
        if self._document is _UNPARSED:
            try:
                self._document = orjson.loads(self.message)
            except orjson.JSONDecodeError:
                self._document = MISSING
        return self._document


def resolve(document: object, path: Path) -> object:
    """Follow `path` into a parsed JSON document; MISSING where any step is absent."""
    node = document
    for step in path:
        if isinstance(step, str):
            if not isinstance(node, dict) or step not in node:
                return MISSING
            node = node[step]
        else:
            if not isinstance(node, list) or step >= len(node):
                return MISSING
            node = node[step]
    return node


def read_selector(cur: Cursor) -> Path:
    """Read `$.name(.name|[n])*` at the cursor."""
    start = cur.pos
    if not cur.take("$."):
        bare = cur.take_while(NAME_CHARS)
        example = f"$.{bare}" if bare else "$.eventName"
        raise cur.error(f"a selector starts with '$.': write {example}", start)
    steps: list[str | int] = [_read_name(cur)]
    while True:
        if cur.take("."):
            steps.append(_read_name(cur))
        elif cur.startswith("["):
            steps.append(_read_index(cur))
        else:
            return tuple(steps)


def _read_name(cur: Cursor) -> str:
    name = cur.take_while(NAME_CHARS)
    if not name:
        raise cur.error(
            f"expected a field name at {cur.shown()}: names are letters, digits, '_' and '-'"
        )
    return name


def _read_index(cur: Cursor) -> int:
    at = cur.pos
    cur.pos += 1
    digits = cur.take_while(_DIGITS)
    if not digits:
        if cur.peek() == "*":
            raise cur.error("[*] wildcards are not supported: name one element, e.g. [0]", at)
        raise cur.error("an array index is a number in brackets, e.g. [0]", at)
    if not cur.take("]"):
        raise cur.error("close the array index with ]")
    return int(digits)


def render_path(path: Path) -> str:
    return "$" + "".join(f".{step}" if isinstance(step, str) else f"[{step}]" for step in path)


@lru_cache(maxsize=256)
def parse_json_selector(selector: str) -> Path:
    """The path of a metric-value / dimension selector such as `$.latency`."""
    cur = Cursor(selector, 0, len(selector))
    path = read_selector(cur)
    if not cur.at_end():
        raise cur.error(f"unexpected {cur.shown()} after the selector {render_path(path)}")
    return path


@dataclass(frozen=True)
class Match:
    """One matching event: the `$name` values of a space-delimited pattern (else empty).

    For JSON patterns `document` is the parsed event, so metric values need no second parse.
    """

    extracted_values: dict[str, str]
    document: object = field(default=MISSING, compare=False, repr=False)

    def number(self, selector: str) -> float | None:
        """The numeric value `selector` names in this event, or None if there is none.

        JSON patterns take `$.path` selectors and only JSON numbers count; space-delimited
        patterns take `$name` and the field text must spell a number.
        """
        if self.document is MISSING:
            text = self.extracted_values.get(selector)
            return None if text is None else parse_number(text)
        value = resolve(self.document, parse_json_selector(selector))
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def text(self, selector: str) -> str | None:
        """The value `selector` names as text (a dimension value), or None."""
        if self.document is MISSING:
            return self.extracted_values.get(selector)
        value = resolve(self.document, parse_json_selector(selector))
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return None
