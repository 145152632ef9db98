"""The chain: each window's digest in its slot, linked to the previous one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from trailkeeper import digest as digestfmt
from trailkeeper.clock import iso_seconds

if TYPE_CHECKING:
    pass

# cryptography (~30 ms to import) is imported at the first signature check, by which time
# the pool is already hashing log files: start-up overlaps with I/O instead of preceding it.

# A log is delivered at most one flush interval after its events, and a digest
# shortly after its window ends; this covers both with room for a slow store.
from trailkeeper.validate.digests import (
    _Digest,
)
from trailkeeper.validate.report import Code
from trailkeeper.validate.windows import Window


@dataclass
class _Slot:
    """An expected window and the digest found for it, if any."""

    window: Window
    key: str
    required: bool
    in_range: bool
    digest: _Digest | None = None
    backfill: _Digest | None = None
    moved_to: str | None = None  # where an intact digest naming this window was found instead

    @property
    def satisfied(self) -> bool:
        return any(d is not None and d.trusted for d in (self.digest, self.backfill))


def _check_links(slots: list[_Slot], bucket: str, allowance: timedelta) -> None:
    """Window and link checks between neighbouring expected windows (trusted digests only)."""
    for i, slot in enumerate(slots):
        d = slot.digest
        if d is None or not d.trusted or not slot.in_range:
            continue
        prev = slots[i - 1] if i > 0 else None
        if slot.window.starting:
            _check_starting(d, slot.window, allowance)
        elif prev is not None:
            _check_link(d, slot.window, prev, bucket)


def _check_starting(d: _Digest, w: Window, allowance: timedelta) -> None:
    assert d.doc is not None and d.start is not None
    # The writer starts the chain a moment after StartLogging is recorded.
    earliest = w.start.replace(microsecond=0)
    if not earliest <= d.start <= w.start + allowance:
        d.fail(Code.CHAIN_GAP, f"digestStartTime {d.doc.start_time} is not the logging start {iso_seconds(w.start)}")
    if any(v is not None for v in _previous_fields(d.doc)):
        d.fail(
            Code.CHAIN_LINK_MISMATCH,
            f"first digest after logging started at {iso_seconds(w.start)} must have null previous* fields",
        )


def _previous_fields(doc: digestfmt.DigestDoc) -> tuple[str | None, ...]:
    return (doc.previous_bucket, doc.previous_key, doc.previous_hash_value, doc.previous_signature)


def _check_link(d: _Digest, w: Window, prev: _Slot, bucket: str) -> None:
    assert d.doc is not None and d.start is not None
    doc = d.doc
    if d.start != w.start:
        d.fail(Code.CHAIN_GAP, f"digestStartTime {doc.start_time} is not the previous digestEndTime {iso_seconds(w.start)}")
    if doc.is_starting:
        d.fail(Code.CHAIN_GAP, "previous* fields are null but no logged stop/start explains a new chain here")
        return
    if (doc.previous_bucket, doc.previous_key) != (bucket, prev.key):
        d.fail(
            Code.CHAIN_LINK_MISMATCH,
            f"previousDigestS3Object is s3://{doc.previous_bucket}/{doc.previous_key}, expected s3://{bucket}/{prev.key}",
        )
        return
    p = prev.digest
    if p is None or not p.trusted:
        return  # the previous digest's own failure is already reported
    if doc.previous_hash_value != p.inflated_sha:
        d.fail(Code.CHAIN_LINK_MISMATCH, f"previousDigestHashValue does not match the sha256 of {prev.key}")
    if doc.previous_signature != p.signature:
        d.fail(Code.CHAIN_LINK_MISMATCH, f"previousDigestSignature does not match the signature of {prev.key}")
