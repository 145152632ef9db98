"""Text from outside (paths, headers, record fields) made safe to keep or to show."""

from __future__ import annotations

import re

MAX_KEPT_CHARS = 1024
# C0 and C1 control characters and DEL: they drive terminals (ESC [ ...) and break XML 1.0.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def bounded(text: str, limit: int = MAX_KEPT_CHARS) -> str:
    """`text` for an audit record: control characters removed, at most `limit` characters
    (a cut is marked with '...', so a reader knows there was more)."""
    clean = _CONTROL.sub("", text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def visible(text: str) -> str:
    """`text` for a human's terminal: every control character shown as an escape (\\x1b, \\n),
    so nothing printed can move the cursor, clear the screen or change colours."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def xml_safe(text: str) -> str:
    """`text` for an XML 1.0 document, which cannot carry most control characters at all."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in "\t\n\r" else "\ufffd", text)
