"""Short ids that sort by creation time: 16 characters of Crockford base32 (lower case, whose
alphabet is in ASCII order), 48 bits of milliseconds then 32 random bits. Ids one generator
issues only grow, even within a millisecond or when the clock steps back, so "newest first"
and paging by id hold."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_LENGTH = 16
_RANDOM_BITS = 32
ID_PATTERN = re.compile(f"[{_ALPHABET}]{{{_LENGTH}}}")


class IdMaker:
    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self, now: datetime) -> str:
        ms = int(now.timestamp() * 1000)
        with self._lock:
            value = max((ms << _RANDOM_BITS) | secrets.randbits(_RANDOM_BITS), self._last + 1)
            self._last = value
        return _encode(value)

    def seen(self, issued: str) -> None:
        """Continue after an id issued before (by another process, or before a restart)."""
        value = _decode(issued)
        with self._lock:
            self._last = max(self._last, value)


def _encode(value: int) -> str:
    chars = []
    for _ in range(_LENGTH):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _decode(text: str) -> int:
    value = 0
    for c in text:
        value = value * 32 + _ALPHABET.index(c)
    return value
