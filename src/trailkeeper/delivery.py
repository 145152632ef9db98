"""Per-trail consumer of the spool: batches selected events into log files; its digests are
written by the trail's `digest_chain.DigestChain`, which the worker calls between deliveries.

Exactly-once into log files: before a file is written its intent (spool range and key)
is committed to the state database; a crash after that re-builds the same bytes from
the same spool range under the same key, and the create-exclusive write accepts the
identical retry. The offset advances in the same transaction that records the file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import orjson

from trailkeeper import envelope, layout
from trailkeeper._internal.gzipio import GzipFormatError, gunzip_strict, gzip_fast
from trailkeeper.clock import Clock, iso_seconds, parse_iso_seconds
from trailkeeper.digest_chain import DigestChain, DigestSigner
from trailkeeper.errors import (
    EnvelopeError,
    KeyProviderUnavailableError,
    KmsError,
    ObjectExistsError,
    StorageError,
    TrailkeeperError,
)
from trailkeeper.storage.base import ObjectStore
from trailkeeper.trails import DeliveredFile, Trail, TrailState, TrailStore

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5
BYTES_RECHECK_EVENTS = 1000
STOP_RECORD_GRACE = timedelta(seconds=2)


class SpoolReader(Protocol):
    def read(self, from_seq: int, max_records: int, max_bytes: int) -> list[tuple[int, bytes]]: ...
    def next_seq(self) -> int: ...
    def wait_for(self, seq: int, timeout: float) -> bool: ...


@dataclass(frozen=True)
class DeliveryContext:
    account_id: str
    region: str
    spool: SpoolReader
    trails: TrailStore
    keys: DigestSigner
    clock: Clock
    open_store: Callable[[Trail], ObjectStore]
    emit: Callable[[str, Trail, dict[str, Any]], None]  # service event: name, trail, details
    max_batch_events: int
    max_batch_bytes: int
    max_backoff: timedelta
    data_keys: envelope.DataKeys | None = None  # the KMS, for trails with a KmsKeyId
    # Keeps a record this trail cannot deliver (consumer, seq, body, reason) durably and reports it.
    set_aside: Callable[[str, int, bytes, str], None] | None = None


def build_log_file(records: list[bytes]) -> bytes:
    """The inflated log file: compact {"Records":[...]} around the records exactly as spooled."""
    return b'{"Records":[' + b",".join(records) + b"]}"


def _event_time_bounds(parsed: list[dict[str, Any]]) -> tuple[datetime | None, datetime | None]:
    times = sorted(str(r.get("eventTime", "")) for r in parsed if isinstance(r.get("eventTime"), str))
    if not times:
        return None, None
    try:
        return parse_iso_seconds(times[-1]), parse_iso_seconds(times[0])
    except ValueError:
        return None, None


@dataclass(frozen=True)
class LogSealer:
    """Encrypts a trail's log files under its KMS key (envelope encryption, one data key each)."""

    keys: envelope.DataKeys
    key_ref: str
    trail_arn: str

    def seal(self, bucket: str, key: str, gzipped: bytes) -> bytes:
        try:
            return envelope.seal(self.keys, self.key_ref, gzipped, envelope.log_context(self.trail_arn, bucket, key))
        except KmsError as e:
            # A disabled or deleted key is an outage of the key, not of the events: wait and retry.
            raise KeyProviderUnavailableError(f"KMS key {self.key_ref} cannot encrypt log file {key}: {e.code}: {e}",
                                              "enable the key (aws kms enable-key) or point the trail at another "
                                              "key; events wait in the spool meanwhile") from e

    def open(self, bucket: str, key: str, stored: bytes) -> bytes:
        return envelope.open_log(self.keys, stored, self.trail_arn, bucket, key)


def _put_log_once(store: ObjectStore, key: str, inflated: bytes, sealer: LogSealer | None = None) -> bytes:
    """Write a log file create-exclusive; a retry finding the same *content* already stored
    (compressed or encrypted by an earlier attempt, so other bytes) adopts it."""
    stored = gzip_fast(inflated)
    if sealer is not None:
        stored = sealer.seal(store.bucket, key, stored)
    try:
        store.put_exclusive(key, stored, {})
        return stored
    except ObjectExistsError as e:
        existing = store.get(key).data
        try:
            opened = sealer.open(store.bucket, key, existing) if sealer is not None else existing
            same = gunzip_strict(opened) == inflated
        except (GzipFormatError, EnvelopeError):
            same = False
        if not same:
            raise StorageError(f"log file {key} exists with other content: {e}",
                               "the destination was modified by someone else; investigate") from e
        return existing


class TrailWorker(threading.Thread):
    """Delivers one trail. Storage failures back off and retry; nothing is dropped."""

    def __init__(self, name: str, ctx: DeliveryContext) -> None:
        super().__init__(name=f"trail-{name}", daemon=True)
        self.trail_name = name
        self.ctx = ctx
        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._pending_since: float | None = None
        self._checked_avail = 0
        self._backoff = 1.0
        self._flush_until = 0
        self.idle = threading.Event()
        self.digests = DigestChain(ctx.account_id, ctx.region, ctx.trails, ctx.keys, ctx.open_store,
                                   settle=self._recovered)

    # ---- thread control ----
    def stop(self) -> None:
        self._stop_event.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def force_flush_until(self, seq: int) -> None:
        """Deliver everything below `seq` now instead of at the next flush interval."""
        self._flush_until = max(self._flush_until, seq)
        self._wake.set()

    def flush_until(self, seq: int) -> None:
        """consumers.base.FlushableConsumer: the registry's flush."""
        self.force_flush_until(seq)

    def run(self) -> None:
        """Supervised: whatever goes wrong in a step (a store or KMS outage, a disk I/O error in
        the state database, a bug) is logged, recorded as a delivery failure shown in the
        trail's status, and retried with backoff; the worker never dies of it."""
        while not self._stop_event.is_set():
            try:
                progressed = self.work()
                self._backoff = 1.0
            except TrailkeeperError as e:
                if "TrailNotFound" in getattr(e, "code", ""):
                    return
                self._fail_and_wait(e)
                continue
            except Exception as e:
                log.exception("trail %s: unexpected error in delivery; retrying in %.0fs", self.trail_name,
                              self._backoff)
                self._fail_and_wait(e)
                continue
            if not progressed:
                self.idle.set()
                self._wait_for_work()
                self.idle.clear()

    def _fail_and_wait(self, error: Exception) -> None:
        try:
            self._on_failure(error)
        except Exception:  # the state database itself may be what failed: keep the worker alive
            log.exception("trail %s: the failure could not be recorded either", self.trail_name)
        self._stop_event.wait(self._backoff)
        self._backoff = min(self._backoff * 2, self.ctx.max_backoff.total_seconds())

    def _wait_for_work(self) -> None:
        trail = self.ctx.trails.find(self.trail_name)
        if trail is None:
            self._stop_event.set()
            return
        timeout = IDLE_WAIT_S
        if trail.state.is_logging and self.ctx.spool.next_seq() <= trail.state.offset_seq:
            self.ctx.spool.wait_for(trail.state.offset_seq, timeout)
        else:
            self._wake.wait(timeout)
        self._wake.clear()

    # ---- as a consumer of the spool (consumers.base.Consumer) ----
    @property
    def consumer_name(self) -> str:
        return self.name  # the thread's name, "trail-NAME": also its quarantine folder

    def needed(self) -> int | None:
        """The trail's offset while it logs or finishes a file; a stopped trail needs nothing kept."""
        trail = self.ctx.trails.find(self.trail_name)
        if trail is None or not (trail.state.is_logging or trail.state.intent is not None):
            return None
        return trail.state.offset_seq

    def step(self) -> bool:
        """`work`, with a storage or key failure recorded as the background loop records it
        (foreground pumping in tests and tools); False when it failed or nothing was due."""
        try:
            return self.work()
        except StorageError as e:
            self._on_failure(e)
            return False

    def work(self) -> bool:
        """Do the next due piece of work; return False when nothing was due (raises on failure)."""
        trail = self.ctx.trails.get(self.trail_name)
        now = self.ctx.clock.now()
        if trail.state.intent is not None:
            self._complete_intent(trail, now)
            return True
        if self.digests.maybe_start(trail, now):
            return True
        if self._maybe_deliver(trail, now):
            return True
        if self.digests.maybe_digest(trail, now):
            return True
        return self._maybe_finish_stop(trail, now)

    # ---- log files ----
    def _upper_bound(self, trail: Trail) -> int:
        top = self.ctx.spool.next_seq()
        if trail.state.stop_seq is not None:
            top = min(top, trail.state.stop_seq)
        return top

    def _maybe_deliver(self, trail: Trail, now: datetime) -> bool:
        state = trail.state
        if not state.is_logging:
            return False
        avail = self._upper_bound(trail) - state.offset_seq
        if avail <= 0:
            self._pending_since = None
            self._checked_avail = 0
            return False
        mono = now.timestamp()
        if self._pending_since is None:
            self._pending_since = mono
        stopping = state.stop_seq is not None or state.offset_seq < self._flush_until
        due = stopping or avail >= self.ctx.max_batch_events
        due = due or mono - self._pending_since >= trail.config.flush_interval_s
        if not due and avail - self._checked_avail >= BYTES_RECHECK_EVENTS:
            self._checked_avail = avail
            due = self._batch_full_by_bytes(state.offset_seq)
        if not due:
            return False
        self._begin_intent(trail, now)
        self._pending_since = None
        self._checked_avail = 0
        return True

    def _batch_full_by_bytes(self, offset: int) -> bool:
        batch = self.ctx.spool.read(offset, self.ctx.max_batch_events, self.ctx.max_batch_bytes)
        return sum(len(b) for _, b in batch) >= self.ctx.max_batch_bytes * 0.9

    def _begin_intent(self, trail: Trail, now: datetime) -> None:
        state = trail.state
        batch = self.ctx.spool.read(state.offset_seq, self.ctx.max_batch_events, self.ctx.max_batch_bytes)
        bound = self._upper_bound(trail)
        batch = [(s, b) for s, b in batch if s < bound]
        seq_to = batch[-1][0] + 1 if batch else state.offset_seq
        key = layout.log_key(
            trail.config.prefix, self.ctx.account_id, self.ctx.region, now,
            layout.uniq16_for(f"{trail.config.name}:{state.offset_seq}".encode()),
        )
        intent = {"seq_from": state.offset_seq, "seq_to": seq_to, "key": key, "at": now.timestamp()}
        new_state = replace(state, intent=intent)
        self.ctx.trails.save_state(trail.config.name, new_state)
        trail.state = new_state
        self._complete_intent(trail, now)

    def _selected(self, trail: Trail, seq_from: int, seq_to: int) -> tuple[list[bytes], list[dict[str, Any]]]:
        raw: list[bytes] = []
        parsed: list[dict[str, Any]] = []
        offset = seq_from
        while offset < seq_to:
            chunk = self.ctx.spool.read(offset, min(self.ctx.max_batch_events, seq_to - offset), 1 << 62)
            if not chunk:
                raise StorageError(f"spool records {offset}..{seq_to} are missing", "the spool was trimmed too early")
            for seq, body in chunk:
                if seq >= seq_to:
                    break
                record, selected = self._select(trail, seq, body)
                if selected:
                    raw.append(body)
                    parsed.append(record)
            offset = chunk[-1][0] + 1
        return raw, parsed

    def _select(self, trail: Trail, seq: int, body: bytes) -> tuple[dict[str, Any], bool]:
        """(record, selected); a record that is not a JSON object cannot go into a log file: it is
        set aside, so that it neither breaks the file nor stops the trail. The same bytes always
        get the same answer, so a re-built batch after a crash is the same batch."""
        try:
            record = orjson.loads(body)
            if not isinstance(record, dict):
                raise ValueError(f"it is JSON {type(record).__name__}, not an object")
            return record, trail.config.selects(record)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            reason = f"spooled record {seq} cannot go into a log file: {e}"
            if self.ctx.set_aside is None:
                raise StorageError(reason, "the spool holds a damaged record; restart with quarantine enabled") from e
            self.ctx.set_aside(self.consumer_name, seq, body, reason)
            return {}, False

    def _complete_intent(self, trail: Trail, now: datetime) -> None:
        state = trail.state
        intent = state.intent
        assert intent is not None
        seq_from, seq_to, key = int(intent["seq_from"]), int(intent["seq_to"]), str(intent["key"])
        attempt = replace(state, latest_delivery_attempt_time=now)
        raw, parsed = self._selected(trail, seq_from, seq_to)
        done = replace(attempt, intent=None, offset_seq=seq_to)
        if not raw:
            self.ctx.trails.save_state(trail.config.name, done)
            return
        inflated = build_log_file(raw)
        store = self.ctx.open_store(trail)
        stored = _put_log_once(store, key, inflated, self._sealer(trail))
        newest, oldest = _event_time_bounds(parsed)
        file = DeliveredFile(
            key=key, hash_value=hashlib.sha256(inflated).hexdigest(), stored_hash=hashlib.sha256(stored).hexdigest(),
            newest=newest, oldest=oldest, delivered_at=now, events=len(raw),
        )
        done = replace(done, latest_delivery_time=now, latest_delivery_error="")
        done = self._recovered(trail, done, now)
        self.ctx.trails.record_delivery(trail.config.name, done, file, seq_from, seq_to)

    def _sealer(self, trail: Trail) -> LogSealer | None:
        key_ref = trail.config.kms_key_id
        if not key_ref:
            return None
        if self.ctx.data_keys is None:
            raise KeyProviderUnavailableError(f"trail {trail.config.name} names KMS key {key_ref}, but no KMS is "
                                              "configured", "start the server with its KMS (the default)")
        arn = layout.trail_arn(self.ctx.region, self.ctx.account_id, trail.config.name)
        return LogSealer(self.ctx.data_keys, key_ref, arn)

    # ---- the end of a stop ----
    def _maybe_finish_stop(self, trail: Trail, now: datetime) -> bool:
        """Once a stopping trail has delivered up to its stop, its final digest ends the stop
        (a trail without a chain just stops)."""
        state = trail.state
        if state.stop_seq is None:
            return False
        if state.offset_seq < state.stop_seq and not self._stop_record_late(state, now):
            return False
        if state.digest_start is not None:
            return self.digests.finish(trail, now)
        self.ctx.trails.save_state(trail.config.name, replace(state, stop_seq=None, is_logging=False))
        return True

    def _stop_record_late(self, state: TrailState, now: datetime) -> bool:
        """stop_seq leaves room for the StopLogging record the API appends right after the call;
        if none arrives (an in-process stop), finish after a short grace instead of waiting."""
        caught_up = state.offset_seq >= self.ctx.spool.next_seq()
        since = state.stop_logging_time or now
        return caught_up and now - since >= STOP_RECORD_GRACE

    # ---- failure bookkeeping (PCI DSS 10.7.3: start and end of each failure are events) ----
    def _on_failure(self, error: Exception) -> None:
        trail = self.ctx.trails.find(self.trail_name)
        if trail is None:
            return
        now = self.ctx.clock.now()
        message = str(error) if isinstance(error, TrailkeeperError) else f"{type(error).__name__}: {error}"
        state = trail.state
        digest_pending = state.intent is None
        state = replace(state, latest_delivery_attempt_time=now)
        if digest_pending:
            state = replace(state, latest_digest_error=message, latest_digest_attempt_time=now)
        else:
            state = replace(state, latest_delivery_error=message)
        first = state.failing_since is None
        if first:
            state = replace(state, failing_since=now)
        self.ctx.trails.save_state(trail.config.name, state)
        log.warning("trail %s: delivery failed: %s (retrying in %.0fs)", self.trail_name, message, self._backoff)
        if first:
            self.ctx.emit("TrailDeliveryFailed", trail, {"error": message, "failureStart": iso_seconds(now)})

    def _recovered(self, trail: Trail, state: TrailState, now: datetime) -> TrailState:
        if state.failing_since is None:
            return state
        started = state.failing_since
        self.ctx.emit("TrailDeliveryRecovered", trail, {
            "failureStart": iso_seconds(started), "failureEnd": iso_seconds(now),
            "durationSeconds": int((now - started).total_seconds()),
        })
        return replace(state, failing_since=None)
