"""The one way records enter the spool: admit → normalise → spool.

HTTP ingest (`POST /v1/events`), CloudTrail Lake's PutAuditEvents, the in-process API
(`Service.record`) and the inbox of offline commands all go through `Ingest`:
- **admit**: the backlog policy (fail-closed refuses new events while a destination is down
  past `max_backlog_events`), asked of the service through the `Admission` protocol;
- **normalise**: `records.normalize_batch` (all or nothing; PutAuditEvents shapes each event
  with its own rules first) under an `IngestContext` built here, so every path stamps the same
  region, receipt time and event-age limit;
- **spool**: one durable append (group commit), with the request's idempotency key; the
  acknowledged event IDs are those issued, or, for a retry the spool recognised, those stored
  the first time.
Records trailkeeper writes about itself (`Service.emit`, the inbox) are not admitted: the
audit of the audit system is never refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import timedelta
from typing import Protocol

import orjson

from trailkeeper import records
from trailkeeper.clock import Clock
from trailkeeper.spool import AppendResult, Spool

IN_PROCESS_ORIGIN = "127.0.0.1"
IN_PROCESS_AGENT = "trailkeeper-in-process"


class Admission(Protocol):
    """Who decides whether new events are accepted now (the service: its backlog policy)."""

    def admit(self) -> None:
        """Return to accept; raise BacklogFullError to refuse (HTTP 503)."""
        ...


class Ingest:
    def __init__(self, spool: Spool, region: str, clock: Clock, max_event_age: timedelta,
                 admission: Admission) -> None:
        self._spool = spool
        self._region = region
        self._clock = clock
        self._max_event_age = max_event_age
        self._admission = admission

    def admit(self) -> None:
        """Raises BacklogFullError when the backlog policy refuses new events."""
        self._admission.admit()

    def context(self, caller: records.Caller, source_ip: str, user_agent: str,
                issued: records.EventIdLog | None = None) -> records.IngestContext:
        ctx = records.IngestContext(caller, self._region, source_ip, user_agent, self._clock.now(),
                                    max_event_age=self._max_event_age)
        return ctx if issued is None else replace(ctx, new_event_id=issued)

    @staticmethod
    def normalise(batch: Sequence[object], ctx: records.IngestContext) -> list[bytes]:
        """The stored form of a whole batch, or RecordError naming the first bad record and field."""
        return records.normalize_batch(list(batch), ctx)

    def submit(self, bodies: list[bytes], *, idem_key: str | None = None,
               idem_hash: bytes | None = None) -> Future[AppendResult]:
        """Append durably; the future resolves once the batch is fsynced."""
        return self._spool.submit(bodies, idem_key=idem_key, idem_hash=idem_hash)

    def append(self, bodies: list[bytes], *, idem_key: str | None = None,
               idem_hash: bytes | None = None) -> AppendResult:
        return self.submit(bodies, idem_key=idem_key, idem_hash=idem_hash).result()

    def acknowledged_ids(self, result: AppendResult, issued: list[str]) -> list[str]:
        """The event IDs to answer with: those just issued, or those of the first attempt."""
        return self.stored_ids(result.first_seq, result.count) if result.duplicate else issued

    def stored_ids(self, first_seq: int, count: int) -> list[str]:
        bodies = [b for _, b in self._spool.read(first_seq, count, 1 << 62)][:count]
        return [str(orjson.loads(b)["eventID"]) for b in bodies]

    def record(self, batch: Sequence[Mapping[str, object]], caller: records.Caller, *,
               source_ip: str = IN_PROCESS_ORIGIN, user_agent: str = IN_PROCESS_AGENT,
               idem_key: str | None = None) -> list[str]:
        """The whole path, synchronously (the in-process API): the event IDs once durable."""
        self.admit()
        issued = records.EventIdLog()
        bodies = self.normalise(batch, self.context(caller, source_ip, user_agent, issued))
        # The request as sent, as the HTTP path hashes its body (the stored form has fresh IDs).
        idem_hash = hashlib.sha256(orjson.dumps(list(batch), option=orjson.OPT_SORT_KEYS)).digest() if idem_key else None
        result = self.append(bodies, idem_key=idem_key, idem_hash=idem_hash)
        return self.acknowledged_ids(result, issued.issued)
