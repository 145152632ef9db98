"""A set of rules with an index, so that one event is tried only on rules it could match.

Most rules pin `eventName` (57 of SigmaHQ's 58 CloudTrail rules) or `eventSource` to literal
values. Each rule's matcher reports the texts a field must hold for it to match (`need()`,
a necessary condition); the rule is filed under one such field, preferring eventName, then
eventSource, then any other. An event is tried on the rules filed under its own texts for
those fields, plus the rules filed under none. The texts are computed by the same function
the rules compare (`FieldPath.texts`), so the index cannot disagree with `matches`;
tests/unit/test_sigma_set.py checks it differentially.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from trailkeeper.rules.sigma._model import Refusal, SigmaRule
from trailkeeper.rules.sigma._nodes import Need, Node
from trailkeeper.rules.sigma._record import FieldPath

PREFERRED_FIELDS: Final = ("eventName", "eventSource")


class SigmaSet:
    """Loaded rules (in load order), the refusals met while loading, and their index."""

    def __init__(self, rules: Sequence[SigmaRule], refusals: Sequence[Refusal] = ()) -> None:
        self.rules: tuple[SigmaRule, ...] = tuple(rules)
        self.refusals: tuple[Refusal, ...] = tuple(refusals)
        self._roots: tuple[Node | None, ...] = tuple(rule._root for rule in self.rules)
        always: list[int] = []
        tables: dict[str, dict[str, list[int]]] = {}
        for position, rule in enumerate(self.rules):
            key = index_key(rule)
            if key is None:
                always.append(position)
                continue
            path, texts = key
            table = tables.setdefault(path, {})
            for text in texts:
                table.setdefault(text, []).append(position)
        self._always = tuple(always)
        self._tables = tuple((FieldPath(path), path if "." not in path else None,
                              {text: tuple(ps) for text, ps in table.items()})
                             for path, table in tables.items())

    @property
    def indexed(self) -> int:
        """How many rules are filed under a field (the others are tried on every event)."""
        return len(self.rules) - len(self._always)

    def candidates(self, record: Mapping[str, Any]) -> list[int]:
        """Positions of the rules worth trying on `record`, ascending."""
        found: list[int] = []
        for path, key, table in self._tables:
            if key is not None:  # inline fast path: a top-level string field
                value = record.get(key)
                if type(value) is str:
                    hit = table.get(value.lower())
                    if hit is not None:
                        found.extend(hit)
                    continue
            for text in path.texts(record, True):
                hit = table.get(text)
                if hit is not None:
                    found.extend(hit)
        if not found:
            return list(self._always)
        found.extend(self._always)
        return sorted(set(found))

    def matching(self, record: Mapping[str, Any]) -> list[SigmaRule]:
        """The rules `record` matches, in load order."""
        rules = self.rules
        roots = self._roots
        out: list[SigmaRule] = []
        for position in self.candidates(record):
            root = roots[position]
            if root is not None and root.match(record):
                out.append(rules[position])
        return out


def index_key(rule: SigmaRule) -> tuple[str, frozenset[str]] | None:
    """The field `rule` is filed under and the lowercased texts it needs there, if any."""
    if rule._root is None:
        return None
    need: Need = rule._root.need()
    for path in PREFERRED_FIELDS:
        if path in need:
            return path, need[path]
    if not need:
        return None
    path = min(need, key=lambda candidate: (len(need[candidate]), candidate))
    return path, need[path]
