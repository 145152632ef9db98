"""The one error the pattern language raises, and the internal signal used while compiling."""

from __future__ import annotations

from trailkeeper.errors import TrailkeeperError


class EventPatternError(TrailkeeperError):
    """An event pattern is invalid; the message names every problem found and its path."""

    code = "InvalidEventPatternException"
    status = 400

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "; ".join(self.problems),
            hint="see docs/event-patterns.md for the pattern rules",
        )


class Invalid(Exception):
    """One problem inside a leaf; caught by the compiler, which records it with the path."""
