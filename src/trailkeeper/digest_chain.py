"""A trail's chain of signed digests: when each digest is due, what it covers, how it is written.

Windows are `[start, end)`. A chain begins with a starting digest when logging starts, closes a
window at every multiple of the digest interval since the epoch, and ends with a final digest at
the first whole second after the last delivered file. Every choice a retry must repeat (the
final digest's end, the signing key) is committed before the digest is built, so a crash
between the write and the commit rebuilds the same bytes under the same key, and the
create-exclusive write accepts the identical retry. The new chain head and the files the digest
names are committed in one transaction after the write.

The trail worker (`delivery.TrailWorker`) decides when a stop is complete and calls `finish`;
the pure digest format is `digest`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from trailkeeper import digest as digestfmt
from trailkeeper import layout
from trailkeeper._internal.gzipio import gzip_single
from trailkeeper.clock import floor_to, iso_seconds
from trailkeeper.errors import ObjectExistsError, StorageError
from trailkeeper.keys.signing import PublicKeyInfo
from trailkeeper.storage.base import ObjectStore
from trailkeeper.trails import ChainHead, Trail, TrailState, TrailStore

GZIP_LEVEL = 6
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class DigestSigner(Protocol):
    """What the chain needs of the signing keys (keys.signing.SigningKeys)."""

    def current(self) -> PublicKeyInfo: ...

    def sign(self, fingerprint: str, message: bytes) -> str: ...


# Applied to the state a digest commits, just before the commit (the worker's failure
# bookkeeping: a digest written after an outage ends it).
Settle = Callable[[Trail, TrailState, datetime], TrailState]


def _unchanged(trail: Trail, state: TrailState, now: datetime) -> TrailState:
    return state


def _seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


def _ceil_seconds(when: datetime) -> datetime:
    floor = when.replace(microsecond=0)
    return floor if floor == when else floor + timedelta(seconds=1)


class DigestChain:
    """Writes the digests of trails delivered in one account and region. It keeps nothing
    between calls: the open window, the chain head and the choices of a digest being written
    are all in the trail's state. Each method does at most one step, at the `now` its caller
    read, and says whether it did one."""

    def __init__(self, account_id: str, region: str, trails: TrailStore, keys: DigestSigner,
                 open_store: Callable[[Trail], ObjectStore], settle: Settle = _unchanged) -> None:
        self.account_id = account_id
        self.region = region
        self.trails = trails
        self.keys = keys
        self.open_store = open_store
        self.settle = settle

    def maybe_start(self, trail: Trail, now: datetime) -> bool:
        """Open the chain of a logging trail that validates and has none; close it with a final
        digest when the trail stopped validating (outside a stop)."""
        state = trail.state
        # Also when stopping: a trail stopped before its worker first ran still gets its chain,
        # so the files it delivers on the way out are covered by a (final) digest.
        if trail.config.validation and state.is_logging and state.digest_start is None:
            start = self.chain_start(state, now)
            self.trails.start_chain(trail.config.name, replace(state, digest_start=start, chain=None), start,
                                    trail.config.location)
            return True
        if state.digest_start is not None and not trail.config.validation and state.stop_seq is None:
            return self._write(trail, now, final=True)
        return False

    @staticmethod
    def chain_start(state: TrailState, now: datetime) -> datetime:
        """A period's chain starts when logging started (not when its worker woke up),
        but never before the end of the previous chain."""
        start = _seconds(now)
        if state.start_logging_time is not None:
            start = min(start, _seconds(state.start_logging_time))
        if state.chain is not None:
            start = max(start, state.chain.end)
        return start

    def maybe_digest(self, trail: Trail, now: datetime) -> bool:
        """Write the digest of the open window once its boundary has passed."""
        state = trail.state
        if state.digest_start is None:
            return False
        boundary = floor_to(state.digest_start, trail.config.digest_interval) + trail.config.digest_interval
        if now < boundary:
            return False
        return self._write(trail, now, final=False, end=boundary)

    def finish(self, trail: Trail, now: datetime) -> bool:
        """Write the final digest of a stopping trail, which also completes the stop (in the
        same commit); False while its end has not come yet."""
        return self._write(trail, now, final=True)

    def _write(self, trail: Trail, now: datetime, final: bool, end: datetime | None = None) -> bool:
        name = trail.config.name
        state = trail.state
        window_start = state.digest_start
        assert window_start is not None
        if end is None:  # a final digest
            # It closes at the next whole second after every file delivered so far, and is written
            # once that second has come: no digest ends in the future (a validator run right after
            # a stop would take it for not yet due). The end is kept, so that waiting for it, or a
            # crash, cannot move it back; a file delivered meanwhile moves it forward.
            end = self._final_end(name, state, now)
            if end != state.final_end and end > window_start:
                state = replace(state, final_end=end)
                self.trails.save_state(name, state)
        if end <= window_start or end > now:
            return False  # a final digest needs a window of at least one second, and its end reached
        fingerprint = state.digest_fingerprint
        if fingerprint is None:
            fingerprint = self.keys.current().fingerprint
            state = replace(state, digest_fingerprint=fingerprint, latest_digest_attempt_time=now)
            self.trails.save_state(name, state)
        files = self.trails.undigested(name, end)
        store = self.open_store(trail)
        key = layout.digest_key(trail.config.prefix, self.account_id, self.region, name, self.region, end)
        entries = [
            digestfmt.LogFileEntry(store.bucket, f.key, f.hash_value, f.stored_hash, f.newest, f.oldest) for f in files
        ]
        previous = None
        if state.chain is not None:
            previous = digestfmt.ChainLink(state.chain.bucket, state.chain.key, state.chain.hash_value,
                                           state.chain.signature)
        body = digestfmt.build_digest(self.account_id, window_start, end, store.bucket, key, fingerprint, entries,
                                      previous)
        signature = digestfmt.sign_digest(body, iso_seconds(end), store.bucket, key,
                                          previous.signature if previous else None,
                                          lambda msg: self.keys.sign(fingerprint, msg))
        try:
            # zlib, not ISA-L: a retried digest must reproduce the stored bytes exactly.
            store.put_exclusive(key, gzip_single(body, GZIP_LEVEL), digestfmt.digest_metadata(signature))
        except ObjectExistsError as e:
            raise StorageError(f"digest {key} exists with other content: {e}",
                               "the destination was modified by someone else; investigate") from e
        chain = ChainHead(store.bucket, key, hashlib.sha256(body).hexdigest(), signature, end)
        new_state = replace(
            state, chain=chain, digest_start=None if final else end, digest_fingerprint=None,
            latest_digest_time=now, latest_digest_error="", final_end=None,
        )
        if final and state.stop_seq is not None:
            new_state = replace(new_state, stop_seq=None, is_logging=False)
        new_state = self.settle(trail, new_state, now)
        self.trails.record_digest(name, new_state, [f.key for f in files], end, final)
        return True

    def _final_end(self, name: str, state: TrailState, now: datetime) -> datetime:
        end = state.final_end or _ceil_seconds(now)
        pending = self.trails.undigested(name, FAR_FUTURE)
        if pending:
            end = max(end, _seconds(max(f.delivered_at for f in pending)) + timedelta(seconds=1))
        return end
