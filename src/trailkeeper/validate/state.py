"""The verified state: the last digest a run proved, kept between runs (compare-and-swap)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from trailkeeper._internal.fsutil import replace_atomically
from trailkeeper.clock import iso_seconds, parse_iso_seconds
from trailkeeper.errors import ValidationRunError

if TYPE_CHECKING:
    pass

# cryptography (~30 ms to import) is imported at the first signature check, by which time
# the pool is already hashing log files: start-up overlaps with I/O instead of preceding it.

# A log is delivered at most one flush interval after its events, and a digest
# shortly after its window ends; this covers both with room for a slow store.
from trailkeeper.validate.report import STATE_FORMAT, ValidationReport, VerifiedHead

# ---------------------------------------------------------------- verified state


class StateConflictError(ValidationRunError):
    """The state file changed since it was loaded (another validator run saved first)."""


class VerifiedState:
    """Newest verified digest per (trail, region), kept in a small local JSON file.

    It lets a later run notice deleted newest digests (tail truncation) and
    rewritten history. `save` is compare-and-swap: it writes only if the file
    still holds exactly what `load` read.
    """

    def __init__(self, path: Path, heads: dict[str, VerifiedHead], loaded: bytes | None) -> None:
        self.path = path
        self.heads = heads
        self._loaded = loaded

    @staticmethod
    def slot(trail_arn: str, region: str) -> str:
        return f"{trail_arn}|{region}"

    @classmethod
    def load(cls, path: Path) -> VerifiedState:
        raw = _read_optional(path)
        if raw is None:
            return cls(path, {}, None)
        try:
            doc = orjson.loads(raw)
            heads = {slot: _head_from_json(h) for slot, h in doc["heads"].items()}
            if doc.get("format") != STATE_FORMAT:
                raise ValueError(f"format {doc.get('format')!r} is not {STATE_FORMAT}")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValidationRunError(
                f"verified-state file {path} is unreadable: {e}",
                "restore it from a backup; deleting it loses tail-truncation detection for past runs",
            ) from e
        return cls(path, heads, raw)

    def head(self, trail_arn: str, region: str) -> VerifiedHead | None:
        return self.heads.get(self.slot(trail_arn, region))

    def advance(self, report: ValidationReport) -> bool:
        """Move the heads forward to the report's newest valid digests, only if the run was fully valid."""
        if not report.ok:
            return False
        changed = False
        for region, head in report.heads.items():
            slot = self.slot(report.trail_arn, region)
            old = self.heads.get(slot)
            if old is None or head.end_time > old.end_time:
                self.heads[slot] = head
                changed = True
        return changed

    def to_bytes(self) -> bytes:
        heads = {slot: _head_to_json(h) for slot, h in sorted(self.heads.items())}
        return orjson.dumps({"format": STATE_FORMAT, "heads": heads}, option=orjson.OPT_INDENT_2)

    def save(self) -> None:
        """Write atomically; StateConflictError if the file changed since load."""
        import fcntl  # POSIX only, like the rest of the folder storage

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            current = _read_optional(self.path)
            if current != self._loaded:
                raise StateConflictError(
                    f"verified-state file {self.path} changed since it was loaded",
                    "another validation run saved first; run the validation again",
                )
            data = self.to_bytes()
            replace_atomically(self.path, data)
            self._loaded = data


def _head_to_json(h: VerifiedHead) -> dict[str, str]:
    doc = {"digestKey": h.digest_key, "endTime": iso_seconds(h.end_time), "hashValue": h.hash_value}
    if h.bucket:
        doc["bucket"] = h.bucket
    return doc


def _head_from_json(d: Mapping[str, str]) -> VerifiedHead:
    return VerifiedHead(str(d["digestKey"]), parse_iso_seconds(d["endTime"]), str(d["hashValue"]),
                        str(d.get("bucket", "")))


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValidationRunError(f"cannot read {path}: {e}", "check the file's permissions") from e
