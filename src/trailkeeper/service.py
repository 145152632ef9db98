"""The trailkeeper service: spool, history, trails, identities and keys wired together.

The API layer (api/app.py) authenticates and routes; everything it can do is a method
here, so tests and benchmarks can drive the same code in-process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

import orjson

from trailkeeper import audit, layout, records
from trailkeeper.alerts import AlertSender
from trailkeeper.clock import Clock, iso_seconds
from trailkeeper.config import FAIL_CLOSED, MAX_TRAILS, Config
from trailkeeper.consumers.base import SqliteOffsets
from trailkeeper.consumers.registry import ConsumerRegistry
from trailkeeper.delivery import DeliveryContext, TrailWorker
from trailkeeper.errors import BacklogFullError, HistoryError, TrailError, TrailkeeperError
from trailkeeper.history.indexer import CONSUMER as INDEXER_CONSUMER
from trailkeeper.history.indexer import IndexerProcess
from trailkeeper.ingest import IN_PROCESS_AGENT, IN_PROCESS_ORIGIN, Ingest
from trailkeeper.monitoring.forwarder import (
    Forwarding,
    ForwardingTargets,
    TrailForwarder,
    consumer_name,
    forwarding_consumer,
    start_fresh,
)
from trailkeeper.notify.runner import NotificationRunner
from trailkeeper.quarantine import Quarantine
from trailkeeper.rules.detections import Detections
from trailkeeper.rules.runner import RulesRunner
from trailkeeper.runtime import Runtime
from trailkeeper.spool import AppendResult
from trailkeeper.state.trails import SqliteForwardingStatus
from trailkeeper.storage.base import ObjectStore
from trailkeeper.storage.destinations import folder_destination_problem, is_s3, open_destination
from trailkeeper.trails import Location, Trail, TrailConfig

log = logging.getLogger(__name__)

INDEX_BATCH = 2000
# At most this much extra delay before a record is searchable (target: 1 s), in exchange for
# at most 1 / INDEX_COALESCE_S indexer round trips per second while records trickle in.
INDEX_COALESCE_S = 0.05
INDEX_MAX_BYTES = 16 * 1024 * 1024
MAINTENANCE_EVERY_S = 5.0
# The backlog (undelivered events of logging trails) is re-measured at most this often on ingest.
BACKLOG_RECHECK_S = 0.5


@dataclass(frozen=True)
class WormStatus:
    verified: bool | None  # None while the probe runs
    detail: str


@dataclass(frozen=True)
class Account:
    account_id: str
    region: str


class Service:
    """Owns every component; `start()` launches the background consumers, `close()` stops them."""

    def __init__(self, config: Config, clock: Clock | None = None, background: bool = True,
                 wrap_store: Callable[[ObjectStore], ObjectStore] | None = None) -> None:
        """`background=False` runs no threads: tests drive the consumers with `pump()`.
        `wrap_store` wraps every destination store opened (tests: storage.faults.FaultyStore)."""
        self.config = config
        self._wrap_store = wrap_store
        self.background = background
        # The composition root builds every component; the service runs them.
        self.runtime = Runtime(config, clock)
        self.clock: Clock = self.runtime.clock
        self.keyring = self.runtime.keyring
        # Before any component opens them: an older data directory is migrated, a newer refused.
        self.migrated = self.runtime.migrate()
        self.identity = self.runtime.identity
        acct = self.identity.account()
        self.account = Account(acct.account_id, acct.region)
        self.state_db = self.runtime.state_db
        self.trails = self.runtime.trails
        self.channels = self.runtime.channels
        self.keys = self.runtime.signing_keys
        # The service is the KMS's KeyUsers: a key its logging trails encrypt with is not deleted.
        self.kms = self.runtime.kms(self.account.account_id, self.account.region, users=self)
        self.spool = self.runtime.spool
        self.history = self.runtime.history
        # The service is the ingest's Admission: its backlog policy decides.
        self.ingest = Ingest(self.spool, self.account.region, self.clock, config.max_event_age, admission=self)
        # Every reader of the spool; the indexer and the trail workers run threads of their own.
        self.consumers = ConsumerRegistry(self.spool)
        self.consumers.add(_HistoryIndexing(self), own_thread=True)
        self._workers: dict[str, TrailWorker] = {}
        self._stores: dict[str, ObjectStore] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._indexed_seq = max(0, self.history.last_indexed_seq())  # seqs start at 1
        self._index_cond = threading.Condition()
        self._last_purge = 0.0
        self._backlog_checked = -BACKLOG_RECHECK_S
        self._backlog_over = False
        self._backlog_lock = threading.Lock()
        self.worm: dict[str, WormStatus] = {}  # bucket -> outcome of the last conformance probe
        self.quarantine = Quarantine(config.quarantine_dir)
        self._quarantine_lock = threading.Lock()
        self._periodic: list[Callable[[], None]] = []
        from trailkeeper.monitoring.loggroups import RetentionPurge  # built only for this task

        self.add_periodic(RetentionPurge(lambda: self.runtime.log_groups, self.emit_service, self.clock))
        # Trails forwarding to CloudWatch Logs: one spool consumer each (monitoring.forwarder).
        self._offsets = SqliteOffsets(self.state_db)
        self.forwarding_status = SqliteForwardingStatus(self.state_db)
        self.forwarding = Forwarding(lambda: self.forwarding_targets, self.forwarding_status)
        # Event rules run on the acknowledgement path: a consumer of the spool, not of deliveries.
        self.consumers.add(self.rules.consumer(self.spool, self._offsets, self.set_aside))

    # ---- life cycle ----
    def start(self) -> None:
        self.keys.current()
        for forwarding in self.trails.all():
            if forwarding.config.forwards:
                self._sync_forwarder(forwarding.config, forwarding.config)
        if self.background:
            from trailkeeper.monitoring.alarm_timer import AlarmTimer

            alarms = AlarmTimer(lambda: self.runtime.cloudwatch, self._stop)
            for name, target in (("history-indexer", self._index_loop), ("maintenance", self._maintenance_loop),
                                 ("alarm-timer", alarms.run)):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
            self.consumers.start()
        for trail in self.trails.all():
            self._ensure_worker(trail.config.name)
        self.emit_service("ServerStarted", {"pid": _pid(), "dataDir": str(self.config.data_dir)})
        if self.rules.detections is not None:
            self.rules.detections.current()  # loaded (and the load recorded) before any event is offered
        for done in self.migrated:
            self.emit_service("DataDirectoryMigrated", {"database": done.path.name, "fromSchemaVersion": done.from_version,
                                                        "toSchemaVersion": done.to_version})
        self.migrated = []
        self.report_quarantine()
        self.drain_inbox()
        if self.background:  # SNS deliveries (those a crash left queued first) and alarm notifications
            self.notifier.start()
            self.rules.start()
            self.alert_sender.start()
        for trail in self.trails.all():
            self.probe_worm(trail.config)

    def close(self, flush_timeout: float = 10.0) -> dict[str, int]:
        """Record the stop, deliver what is pending (bounded), stop every thread, close files.
        Returns the events each logging trail still had waiting (kept in the spool)."""
        self.emit_service("ServerStopped", {"pid": _pid()})
        self.flush(flush_timeout)
        top = self.spool.next_seq()
        left = {t.config.name: top - t.state.offset_seq for t in self.trails.all()
                if t.state.is_logging and t.state.offset_seq < top}
        self._stop.set()
        self.consumers.stop()
        for worker in self._workers.values():
            worker.stop()
        for thread in [*self._workers.values(), *self._threads]:
            if thread.is_alive():
                thread.join(timeout=5)
        if "notifier" in self.__dict__:
            self.notifier.stop()
        self.rules.stop()
        if "alert_sender" in self.__dict__:
            self.alert_sender.stop()
        self.runtime.close()
        return left

    @cached_property
    def notifier(self) -> NotificationRunner:
        """The SNS delivery worker and the CloudWatch alarm sender (notify/)."""
        return NotificationRunner(self.runtime.notifications, self.runtime.cloudwatch, self.emit_service, self.clock,
                                  self.config.smtp)

    @cached_property
    def rules(self) -> RulesRunner:
        """The default event bus's rules: matching on the acknowledgement path, targets, retries."""
        def publish(topic_arn: str, message: str, dedup_key: str) -> None:
            self.runtime.notifications.publish(topic_arn, message, dedup_key=dedup_key)

        detections = Detections(self.config.detection_rules_dir, self.config.sigma_placeholders,
                                self.runtime.alerts.on_matches, self.emit_service)
        return RulesRunner(self.runtime.event_bus, publish, self.clock, self.emit_service, detections)

    @cached_property
    def alert_sender(self) -> AlertSender:
        """Publishes opened alerts to their severity's topic, from the alerts' crash-safe outbox."""
        return AlertSender(self.runtime.alerts, self.runtime.notifications.publish, emit=self.emit_service)

    def flush(self, timeout: float) -> None:
        """Deliver every spooled event of logging trails now (used at shutdown and by tests):
        every consumer is flushed through the registry (pumped in the foreground when the service
        runs no threads), then what the flush itself recorded is waited for in the history."""
        deadline = time.monotonic() + timeout
        self.consumers.flush(self.spool.next_seq(), timeout, foreground=not self.background)
        if self.background:
            self.wait_indexed(self.spool.next_seq() - 1, max(0.0, deadline - time.monotonic()))

    # ---- recording ----
    def emit(self, record: dict[str, Any]) -> None:
        """Append one self-audit record durably (blocks until fsynced)."""
        self.spool.append([audit.encode(record)])

    def submit(self, record: dict[str, Any]) -> Future[AppendResult]:
        """Queue one self-audit record for the next group commit; the future resolves once it
        is fsynced (for callers that must not block a thread while they wait)."""
        return self.spool.submit([audit.encode(record)])

    def add_periodic(self, task: Callable[[], None]) -> None:
        """Run `task` in every maintenance round (e.g. the API's summary of suppressed refusals)."""
        self._periodic.append(task)

    def emit_service(self, name: str, details: dict[str, Any], resources: list[dict[str, str]] | None = None,
                     source: str = audit.SERVICE_SOURCE) -> None:
        self.emit(audit.service_event_record(self.account.account_id, self.account.region, self.clock.now(),
                                             name, details, source, resources))

    def _emit_trail_event(self, name: str, trail: Trail, details: dict[str, Any]) -> None:
        arn = self.trail_arn(trail.config.name)
        self.emit_service(name, {"trailARN": arn, **details},
                          [{"ARN": arn, "accountId": self.account.account_id, "type": "AWS::CloudTrail::Trail"}],
                          source=audit.CLOUDTRAIL_SOURCE)

    def drain_inbox(self) -> int:
        """Append records that offline commands (validate) left in the inbox, then remove them.
        The file name is the idempotency key, so a crash between append and unlink cannot
        append the record twice."""
        inbox = self.config.data_dir / "inbox"
        if not inbox.is_dir():
            return 0
        names = sorted(p for p in inbox.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        for path in names:
            body = path.read_bytes()
            try:
                record = orjson.loads(body)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError:  # orjson.JSONDecodeError is one
                path.rename(path.with_suffix(".bad"))
                continue
            # Received now, whenever the offline command wrote it; the key and hash stay those of
            # the file, so a retry after a crash is still recognised as the same record.
            record["metadata"] = {**(record.get("metadata") or {}), **audit.received(self.clock.now())}
            self.ingest.append([orjson.dumps(record)], idem_key=f"inbox:{path.name}",
                               idem_hash=hashlib.sha256(body).digest())  # not admitted: our own record
            path.unlink()
        return len(names)

    # ---- quarantine (records a consumer cannot process) ----
    def set_aside(self, consumer: str, seq: int, body: bytes, reason: str) -> None:
        """Keep a record a consumer cannot process, durably, and report it; the consumer then
        commits past it (an unreadable record never stops a consumer)."""
        self.quarantine.put(consumer, seq, body, reason, self.clock.now())
        log.error("%s: spooled record %d set aside in %s: %s", consumer, seq, self.config.quarantine_dir, reason)
        self.report_quarantine()

    def report_quarantine(self) -> int:
        """Record one `RecordQuarantined` event per entry not yet reported (idempotent across
        crashes: the spool's idempotency key is the entry itself)."""
        with self._quarantine_lock:
            entries = self.quarantine.unreported()
            for entry in entries:
                record = audit.service_event_record(
                    self.account.account_id, self.account.region, self.clock.now(), "RecordQuarantined",
                    {"consumer": entry.consumer, "seq": entry.seq, "reason": entry.reason, "file": str(entry.path)})
                key = f"quarantine:{entry.consumer}:{entry.seq}"
                self.ingest.append([orjson.dumps(record)], idem_key=key, idem_hash=hashlib.sha256(key.encode()).digest())
                self.quarantine.mark_reported(entry)
            return len(entries)

    # ---- history consumer ----
    def _index_loop(self) -> None:
        """Feed the indexer process; while it indexes one batch, read the next (pipelined)."""
        indexer = self._new_indexer()
        in_flight = 0  # last seq of the batch being indexed, 0 if none
        sent_at = 0.0
        try:
            while not self._stop.is_set():
                try:
                    batch = self.spool.read(max(self._indexed_seq, in_flight) + 1, INDEX_BATCH, INDEX_MAX_BYTES)
                    if in_flight:
                        done = indexer.wait()
                        in_flight = 0
                        with self._index_cond:
                            self._indexed_seq = max(self._indexed_seq, done)
                            self._index_cond.notify_all()
                        if indexer.poisoned:
                            self.report_quarantine()
                    if not batch:
                        self.spool.wait_for(self._indexed_seq + 1, 0.5)
                        continue
                    if self._coalesce(len(batch), sent_at):
                        continue  # read again: a fuller batch, nothing in flight now
                    indexer.send(batch)
                    in_flight = batch[-1][0]
                    sent_at = time.monotonic()
                except Exception as e:
                    in_flight = 0
                    if self._stop.is_set():
                        break  # shutting down: nothing failed, the loop was only interrupted
                    self._indexer_failed(indexer, e)
                    if self._stop.wait(1.0):
                        break
                    indexer.close()
                    indexer = self._new_indexer()
        finally:
            indexer.close()

    def _new_indexer(self) -> IndexerProcess:
        return IndexerProcess(self.config.history_db, self.config.quarantine_dir)

    def _indexer_failed(self, indexer: IndexerProcess, error: Exception) -> None:
        if isinstance(error, HistoryError) and not indexer.alive:
            # A dead child is not a bug in this loop: say what happened, without a traceback.
            log.error("the history indexer process died (%s); restarting it, indexing resumes from seq %d",
                      indexer.exit_description(), self._indexed_seq + 1)
        else:
            log.exception("history indexing failed; restarting the indexer and retrying")

    def _coalesce(self, batch_size: int, sent_at: float) -> bool:
        """Under a trickle of records (each API call writes its own audit record), wait a
        little so that one indexer round trip carries many of them: a round trip costs both
        processes far more than a record does. A full batch goes at once. True if it waited."""
        left = sent_at + INDEX_COALESCE_S - time.monotonic()
        if left <= 0 or batch_size >= INDEX_BATCH:
            return False
        self._stop.wait(left)
        return True

    @property
    def indexed_seq(self) -> int:
        return self._indexed_seq

    def index_lag(self) -> int:
        """Acknowledged events not yet searchable in the history."""
        return self.spool.next_seq() - 1 - self._indexed_seq

    def index_pending(self) -> int:
        """Index everything appended so far (the indexer thread's work, done inline)."""
        done = 0

        def set_aside(seq: int, body: bytes, reason: str) -> None:
            self.quarantine.put(INDEXER_CONSUMER, seq, body, reason, self.clock.now())

        while batch := self.spool.read(self._indexed_seq + 1, INDEX_BATCH, INDEX_MAX_BYTES):
            if self.history.index(batch, set_aside):
                self.report_quarantine()
            with self._index_cond:
                self._indexed_seq = batch[-1][0]
            done += len(batch)
        return done

    def pump(self, rounds: int = 1000) -> None:
        """Foreground mode: run every consumer until none has work left (tests, tools)."""
        self.consumers.pump(rounds)

    def wait_indexed(self, seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._index_cond:
            while self._indexed_seq < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._index_cond.wait(left)
        return True

    # ---- maintenance: spool trimming and history retention ----
    def _maintenance_loop(self) -> None:
        while not self._stop.wait(MAINTENANCE_EVERY_S):
            try:
                self.drain_inbox()
                self.report_quarantine()
                for task in self._periodic:
                    task()
                self._trim_spool()
                self._maybe_purge()
                self.maintain_keys()
            except Exception:
                log.exception("maintenance failed; will retry")

    def maintain_keys(self) -> None:
        """KMS key rotation and deletion when due; each change is recorded as a KMS event."""
        done = self.kms.maintain(self.clock.now())
        changes = [("RotateKey", arn, {"rotationType": "AUTOMATIC"}) for arn in done.rotated]
        changes += [("DeleteKey", arn, {}) for arn in done.deleted]
        for name, arn, details in changes:
            self.emit_service(name, {"keyId": arn, **details},
                              [{"ARN": arn, "accountId": self.account.account_id, "type": "AWS::KMS::Key"}],
                              source=audit.KMS_SOURCE)

    def _trim_spool(self) -> None:
        self.consumers.trim()  # below what every consumer has durably consumed

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < self.config.purge_interval.total_seconds():
            return
        self._last_purge = now
        self.purge_history()

    def purge_history(self) -> int:
        cutoff = self.clock.now() - self.config.retention
        removed = int(self.history.purge(cutoff))
        self.emit_service("PurgeEventHistory", {"olderThan": iso_seconds(cutoff), "eventsRemoved": removed,
                                                "retentionDays": self.config.retention / timedelta(days=1)})
        return removed

    # ---- trails ----
    def trail_arn(self, name: str) -> str:
        return layout.trail_arn(self.account.region, self.account.account_id, name)

    def resolve_trail_name(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            prefix = f"arn:aws:cloudtrail:{self.account.region}:{self.account.account_id}:trail/"
            if not name_or_arn.startswith(prefix):
                raise TrailError("CloudTrailARNInvalidException", f"ARN {name_or_arn} is not a trail of this account and region.")
            return name_or_arn[len(prefix):]
        return name_or_arn

    def get_trail(self, name_or_arn: str) -> Trail:
        name = self.resolve_trail_name(name_or_arn)
        trail = self.trails.find(name)
        if trail is None:
            raise TrailError("TrailNotFoundException", f"Unknown trail: {name} for the user: {self.account.account_id}")
        return trail

    def open_store(self, trail: Trail) -> ObjectStore:
        return self.open_location(trail.config.location, trail.config.object_lock_days)

    def open_location(self, place: Location, object_lock_days: int = 0) -> ObjectStore:
        """The store of a place a trail delivers (or delivered) to; one per place, reused."""
        key = f"{place.destination}|{place.bucket}|{object_lock_days}"
        store = self._stores.get(key)
        if store is None:
            store = open_destination(place.destination, place.bucket, object_lock_days, self.config.s3, self.clock)
            if self._wrap_store is not None:
                store = self._wrap_store(store)
            self._stores[key] = store
        return store

    # ---- WORM conformance (integrity-and-compliance.md §5.3) ----
    def probe_worm(self, config: TrailConfig) -> None:
        """Run the Object Lock conformance probe on a trail's bucket when the trail asks for
        retention; only a passing probe lets status call the bucket WORM. In the background
        when the service runs threads: a slow store must not hold the server's start."""
        if not config.object_lock_days or not is_s3(config.destination):
            return
        self.worm[config.bucket] = WormStatus(None, "probe running")
        if self.background:
            threading.Thread(target=self._probe, args=(config.bucket,), name="worm-probe", daemon=True).start()
        else:
            self._probe(config.bucket)

    def worm_status(self, config: TrailConfig) -> WormStatus | None:
        """The probe's verdict on a trail's bucket, for trails that ask for Object Lock."""
        return self.worm.get(config.bucket) if config.object_lock_days else None

    def _probe(self, bucket: str) -> None:
        from trailkeeper.storage.probe import run_probe
        from trailkeeper.storage.s3 import S3Settings, s3_client

        try:
            report = run_probe(s3_client(self.config.s3 or S3Settings()), bucket, self.clock.now())
        except TrailkeeperError as e:
            self.worm[bucket] = WormStatus(False, f"probe could not run: {e}")
            self.emit_service("StorageProbeFailed", {"bucket": bucket, "error": str(e)})
            return
        failed = [f"{s.name}: {s.detail}" for s in report.steps if s.required and not s.passed]
        self.worm[bucket] = WormStatus(report.worm, "; ".join(failed) or "every required step passed")
        self.emit_service("StorageProbePassed" if report.worm else "StorageProbeFailed",
                          {"bucket": bucket, "worm": report.worm, "failedSteps": failed})

    def trails_using_key(self, key_arn: str) -> list[str]:
        """Logging trails whose KmsKeyId names this key (a key they use must not be deleted)."""
        using = []
        for trail in self.trails.all():
            ref = trail.config.kms_key_id
            if not ref or not trail.state.is_logging:
                continue
            try:
                resolved = self.kms.resolve(ref)
            except TrailkeeperError:
                continue
            if resolved == key_arn:
                using.append(trail.config.name)
        return using

    # ---- backlog policy (integrity-and-compliance.md §8) ----
    def backlog(self) -> int:
        """The most undelivered events any logging trail has waiting in the spool."""
        top = self.spool.next_seq()
        return max((top - t.state.offset_seq for t in self.trails.all() if t.state.is_logging), default=0)

    def admit(self) -> None:
        """Called before new events are accepted. Past `max_backlog_events`, fail-closed refuses
        them (BacklogFullError → 503) and fail-open accepts them; either way the crossing and
        its end are recorded as events (the alarm), once each."""
        now = time.monotonic()
        with self._backlog_lock:
            if now - self._backlog_checked < BACKLOG_RECHECK_S:
                over = self._backlog_over
            else:
                self._backlog_checked = now
                over = self._backlog_transition(self.backlog())
        if over and self.config.backlog_policy == FAIL_CLOSED:
            raise BacklogFullError(
                f"{self.config.max_backlog_events} undelivered events are waiting for a failing destination; "
                "new events are refused (backlog_policy = fail-closed)",
                "fix the destination or KMS key shown by `trailkeeper status`; retry later")

    def rules_status(self) -> dict[str, Any]:
        return self.rules.status()

    def notification_counts(self) -> dict[str, Any]:
        return self.runtime.notifications.delivery_counts().to_dict()

    @property
    def backlog_over(self) -> bool:
        """Whether the last backlog measurement was at or past the limit."""
        return self._backlog_over

    def _backlog_transition(self, backlog: int) -> bool:
        over = backlog >= self.config.max_backlog_events
        if over != self._backlog_over:
            name = "BacklogLimitReached" if over else "BacklogLimitCleared"
            self.emit_service(name, {"backlogEvents": backlog, "maxBacklogEvents": self.config.max_backlog_events,
                                     "policy": self.config.backlog_policy})
            self._backlog_over = over
        return over

    def create_trail(self, config: TrailConfig) -> Trail:
        layout.validate_trail_name(config.name)
        if self.trails.count() >= MAX_TRAILS:
            raise TrailError("MaximumNumberOfTrailsExceededException", f"User: {self.account.account_id} already has {MAX_TRAILS} trails in {self.account.region}.")
        self._check_destination(config)
        if config.forwards:
            start_fresh(config.name, self.spool, self._offsets)
        trail = self.trails.create(config, self.clock.now())
        self._sync_forwarder(None, config)
        self._ensure_worker(config.name)
        self.probe_worm(config)
        return trail

    def update_trail(self, config: TrailConfig) -> Trail:
        current = self.get_trail(config.name)
        if config.location != current.config.location:
            if current.state.is_logging and current.state.stop_seq is not None:
                self._wait_stopped(config.name, 15.0)  # a stop being finished: its final digest first
                current = self.get_trail(config.name)
            if current.state.is_logging:
                # A chain of signed digests lives in one place: close it where it is, then move.
                raise TrailError("ConflictException", f"Trail {config.name} is logging; its bucket, prefix and "
                                 "destination change only while it is stopped: StopLogging, UpdateTrail, "
                                 "StartLogging (each location keeps its own signed chain).")
            self._check_destination(config)
        if config.forwards and not current.config.forwards:
            # Before the change is saved: a crash in between must not resume an old offset.
            start_fresh(config.name, self.spool, self._offsets)
        self.trails.update_config(config)
        self._sync_forwarder(current.config, config)
        self._wake(config.name)
        self.probe_worm(config)
        return self.get_trail(config.name)

    def start_logging(self, name_or_arn: str) -> None:
        trail = self.get_trail(name_or_arn)
        if trail.state.is_logging and trail.state.stop_seq is None:
            return
        now = self.clock.now().replace(microsecond=0)
        state = replace(trail.state, is_logging=True, stop_seq=None, offset_seq=max(trail.state.offset_seq, self.spool.next_seq()),
                        start_logging_time=now)
        if trail.state.stop_seq is not None:  # a stop still being finished: keep its offset, cancel it
            state = replace(state, offset_seq=trail.state.offset_seq)
        self.trails.save_state(trail.config.name, state)
        self._ensure_worker(trail.config.name)

    def stop_logging(self, name_or_arn: str) -> None:
        """Deliver up to the current spool end (StopLogging's own event included), then finish."""
        trail = self.get_trail(name_or_arn)
        if not trail.state.is_logging or trail.state.stop_seq is not None:
            return
        now = self.clock.now()
        state = replace(trail.state, stop_seq=self.spool.next_seq() + 1, stop_logging_time=now)
        self.trails.mark_stopped(trail.config.name, state, now)
        self._wake(trail.config.name)

    def delete_trail(self, name_or_arn: str, timeout: float = 15.0) -> None:
        trail = self.get_trail(name_or_arn)
        name = trail.config.name
        if trail.state.is_logging:
            self.stop_logging(name)
            self._wait_stopped(name, timeout)
        worker = self._workers.pop(name, None)
        if worker is not None:
            self.consumers.remove(worker.consumer_name)
        self._sync_forwarder(trail.config, None)
        if worker and worker.is_alive():
            worker.stop()
            worker.join(timeout=5)
        self.trails.delete(name, self.clock.now())

    def _wait_stopped(self, name: str, timeout: float) -> None:
        """Wait (bounded) until a stopping trail has delivered everything and its final digest."""
        deadline = time.monotonic() + timeout
        while self.trails.get(name).state.is_logging:
            if not self.background:
                self.pump()
                if not self.trails.get(name).state.is_logging:
                    break
            if time.monotonic() > deadline:
                raise TrailError("ConflictException", f"Trail {name} still has undelivered events (destination error: "
                                 f"{self.trails.get(name).state.latest_delivery_error or 'none'}); retry when delivery succeeds.")
            time.sleep(0.05)

    def _check_destination(self, config: TrailConfig) -> None:
        # Every place any trail delivers or delivered to, live or deleted: one folder, one bucket.
        others = [(place.destination, place.bucket) for name, place in self.trails.places()
                  if (name, place) != (config.name, config.location)]
        problem = folder_destination_problem(config.destination, config.bucket, self.config.data_dir,
                                             self.config.buckets_dir, others)
        if problem is not None:
            raise TrailError("InvalidParameterException", f"Destination refused: {problem}.")

    # ---- forwarding to CloudWatch Logs ----
    @cached_property
    def forwarding_targets(self) -> ForwardingTargets:
        return ForwardingTargets(self.runtime.log_groups, self.runtime.roles, self.account.account_id,
                                 self.account.region)

    def _sync_forwarder(self, before: TrailConfig | None, after: TrailConfig | None) -> None:
        """Run a forwarding consumer for a trail exactly while it forwards. A trail that starts
        forwarding has had its offset moved to the spool's end (`start_fresh`) before it was saved."""
        config = after or before
        assert config is not None
        name = consumer_name(config.name)
        if after is None or not after.forwards:
            self.consumers.remove(name)
            if after is None:
                self.forwarding_status.forget(config.name)
            return
        if self.consumers.get(name) is None:
            handler = TrailForwarder(config.name, self.trails, self.forwarding_targets, self.forwarding_status,
                                     self.clock, self._emit_trail_event)
            self.consumers.add(forwarding_consumer(config.name, self.spool, self._offsets, handler, self.set_aside))

    def _ensure_worker(self, name: str) -> None:
        worker = self._workers.get(name)
        if worker is not None and worker.is_alive():
            worker.wake()
            return
        ctx = DeliveryContext(
            account_id=self.account.account_id, region=self.account.region, spool=self.spool,
            trails=self.trails, keys=self.keys, clock=self.clock, open_store=self.open_store,
            emit=self._emit_trail_event, max_batch_events=self.config.max_batch_events,
            max_batch_bytes=self.config.max_batch_bytes, max_backoff=self.config.retry_max_backoff,
            data_keys=self.kms, set_aside=self.set_aside,
        )
        worker = TrailWorker(name, ctx)
        self.consumers.remove(worker.consumer_name)  # a worker that died is replaced
        self._workers[name] = worker
        self.consumers.add(worker, own_thread=True)
        if self.background and not self._stop.is_set():
            worker.start()

    def _wake(self, name: str) -> None:
        worker = self._workers.get(name)
        if worker:
            worker.wake()

    # ---- ingest ----
    def record(self, batch: Sequence[Mapping[str, Any]], caller: records.Caller, *, source_ip: str = IN_PROCESS_ORIGIN,
               user_agent: str = IN_PROCESS_AGENT, idem_key: str | None = None) -> list[str]:
        """The in-process API: validate a whole batch of record objects, append it durably
        (fsynced before this returns), and return the event IDs. Same path as the HTTP API."""
        return self.ingest.record(batch, caller, source_ip=source_ip, user_agent=user_agent, idem_key=idem_key)


class _HistoryIndexing:
    """The history indexer as a consumer: its offset is the history database's last seq (one
    transaction with what it indexed), its background loop `Service._index_loop`."""

    consumer_name = INDEXER_CONSUMER

    def __init__(self, service: Service) -> None:
        self._service = service

    def needed(self) -> int | None:
        return self._service.indexed_seq + 1

    def step(self) -> bool:
        return self._service.index_pending() > 0


def _pid() -> int:
    return os.getpid()
