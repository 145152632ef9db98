"""The error every refusal raises, and the character cursor the parsers share.

Positions are 0-based offsets into the text the caller passed (before trimming), so a caller
can point at the offending character of what the user actually wrote.
"""

from __future__ import annotations

from trailkeeper.errors import TrailkeeperError

WHITESPACE = " \t\r\n"


class FilterPatternError(TrailkeeperError):
    """A filter pattern (or a metric selector) is malformed or uses something unsupported.

    `position` is the 0-based offset of the offending character in `text`; the message says
    what was wrong and what to write instead.
    """

    def __init__(self, message: str, position: int, text: str = "", hint: str = "") -> None:
        self.position = position
        self.text = text
        super().__init__(message, hint)

    def diagnostics(self) -> str:
        """The message, then the pattern with a caret under the offending character."""
        where = f"{self} (at character {self.position})"
        if self.text:
            where += f"\n  {self.text}\n  {' ' * self.position}^"
        return f"{where}\n  hint: {self.hint}" if self.hint else where


class Cursor:
    """A read position in `text`, bounded by `end` (the trimmed end of the pattern)."""

    def __init__(self, text: str, pos: int, end: int) -> None:
        self.text = text
        self.pos = pos
        self.end = end

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek(self, size: int = 1) -> str:
        return self.text[self.pos : min(self.pos + size, self.end)]

    def startswith(self, prefix: str) -> bool:
        return self.text.startswith(prefix, self.pos, self.end)

    def skip_ws(self) -> None:
        while self.pos < self.end and self.text[self.pos] in WHITESPACE:
            self.pos += 1

    def take(self, prefix: str) -> bool:
        """Consume `prefix` if the text continues with it."""
        if self.startswith(prefix):
            self.pos += len(prefix)
            return True
        return False

    def take_while(self, allowed: frozenset[str]) -> str:
        start = self.pos
        while self.pos < self.end and self.text[self.pos] in allowed:
            self.pos += 1
        return self.text[start : self.pos]

    def error(self, message: str, at: int | None = None) -> FilterPatternError:
        return FilterPatternError(message, self.pos if at is None else at, self.text)

    def shown(self) -> str:
        """The next character, quoted for a message, or 'the end of the pattern'."""
        return f"'{self.text[self.pos]}'" if not self.at_end() else "the end of the pattern"
