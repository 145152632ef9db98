"""Term patterns (`ERROR -WARN "exact phrase"`, `?ERROR ?WARN`) and standalone regexes.

D1: a term matches as a case-sensitive substring (`ERROR` matches `MYERRORS`).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from trailkeeper.monitoring.filterpattern._cursor import WHITESPACE, Cursor
from trailkeeper.monitoring.filterpattern._match import Event, Match
from trailkeeper.monitoring.filterpattern._values import Regex, quote, read_quoted

_WORD_CHARS = frozenset(string.ascii_letters + string.digits + "_")


@dataclass(frozen=True)
class TermsBody:
    """AND of `required`, none of `excluded`; or, when `any_of` is set, any one of it."""

    required: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    def match(self, event: Event) -> Match | None:
        message = event.message
        if self.any_of:
            hit = any(term in message for term in self.any_of)
        else:
            hit = all(term in message for term in self.required) and not any(
                term in message for term in self.excluded
            )
        return Match({}) if hit else None

    def render(self) -> str:
        parts = [quote(t) for t in self.required] + ["-" + quote(t) for t in self.excluded]
        parts += ["?" + quote(t) for t in self.any_of]
        return " ".join(parts)


@dataclass(frozen=True)
class RegexBody:
    """A standalone `%regex%`, searched anywhere in the event."""

    regex: Regex

    def match(self, event: Event) -> Match | None:
        return Match({}) if self.regex.matches(event.message) else None

    def render(self) -> str:
        return self.regex.render()


@dataclass(frozen=True)
class AllBody:
    """The empty pattern (or `" "`): every event matches."""

    def match(self, event: Event) -> Match | None:
        return Match({})

    def render(self) -> str:
        return ""


def parse_terms(cur: Cursor) -> TermsBody:
    groups: dict[str, list[str]] = {"": [], "-": [], "?": []}
    while True:
        cur.skip_ws()
        if cur.at_end():
            return TermsBody(tuple(groups[""]), tuple(groups["-"]), tuple(groups["?"]))
        at = cur.pos
        prefix = "?" if cur.take("?") else "-" if cur.take("-") else ""
        _refuse_mixing(cur, prefix, groups, at)
        cur.skip_ws()  # AWS's own example writes `"ERROR" - "Exiting"`
        groups[prefix].append(_read_term(cur, prefix))
        if not cur.at_end() and cur.peek() not in WHITESPACE:
            raise cur.error(f"unexpected {cur.shown()}: separate terms with a space")


def _refuse_mixing(cur: Cursor, prefix: str, groups: dict[str, list[str]], at: int) -> None:
    # Provisional rule: AWS does not document what `?a b -c` means, so refuse it.
    mixed = groups["?"] if prefix != "?" else groups[""] + groups["-"]
    if mixed:
        raise cur.error(
            "?term (any of) cannot be mixed with plain or -term terms: write only ?terms, "
            "or only plain and -terms",
            at,
        )


def _read_term(cur: Cursor, prefix: str) -> str:
    at = cur.pos
    if cur.peek() == '"':
        term = read_quoted(cur)
        if not term:
            raise cur.error('empty term "": an empty pattern already matches every event', at)
        return term
    word = cur.take_while(_WORD_CHARS)
    if word and (cur.at_end() or cur.peek() in WHITESPACE):
        return word
    run = _run(cur, at)
    if not run:
        raise cur.error(f"expected a term after '{prefix}'", at)
    raise cur.error(
        f"a term with characters other than letters, digits and '_' must be quoted: "
        f"write {quote(run)}",
        at,
    )


def _run(cur: Cursor, at: int) -> str:
    end = at
    while end < cur.end and cur.text[end] not in WHITESPACE:
        end += 1
    return cur.text[at:end]
