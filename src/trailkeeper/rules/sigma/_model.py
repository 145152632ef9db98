"""What loading produces: compiled rules and the reasons rules were refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trailkeeper.rules.sigma._nodes import Node

LEVELS = ("informational", "low", "medium", "high", "critical")
DEFAULT_LEVEL = "medium"


@dataclass(frozen=True)
class SigmaRule:
    """One loaded, compiled rule. `matches` is pure and never raises for a JSON-like record."""

    id: str
    title: str
    level: str
    source: str
    author: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    dedup_fields: tuple[str, ...] | None = None
    threshold: int | None = None
    threshold_window_s: int | None = None
    dedup_window_s: int | None = None
    _root: Node | None = field(default=None, repr=False, compare=False)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether the record satisfies the rule's condition."""
        root = self._root
        return root is not None and root.match(record)


@dataclass(frozen=True)
class Refusal:
    """A rule (or a whole file) that was not loaded, and why."""

    source: str
    rule: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.rule}: {self.reason}" if self.rule else f"{self.source}: {self.reason}"
