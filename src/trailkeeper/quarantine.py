"""Records a consumer cannot process: kept aside for inspection, never retried for ever.

An acknowledged record is never dropped silently, and never allowed to stop a consumer: a
consumer that meets one it cannot read (not JSON, not an object, a time no parser reads back,
written by an older release or damaged on disk) files it here durably *before* it commits
its offset past it, then goes on with the next. The service reports each entry once as a
`RecordQuarantined` service event (at-least-once, deduplicated by the spool's idempotency
key) and `status` counts them per consumer.

Layout: `{data_dir}/quarantine/{consumer}/{seq:020d}.json`, one JSON document per record:
consumer, spool seq, reason, time, and the record's bytes (as text when they are UTF-8, else
base64). A `{seq:020d}.reported` marker is added once the event is durable.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from trailkeeper._internal.fsutil import write_new
from trailkeeper.clock import iso_seconds

QUARANTINE_DIR = "quarantine"
MAX_REASON_CHARS = 1024
_CONSUMER_RE = re.compile(r"[A-Za-z0-9._-]{1,128}", re.ASCII)
_ENTRY_SUFFIX = ".json"
_REPORTED_SUFFIX = ".reported"


@dataclass(frozen=True)
class Entry:
    consumer: str
    seq: int
    reason: str
    path: Path


class Quarantine:
    """The quarantine folder of one data directory (safe to use from several processes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, consumer: str, seq: int, body: bytes, reason: str, when: datetime) -> Entry:
        """Keep `body` (spool record `seq`) aside durably; a second put of the same record keeps the first."""
        if not _CONSUMER_RE.fullmatch(consumer):
            raise ValueError(f"consumer name {consumer!r} is not [A-Za-z0-9._-]{{1,128}}")
        folder = self.root / consumer
        folder.mkdir(parents=True, exist_ok=True)
        doc: dict[str, object] = {"consumer": consumer, "seq": seq, "reason": reason[:MAX_REASON_CHARS],
                                  "quarantinedAt": iso_seconds(when), "bytes": len(body)}
        try:
            doc["record"] = body.decode("utf-8")
        except UnicodeDecodeError:
            doc["recordBase64"] = base64.b64encode(body).decode("ascii")
        path = folder / f"{seq:020d}{_ENTRY_SUFFIX}"
        write_new(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        return Entry(consumer, seq, reason[:MAX_REASON_CHARS], path)

    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        if not self.root.is_dir():
            return out
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in sorted(folder.glob(f"*{_ENTRY_SUFFIX}")):
                out.append(_read(folder.name, path))
        return out

    def unreported(self) -> list[Entry]:
        return [e for e in self.entries() if not e.path.with_suffix(_REPORTED_SUFFIX).exists()]

    def mark_reported(self, entry: Entry) -> None:
        write_new(entry.path.with_suffix(_REPORTED_SUFFIX), b"")

    def counts(self) -> dict[str, int]:
        """Quarantined records per consumer."""
        counts: dict[str, int] = {}
        for entry in self.entries():
            counts[entry.consumer] = counts.get(entry.consumer, 0) + 1
        return counts


def _read(consumer: str, path: Path) -> Entry:
    seq = int(path.name.removesuffix(_ENTRY_SUFFIX))
    try:
        doc = orjson.loads(path.read_bytes())
        reason = str(doc.get("reason", "")) if isinstance(doc, dict) else ""
    except (OSError, orjson.JSONDecodeError):
        reason = "(the quarantine entry itself is unreadable)"
    return Entry(consumer, seq, reason, path)
