"""CloudWatch Logs: log groups, streams, events and metric filters, with AWS's rules and limits.

`LogGroups` is the domain service the `logs` API (api/logs.py) and, later, the trail forwarder
call; it decides, the repository (monitoring.loggroups_store) stores. Times are epoch
milliseconds. Retention is enforced: `purge_expired` deletes what a group no longer keeps.

A group associated with a KMS key (CreateLogGroup kmsKeyId, AssociateKmsKey) stores the events
put from then on encrypted (monitoring.logcrypto: a data key per group, wrapped by the KMS key,
AES-GCM per event), through the `LogKeyProvider` given to `LogGroups`; reads decrypt. Events
stored before the association, or after DisassociateKmsKey, are stored in clear. A KMS key that
is disabled, pending deletion or deleted makes its events unreadable (AccessDeniedException)
until it is usable again (docs/log-groups.md).

With a `MetricSink`, each PutLogEvents batch, once stored, goes through the group's metric
filters (monitoring.metricfilters, compiled once per group and recompiled after a filter is put
or deleted) and the datums go to the sink.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from trailkeeper.clock import Clock
from trailkeeper.errors import TrailkeeperError
from trailkeeper.monitoring.filterpattern import (
    MAX_REGEX_PATTERNS_PER_LOG_GROUP,
    FilterPattern,
    FilterPatternError,
    check_dimensions,
    check_metric_selector,
    parse,
)
from trailkeeper.monitoring.logcrypto import (
    DATA_KEY_CACHE_TTL_S,
    DATA_KEY_MAX_AGE_MS,
    DataKeyCache,
    KeyNotFoundError,
    KeyUnreachableError,
    KeyUnusableError,
    LogKeyError,
    SealBrokenError,
    data_key_context,
    event_aad,
    open_message,
    seal_message,
)
from trailkeeper.monitoring.loggroups_store import (
    EventQuery,
    LogGroupRecord,
    LogGroupRepository,
    LogStreamRecord,
    MetricFilterRecord,
    NewEvent,
    Sealer,
    StoredEvent,
    event_bytes,
)
from trailkeeper.monitoring.metricfilters import (
    CompiledFilters,
    LogEvent,
    MetricSink,
    compile_filters,
)

RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                  2922, 3288, 3653)
MAX_BATCH_BYTES = 1_048_576
MAX_BATCH_EVENTS = 10_000
MAX_EVENT_BYTES = 262_144
MAX_BATCH_SPAN = timedelta(hours=24)
MAX_AHEAD = timedelta(hours=2)
MAX_AGE = timedelta(days=14)
MAX_TAGS = 50
MAX_FILTERS_PER_GROUP = 100
MAX_DIMENSIONS = 3
MAX_TEST_MESSAGES = 50
PURGE_EVERY = timedelta(minutes=5)  # retention is in days: a few minutes late is well inside it
DEFAULT_PAGE = 50
DEFAULT_EVENTS_PAGE = 10_000
_GROUP_NAME = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
_DAY_MS = 86_400_000
_SCAN_BATCH = 1000  # events read from the repository at a time while filtering
# How long one FilterLogEvents call searches before answering with what it found and a token
# (issue #11: a first page within a second over a million events, whatever the pattern).
FILTER_SCAN_BUDGET_S = 0.8

log = logging.getLogger(__name__)


class LogsError(TrailkeeperError):
    """A CloudWatch Logs request was refused; `code` is AWS's exception name."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


def invalid(message: str) -> LogsError:
    return LogsError("InvalidParameterException", message)


def _not_found(what: str) -> LogsError:
    return LogsError("ResourceNotFoundException", f"The specified {what} does not exist.")


class LogKeyProvider(Protocol):
    """The KMS as log groups use it (monitoring.logcrypto.KmsLogKeys over trailkeeper's Kms).
    Each method raises logcrypto's KeyNotFoundError, KeyUnusableError, KeyUnreachableError or
    SealBrokenError, never the KMS's own errors."""

    def check_usable(self, key_ref: str) -> str:
        """The key ARN of a key id, key ARN, alias name or alias ARN whose key is Enabled."""
        ...

    def generate_data_key(self, key_arn: str, context: Mapping[str, str]) -> tuple[bytes, bytes]:
        """(plaintext, wrapped) of a new data key under `key_arn`, bound to `context`."""
        ...

    def decrypt_data_key(self, wrapped: bytes, context: Mapping[str, str], key_arn: str) -> bytes: ...


def _refused_key(key_ref: str, e: LogKeyError) -> LogsError:
    """Why a key cannot be associated: InvalidParameterException, as AWS answers for a key that
    does not exist or is disabled; a KMS that cannot answer is ServiceUnavailableException."""
    if isinstance(e, KeyNotFoundError):
        return invalid(f"kmsKeyId {key_ref} does not name a KMS key of this account and region ({e}); pass the "
                       "key ARN (arn:aws:kms:<region>:<account>:key/<id>), key id or alias ARN of an existing key.")
    if isinstance(e, KeyUnusableError):
        return invalid(f"The KMS key {key_ref} cannot be used now ({e}); enable it (EnableKey, or "
                       "CancelKeyDeletion then EnableKey) and retry.")
    return _kms_unreachable(e)


def _kms_unreachable(e: LogKeyError) -> LogsError:
    return LogsError("ServiceUnavailableException", f"The KMS could not answer ({e}); retry when its root of "
                     "trust is reachable again.", 503)


def _unusable_key(group: str, key_arn: str, e: LogKeyError, doing: str) -> LogsError:
    """An encrypted group's key stopped working: its events cannot be read (or new ones
    written) until it works again. AccessDeniedException, what CloudWatch Logs answers when its
    own use of the key is refused."""
    if isinstance(e, KeyUnreachableError):
        return _kms_unreachable(e)
    if isinstance(e, SealBrokenError):
        return _broken(group, str(e))
    return LogsError("AccessDeniedException", f"Log group {group} cannot {doing}: its events are encrypted under "
                     f"KMS key {key_arn}, which is not usable ({e}). Enable the key (EnableKey, or "
                     "CancelKeyDeletion then EnableKey) and retry; a deleted key's events are lost.")


def _broken(group: str, why: str) -> LogsError:
    return LogsError("InternalFailure", f"Stored log events of group {group} fail their integrity check: {why}. "
                     "The state database was altered outside trailkeeper: restore it from a backup.", 500)


@dataclass(frozen=True)
class LogGroup:
    record: LogGroupRecord
    arn: str
    stored_bytes: int
    metric_filter_count: int


@dataclass(frozen=True)
class Rejected:
    """AWS's rejectedLogEventsInfo: indexes into the request's events (see docs/log-groups.md)."""

    too_new_start: int | None = None
    too_old_end: int | None = None
    expired_end: int | None = None


@dataclass(frozen=True)
class PutResult:
    stored: int  # new events; a dedup_key already stored is not counted
    rejected: Rejected


@dataclass(frozen=True)
class EventPage:
    events: list[StoredEvent]
    forward: str
    backward: str


@dataclass(frozen=True)
class FilterPage:
    events: list[StoredEvent]
    next_token: str | None


@dataclass(frozen=True)
class Transformation:
    metric_name: str
    namespace: str
    value: str
    default: float | None = None
    dimensions: dict[str, str] | None = None
    unit: str | None = None


@dataclass(frozen=True)
class TestMatch:
    number: int
    message: str
    extracted: dict[str, str]


def parse_pattern(text: str) -> FilterPattern:
    """The pattern, or InvalidParameterException naming the position of what is wrong."""
    try:
        return parse(text)
    except FilterPatternError as e:
        raise invalid(f"Invalid filter pattern at character {e.position}: {e}") from e


def _cursor(token: str, kind: str) -> tuple[int, int]:
    try:
        tag, ts, seq = token.split("/")
        if tag == kind:
            return int(ts), int(seq)
    except ValueError:
        pass
    raise invalid("The specified nextToken is invalid: pass a token from a previous answer unchanged.")


class LogGroups:
    """Log groups of one account and region."""

    def __init__(self, repo: LogGroupRepository, clock: Clock, account_id: str, region: str, *,
                 metrics: MetricSink | None = None, keys: LogKeyProvider | None = None,
                 data_key_ttl_s: float = DATA_KEY_CACHE_TTL_S) -> None:
        """Without `keys` no group can be associated with a KMS key (a group encrypted
        earlier cannot be read or written either)."""
        self.repo = repo
        self.keys = keys
        self._data_keys = DataKeyCache(data_key_ttl_s)
        self.clock = clock
        self.account_id = account_id
        self.region = region
        self.metrics = metrics
        # Batches whose metric datapoints were lost (the sink or the filters failed after the
        # events were stored); logged each time, counted here for the operator.
        self.metric_failures = 0
        self._compiled: dict[str, CompiledFilters] = {}
        self._filters_generation = 0  # bumped by every change to any group's filters
        self._filters_lock = threading.Lock()

    def close(self) -> None:
        self.repo.close()

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000)

    def arn(self, name: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account_id}:log-group:{name}"

    def _group(self, name: str) -> LogGroupRecord:
        found = self.repo.get_group(name)
        if found is None:
            raise _not_found("log group")
        return found

    def group_of_arn(self, arn: str) -> str:
        """The name of the log group `arn` names (with or without AWS's trailing ':*')."""
        prefix = self.arn("")
        name = arn.removesuffix(":*")
        if not name.startswith(prefix) or not name[len(prefix):]:
            raise invalid(f"{arn} is not the ARN of a log group of this account: "
                          f"use {prefix}<logGroupName>.")
        return name[len(prefix):]

    # ---- groups -----------------------------------------------------------------------------
    def create_group(self, name: str, tags: dict[str, str] | None = None, kms_key_id: str | None = None) -> None:
        if not _GROUP_NAME.fullmatch(name):
            raise invalid("logGroupName must be 1 to 512 characters of a-z, A-Z, 0-9, '_', '-', '/', '.' "
                          f"and '#'; {name!r} is not.")
        _check_tags(tags or {})
        record = LogGroupRecord(name, self._now_ms(), None, None, dict(tags or {}))
        if kms_key_id is None:
            added = self.repo.add_group(record)
        else:
            if self.repo.get_group(name) is not None:  # before asking the KMS for a data key
                raise LogsError("ResourceAlreadyExistsException", "The specified log group already exists.")
            key_arn, plaintext, wrapped = self._new_data_key(name, kms_key_id)
            added = self.repo.add_group(replace(record, kms_key_id=key_arn), wrapped)
            found = self.repo.get_group(name) if added else None
            if found is not None and found.data_key is not None:
                self._data_keys.put(found.data_key, plaintext)
        if not added:
            raise LogsError("ResourceAlreadyExistsException", "The specified log group already exists.")

    # ---- encryption at rest -----------------------------------------------------------------
    def associate_kms_key(self, name: str, kms_key_id: str) -> None:
        """Events put from now on are encrypted under `kms_key_id` (a new data key); events
        already stored stay as they were, as CloudWatch Logs does."""
        self._group(name)
        key_arn, plaintext, wrapped = self._new_data_key(name, kms_key_id)
        data_key = self.repo.add_data_key(name, key_arn, wrapped, self._now_ms())
        if data_key is None:
            raise _not_found("log group")
        self._data_keys.put(data_key, plaintext)

    def disassociate_kms_key(self, name: str) -> None:
        """Events put from now on are stored in clear; those encrypted stay encrypted and
        readable while their key is usable. A group without a key is left as it is."""
        if not self.repo.clear_data_key(name):
            raise _not_found("log group")

    def _new_data_key(self, group: str, key_ref: str) -> tuple[str, bytes, bytes]:
        """(key ARN, plaintext, wrapped) of a new data key of `group` under `key_ref`, which
        must name an Enabled key of this account's KMS."""
        if self.keys is None:
            raise invalid("This server has no KMS to encrypt log groups with: omit kmsKeyId.")
        if not key_ref or len(key_ref) > 256:
            raise invalid("kmsKeyId must be 1 to 256 characters: a KMS key ARN, key id or alias ARN.")
        try:
            key_arn = self.keys.check_usable(key_ref)
            plaintext, wrapped = self.keys.generate_data_key(key_arn, data_key_context(self.arn(group)))
        except LogKeyError as e:
            raise _refused_key(key_ref, e) from e
        return key_arn, plaintext, wrapped

    def _sealer(self, record: LogGroupRecord, stream: str) -> Sealer | None:
        """How this batch is stored: None in clear, else sealed under the group's current data
        key (replaced first when older than DATA_KEY_MAX_AGE_MS)."""
        key_arn, data_key = record.kms_key_id, record.data_key
        if key_arn is None or data_key is None:
            return None
        keys = self._key_provider(record.name, key_arn, "store events")
        try:
            keys.check_usable(key_arn)
            found = self.repo.data_key(data_key)
            if found is None or found.group != record.name:
                raise SealBrokenError(f"its current data key {data_key} is missing")
            if found.created_ms + DATA_KEY_MAX_AGE_MS <= self._now_ms():
                plaintext, wrapped = keys.generate_data_key(key_arn, data_key_context(self.arn(record.name)))
                fresh = self.repo.add_data_key(record.name, key_arn, wrapped, self._now_ms())
                if fresh is None:
                    raise _not_found("log group")
                data_key = fresh
                self._data_keys.put(data_key, plaintext)
            else:
                plaintext = self._unwrapped(keys, found.id, found.wrapped, found.key_arn, record.name)
        except LogKeyError as e:
            raise _unusable_key(record.name, key_arn, e, "store events") from e
        group = record.name
        return Sealer(data_key, lambda seq, event: seal_message(
            plaintext, event_aad(group, stream, seq, data_key), event.message))

    def _key_provider(self, group: str, key_arn: str, doing: str) -> LogKeyProvider:
        if self.keys is None:
            raise LogsError("ServiceUnavailableException", f"Log group {group} cannot {doing}: it is encrypted "
                            f"under KMS key {key_arn} and this process has no KMS; use the server.", 503)
        return self.keys

    def _unwrapped(self, keys: LogKeyProvider, data_key: int, wrapped: bytes, key_arn: str, group: str) -> bytes:
        cached = self._data_keys.get(data_key)
        if cached is not None:
            return cached
        plaintext = keys.decrypt_data_key(wrapped, data_key_context(self.arn(group)), key_arn)
        self._data_keys.put(data_key, plaintext)
        return plaintext

    def _reveal(self, group: str, events: list[StoredEvent]) -> list[StoredEvent]:
        """`events` with the sealed ones opened. Each KMS key met is checked once per call, so a
        key disabled in the KMS stops reads at once whatever the data key cache holds."""
        if all(e.sealed is None for e in events):
            return events
        opened: dict[int, bytes] = {}
        out = []
        for event in events:
            if event.sealed is None or event.data_key is None:
                out.append(event)
                continue
            key = opened.get(event.data_key)
            if key is None:
                key = opened[event.data_key] = self._read_key(group, event.data_key)
            try:
                message = open_message(key, event_aad(event.group, event.stream, event.seq, event.data_key),
                                       event.sealed)
            except SealBrokenError as e:
                raise _broken(group, f"event {event.seq} of stream {event.stream}: {e}") from e
            out.append(replace(event, message=message, sealed=None))
        return out

    def _read_key(self, group: str, data_key: int) -> bytes:
        found = self.repo.data_key(data_key)
        if found is None or found.group != group:
            raise _broken(group, f"data key {data_key} is not one of this group's")
        keys = self._key_provider(group, found.key_arn, "read events")
        try:
            keys.check_usable(found.key_arn)
            return self._unwrapped(keys, data_key, found.wrapped, found.key_arn, group)
        except LogKeyError as e:
            raise _unusable_key(group, found.key_arn, e, "read events") from e

    def delete_group(self, name: str) -> None:
        data_keys = {k.id for k in self.repo.data_keys(name)}
        removed = self.repo.remove_group(name)
        self._data_keys.forget(data_keys)
        self._forget_filters(name)  # a group created again under this name starts without filters
        if not removed:
            raise _not_found("log group")

    def describe_groups(self, prefix: str = "", limit: int = DEFAULT_PAGE, token: str | None = None
                        ) -> tuple[list[LogGroup], str | None]:
        _check_limit(limit, DEFAULT_PAGE)
        after = token.removeprefix("g/") if token is not None else ""
        if token is not None and not token.startswith("g/"):
            raise invalid("The specified nextToken is invalid: pass a token from a previous answer unchanged.")
        records = self.repo.groups(prefix, after, limit + 1)
        page = records[:limit]
        filters = self.repo.filters()
        out = [LogGroup(r, self.arn(r.name) + ":*", sum(s.stored_bytes for s in self.repo.streams(r.name)),
                        sum(1 for f in filters if f.group == r.name)) for r in page]
        return out, (f"g/{page[-1].name}" if len(records) > limit else None)

    def set_retention(self, name: str, days: int | None) -> None:
        if days is not None and days not in RETENTION_DAYS:
            raise invalid(f"retentionInDays must be one of {', '.join(map(str, RETENTION_DAYS))}; {days} is not.")
        if not self.repo.set_retention(name, days):
            raise _not_found("log group")

    def tags(self, name: str) -> dict[str, str]:
        return dict(self._group(name).tags)

    def tag(self, name: str, tags: dict[str, str]) -> None:
        merged = {**self._group(name).tags, **tags}
        _check_tags(merged)
        self.repo.set_tags(name, merged)

    def untag(self, name: str, keys: Sequence[str]) -> None:
        self.repo.set_tags(name, {k: v for k, v in self._group(name).tags.items() if k not in keys})

    # ---- streams ----------------------------------------------------------------------------
    def create_stream(self, group: str, name: str) -> None:
        if not 1 <= len(name) <= 512 or ":" in name or "*" in name:
            raise invalid("logStreamName must be 1 to 512 characters without ':' or '*'.")
        self._group(group)
        if not self.repo.add_stream(LogStreamRecord(group, name, self._now_ms())):
            raise LogsError("ResourceAlreadyExistsException", "The specified log stream already exists.")

    def describe_streams(self, group: str, prefix: str = "", by_last_event: bool = False, descending: bool = False,
                         limit: int = DEFAULT_PAGE, token: str | None = None
                         ) -> tuple[list[LogStreamRecord], str | None]:
        _check_limit(limit, DEFAULT_PAGE)
        if by_last_event and prefix:
            raise invalid("logStreamNamePrefix cannot be given with orderBy LastEventTime.")
        self._group(group)
        streams = [s for s in self.repo.streams(group) if s.name.startswith(prefix)]
        if by_last_event:
            streams.sort(key=lambda s: (s.last_event_ms or 0, s.name))
        if descending:
            streams.reverse()
        start = 0
        if token is not None:
            start = _cursor(token, "s")[0]
        page = streams[start:start + limit]
        return page, (f"s/{start + limit}/0" if start + limit < len(streams) else None)

    # ---- events -----------------------------------------------------------------------------
    def put_events(self, group: str, stream: str, events: Sequence[NewEvent]) -> PutResult:
        """Store the acceptable events of one batch together, or none; AWS's batch limits
        refuse the whole batch, events too new or too old are left out and reported.

        `NewEvent.dedup_key` makes a resend (the forwarder's retry) store nothing twice."""
        _check_batch(events)
        record = self._group(group)
        if not self.repo.has_stream(group, stream):
            raise _not_found("log stream")
        now = self._now_ms()
        max_age = MAX_AGE.total_seconds() * 1000
        if record.retention_days is not None:
            max_age = min(max_age, record.retention_days * _DAY_MS)
        too_old = sum(1 for e in events if e.timestamp_ms < now - max_age)
        expired = (sum(1 for e in events if e.timestamp_ms < now - record.retention_days * _DAY_MS)
                   if record.retention_days is not None else 0)
        ahead = int(MAX_AHEAD.total_seconds() * 1000)
        too_new = next((i for i, e in enumerate(events) if e.timestamp_ms > now + ahead), None)
        accepted = events[too_old:too_new]
        sealer = self._sealer(record, stream) if accepted else None
        stored = self.repo.append_events(group, stream, accepted, now, sealer) if accepted else 0
        if stored and self.metrics is not None:
            self._publish(self.metrics, group, accepted, stored)
        return PutResult(stored, Rejected(too_new, too_old or None, expired or None))

    def _publish(self, sink: MetricSink, group: str, accepted: Sequence[NewEvent], stored: int) -> None:
        """Apply the group's metric filters to the events just stored and hand the datums to
        `sink`. Never raises: the events are stored already, so PutLogEvents has succeeded and
        a failure here loses only these datapoints (logged and counted in `metric_failures`)."""
        try:
            compiled = self._filters_of(group)
            if not compiled:
                return
            fresh = _stored_events(accepted, stored)
            datums = compiled.apply([LogEvent(e.timestamp_ms, e.message, e.dedup_key) for e in fresh])
            if datums:
                sink.put_metric_data(datums)
        except Exception:  # whatever the sink raises must not turn a stored batch into an error
            self.metric_failures += 1
            log.exception("log group %s: metric datapoints of %d stored events were lost", group, stored)

    def _filters_of(self, group: str) -> CompiledFilters:
        """The group's compiled filters, from the cache or compiled now (and cached unless a
        filter changed meanwhile, so a stale compilation is never kept)."""
        with self._filters_lock:
            found = self._compiled.get(group)
            generation = self._filters_generation
        if found is not None:
            return found
        compiled = compile_filters(self.repo.filters(group))
        for name, why in compiled.skipped:
            log.warning("log group %s: metric filter %s is not applied: %s", group, name, why)
        with self._filters_lock:
            if self._filters_generation == generation:
                self._compiled[group] = compiled
        return compiled

    def _forget_filters(self, group: str) -> None:
        with self._filters_lock:
            self._filters_generation += 1
            self._compiled.pop(group, None)

    def get_events(self, group: str, stream: str, start_ms: int | None = None, end_ms: int | None = None,
                   from_head: bool = False, limit: int = DEFAULT_EVENTS_PAGE, token: str | None = None) -> EventPage:
        """One page of a stream's events, oldest first. The forward token reads on from the
        page's last event; when nothing newer exists it is answered again (AWS's end signal)."""
        _check_limit(limit, DEFAULT_EVENTS_PAGE)
        self._group(group)
        if not self.repo.has_stream(group, stream):
            raise _not_found("log stream")
        query = EventQuery(group, [stream], start_ms, end_ms, limit=limit)
        if token is not None and token.startswith("b/"):
            found = self.repo.events(replace(query, cursor=_cursor(token, "b"), descending=True))[::-1]
        elif token is not None:
            found = self.repo.events(replace(query, cursor=_cursor(token, "f")))
        elif from_head:
            found = self.repo.events(query)
        else:
            found = self.repo.events(replace(query, descending=True))[::-1]
        found = self._reveal(group, found)
        if found:
            first, last = found[0].key, found[-1].key
            return EventPage(found, f"f/{last[0]}/{last[1]}", f"b/{first[0]}/{first[1]}")
        same = token or "f/0/0"
        return EventPage([], same if same.startswith("f/") else "f/0/0", same if same.startswith("b/") else "b/0/0")

    def filter_events(self, group: str, pattern: str = "", streams: Sequence[str] | None = None,
                      stream_prefix: str | None = None, start_ms: int | None = None, end_ms: int | None = None,
                      limit: int = DEFAULT_EVENTS_PAGE, token: str | None = None) -> FilterPage:
        _check_limit(limit, DEFAULT_EVENTS_PAGE)
        if streams is not None and stream_prefix is not None:
            raise invalid("logStreamNames and logStreamNamePrefix cannot both be given.")
        compiled = parse_pattern(pattern)
        self._group(group)
        if stream_prefix is not None:
            streams = [s.name for s in self.repo.streams(group) if s.name.startswith(stream_prefix)]
        cursor = _cursor(token, "e") if token is not None else None
        # Encrypted events have no eventName in the index (it would be plaintext kept in clear):
        # a group that ever had a data key is searched by decrypting every event in range.
        names = None if self.repo.data_keys(group) else _event_names(compiled)
        matched: list[StoredEvent] = []
        deadline = time.monotonic() + FILTER_SCAN_BUDGET_S
        while True:
            batch = self._reveal(group, self.repo.events(EventQuery(group, streams, start_ms, end_ms, cursor,
                                                                    limit=_SCAN_BATCH, event_names=names)))
            for event in batch:
                cursor = event.key
                if compiled.match(event.message) is not None:
                    matched.append(event)
                    if len(matched) == limit:
                        # The page is full: the token reads on after its last event.
                        return FilterPage(matched, f"e/{cursor[0]}/{cursor[1]}")
            if len(batch) < _SCAN_BATCH:
                return FilterPage(matched, None)
            if cursor is not None and time.monotonic() > deadline:
                # As CloudWatch Logs does: a page may hold fewer events (even none) than asked
                # while more data remains to search; the token resumes the search there.
                return FilterPage(matched, f"e/{cursor[0]}/{cursor[1]}")

    def purge_expired(self, now_ms: int | None = None) -> list[tuple[str, int]]:
        """Delete every event older than its group's retention; (group, removed) for each
        group that lost events."""
        now = self._now_ms() if now_ms is None else now_ms
        purged = []
        after = ""
        while page := self.repo.groups("", after, 500):
            for group in page:
                if group.retention_days is not None:
                    removed = self.repo.purge_before(group.name, now - group.retention_days * _DAY_MS)
                    if removed:
                        purged.append((group.name, removed))
            after = page[-1].name
        return purged

    # ---- metric filters ---------------------------------------------------------------------
    def put_metric_filter(self, group: str, name: str, pattern: str, transformations: Sequence[Transformation]
                          ) -> None:
        if not 1 <= len(name) <= 512 or ":" in name or "*" in name:
            raise invalid("filterName must be 1 to 512 characters without ':' or '*'.")
        if len(transformations) != 1:
            raise invalid("metricTransformations must hold exactly one transformation.")
        compiled = parse_pattern(pattern)
        _check_transformation(compiled, transformations[0])
        self._group(group)
        others = [f for f in self.repo.filters(group) if f.name != name]
        if len(others) >= MAX_FILTERS_PER_GROUP:
            raise LogsError("LimitExceededException", f"A log group has at most {MAX_FILTERS_PER_GROUP} metric "
                            "filters; delete one first.")
        if compiled.regex_count and sum(1 for f in others if f.regex) >= MAX_REGEX_PATTERNS_PER_LOG_GROUP:
            raise LogsError("LimitExceededException", f"A log group has at most {MAX_REGEX_PATTERNS_PER_LOG_GROUP} "
                            "filter patterns that use regular expressions; delete one or drop the regex.")
        self.repo.put_filter(MetricFilterRecord(group, name, pattern, [_transformation_dict(transformations[0])],
                                                compiled.regex_count > 0, self._now_ms()))
        self._forget_filters(group)

    def describe_metric_filters(self, group: str | None = None, prefix: str = "", metric: tuple[str, str] | None = None,
                                limit: int = DEFAULT_PAGE, token: str | None = None
                                ) -> tuple[list[MetricFilterRecord], str | None]:
        _check_limit(limit, DEFAULT_PAGE)
        if prefix and group is None:
            raise invalid("filterNamePrefix needs logGroupName.")
        found = [f for f in self.repo.filters(group) if f.name.startswith(prefix)
                 and (metric is None or any((t.get("metricName"), t.get("metricNamespace")) == metric
                                            for t in f.transformations))]
        start = _cursor(token, "m")[0] if token is not None else 0
        page = found[start:start + limit]
        return page, (f"m/{start + limit}/0" if start + limit < len(found) else None)

    def delete_metric_filter(self, group: str, name: str) -> None:
        self._group(group)
        removed = self.repo.remove_filter(group, name)
        self._forget_filters(group)
        if not removed:
            raise _not_found("metric filter")

    def test_metric_filter(self, pattern: str, messages: Sequence[str]) -> list[TestMatch]:
        if not 1 <= len(messages) <= MAX_TEST_MESSAGES:
            raise invalid(f"logEventMessages must hold 1 to {MAX_TEST_MESSAGES} messages.")
        compiled = parse_pattern(pattern)
        out = []
        for number, message in enumerate(messages, start=1):
            found = compiled.match(message)
            if found is not None:
                out.append(TestMatch(number, message, dict(found.extracted_values)))
        return out


def _stored_events(accepted: Sequence[NewEvent], stored: int) -> Sequence[NewEvent]:
    """Which of `accepted` the repository stored, given how many it stored: it skips an event
    whose dedup_key the group already holds (also a repeat within the batch).

    All of them, or none, is exact; so is "all but the in-batch repeats" or "only the events
    without a key". Otherwise the repository does not say which keyed events were new: all are
    counted (an event counted twice, rather than a real one missed) and a warning is logged."""
    if stored == len(accepted):
        return accepted
    seen: set[str] = set()
    unique: list[NewEvent] = []
    for event in accepted:
        if event.dedup_key is not None:
            if event.dedup_key in seen:
                continue
            seen.add(event.dedup_key)
        unique.append(event)
    if len(unique) == stored:
        return unique
    unkeyed = [e for e in unique if e.dedup_key is None]
    if len(unkeyed) == stored:
        return unkeyed
    log.warning("%d of %d keyed log events were already stored but which is unknown: metric filters count "
                "all of them", len(unique) - stored, len(unique) - len(unkeyed))
    return unique


def _event_names(pattern: FilterPattern) -> frozenset[str] | None:
    """The eventName values one of which a pattern needs, when it pins only eventName: the
    store's index narrows the search to those events (FilterPattern.index_key is a necessary
    condition, so nothing that matches is skipped)."""
    key = pattern.index_key()
    if key is None or any(selector != ("eventName",) for selector, _ in key):
        return None
    return frozenset(value for _, value in key)


def _check_limit(limit: int, most: int) -> None:
    if not 1 <= limit <= most:
        raise invalid(f"limit must be between 1 and {most}; {limit} is not.")


def _check_tags(tags: dict[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise invalid(f"A log group has at most {MAX_TAGS} tags; {len(tags)} were given.")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.startswith("aws:"):
            raise invalid(f"Tag {key!r}: keys are 1 to 128 characters not starting with 'aws:', values at most "
                          "256 characters.")


def _check_batch(events: Sequence[NewEvent]) -> None:
    if not events:
        raise invalid("logEvents must hold at least one event.")
    if len(events) > MAX_BATCH_EVENTS:
        raise invalid(f"A batch holds at most {MAX_BATCH_EVENTS} log events; this one has {len(events)}.")
    total = 0
    for i, event in enumerate(events):
        size = event_bytes(event.message)
        if size > MAX_EVENT_BYTES:
            raise invalid(f"Log event {i} is {size} bytes with its 26 bytes of overhead; at most "
                          f"{MAX_EVENT_BYTES} are allowed: split the message.")
        total += size
        if i and event.timestamp_ms < events[i - 1].timestamp_ms:
            raise invalid("Log events in a single PutLogEvents request must be in chronological order "
                          f"(event {i} is older than event {i - 1}).")
    if total > MAX_BATCH_BYTES:
        raise invalid(f"A batch holds at most {MAX_BATCH_BYTES} bytes (messages plus 26 bytes each); this one has "
                      f"{total}: send it in smaller batches.")
    if events[-1].timestamp_ms - events[0].timestamp_ms > MAX_BATCH_SPAN.total_seconds() * 1000:
        raise invalid("The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")


def _check_transformation(pattern: FilterPattern, t: Transformation) -> None:
    if not t.metric_name or not t.namespace or len(t.metric_name) > 255 or len(t.namespace) > 255:
        raise invalid("metricName and metricNamespace are required, each at most 255 characters.")
    try:
        if not _is_number(t.value):
            check_metric_selector(pattern, t.value)
        if t.dimensions:
            if len(t.dimensions) > MAX_DIMENSIONS:
                raise invalid(f"A metric transformation has at most {MAX_DIMENSIONS} dimensions.")
            if t.default is not None:
                raise invalid("defaultValue and dimensions cannot both be given.")
            check_dimensions(pattern)
            for selector in t.dimensions.values():
                check_metric_selector(pattern, selector)
    except FilterPatternError as e:
        raise invalid(f"{e} (at character {e.position})") from e


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _transformation_dict(t: Transformation) -> dict[str, object]:
    out: dict[str, object] = {"metricName": t.metric_name, "metricNamespace": t.namespace, "metricValue": t.value}
    if t.default is not None:
        out["defaultValue"] = t.default
    if t.dimensions:
        out["dimensions"] = dict(t.dimensions)
    if t.unit is not None:
        out["unit"] = t.unit
    return out


class RetentionPurge:
    """A maintenance task (`Service.add_periodic`): at most every `every`, delete the events
    retention no longer keeps and `report` ("PurgeLogEvents", details) each group that lost some.

    `logs` is called when the task first runs, so a server that never uses CloudWatch Logs
    opens nothing for it at start-up."""

    def __init__(self, logs: Callable[[], LogGroups], report: Callable[[str, dict[str, Any]], None], clock: Clock,
                 every: timedelta = PURGE_EVERY) -> None:
        self._logs = logs
        self._report = report
        self._clock = clock
        self._every = every
        self._next: datetime | None = None

    def __call__(self) -> None:
        now = self._clock.now()
        if self._next is not None and now < self._next:
            return
        self._next = now + self._every
        logs = self._logs()
        for group, removed in logs.purge_expired(int(now.timestamp() * 1000)):
            self._report("PurgeLogEvents", {"logGroupName": group, "logGroupArn": logs.arn(group),
                                            "removedEvents": removed})
