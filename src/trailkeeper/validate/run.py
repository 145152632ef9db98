"""One validation run over a trail: list, place, check and assemble (the entry point)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from trailkeeper import digest as digestfmt
from trailkeeper import envelope, layout
from trailkeeper.clock import iso_seconds
from trailkeeper.errors import ConfigError
from trailkeeper.keys.signing import PublicKeyInfo
from trailkeeper.storage.base import ObjectStore, ObjectVersion, VersionedStore

if TYPE_CHECKING:
    pass

# cryptography (~30 ms to import) is imported at the first signature check, by which time
# the pool is already hashing log files: start-up overlaps with I/O instead of preceding it.

# A log is delivered at most one flush interval after its events, and a digest
# shortly after its window ends; this covers both with room for a slow store.
from trailkeeper.validate.chain import _check_links, _Slot
from trailkeeper.validate.digests import (
    Problem,
    _check_digest_file,
    _check_moved_signature,
    _check_signature,
    _Digest,
    _KeyRing,
)
from trailkeeper.validate.logs import _check_log, _LogResult, _Opener
from trailkeeper.validate.report import (
    _LOG_NAME_GRANULARITY,
    Code,
    GapNotice,
    Kind,
    Mode,
    PendingNotice,
    ReportEntry,
    Status,
    TrailInfo,
    ValidationReport,
    VerifiedHead,
    _invalid,
)
from trailkeeper.validate.state import VerifiedState
from trailkeeper.validate.windows import Window, expected_windows


@dataclass
class _Run:
    store: ObjectStore
    trail: TrailInfo
    keys: _KeyRing
    start: datetime
    end: datetime
    now: datetime
    mode: Mode
    state: VerifiedState | None
    workers: int
    progress: Callable[[int, int], None] | None
    report: ValidationReport
    opener: _Opener
    done: int = 0
    total: int = 0

    def tick(self, added_total: int = 0, done: int = 0) -> None:
        self.total += added_total
        self.done += done
        if self.progress is not None:
            self.progress(self.done, self.total)


def validate_trail(
    store: ObjectStore,
    trail: TrailInfo,
    public_keys: Sequence[PublicKeyInfo],
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    mode: Mode = "full",
    state: VerifiedState | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    data_keys: envelope.DataKeys | None = None,
) -> ValidationReport:
    """Validate the trail's digests and logs delivered in [start, end], as seen at `now`.

    `mode="stored"` checks log files against `storedHashValue` only (no
    decompression). `state` is read, never written: call `state.advance(report)`
    and `state.save()` afterwards. `progress(done, total)` is called after each
    file; `total` grows once the digests have been read. `data_keys` (the KMS) decrypts
    envelope-encrypted log files in full mode; stored mode never needs it.
    """
    _check_args(trail, start, end, now, mode, workers)
    report = ValidationReport(trail.arn, start, end, now, mode)
    run = _Run(store, trail, _KeyRing(public_keys), start, end, now, mode, state, workers, progress, report,
               _Opener(data_keys, trail.arn))
    for region in trail.source_regions:
        _validate_region(run, region)
    return report


def merge_reports(reports: Sequence[ValidationReport]) -> ValidationReport:
    """One report of a trail validated in several places (one chain each), in the given order."""
    first = reports[0]
    merged = ValidationReport(first.trail_arn, first.start, first.end, first.now, first.mode)
    for report in reports:
        merged.items.extend(report.items)
        for when, pick in ((report.found_start, min), (report.found_end, max)):
            current = merged.found_start if pick is min else merged.found_end
            value = when if current is None else current if when is None else pick(current, when)
            if pick is min:
                merged.found_start = value
            else:
                merged.found_end = value
        for region, head in report.heads.items():
            if region not in merged.heads or head.end_time > merged.heads[region].end_time:
                merged.heads[region] = head
    return merged


def _check_args(trail: TrailInfo, start: datetime, end: datetime, now: datetime, mode: str, workers: int) -> None:
    for name, when in (("start", start), ("end", end), ("now", now)):
        if when.tzinfo is None:
            raise ConfigError(f"{name} time {when!r} has no timezone", "pass timezone-aware UTC datetimes")
    if start > end:
        raise ConfigError(f"start {iso_seconds(start)} is after end {iso_seconds(end)}", "swap the two times")
    if mode not in ("full", "stored"):
        raise ConfigError(f"mode {mode!r} is not 'full' or 'stored'")
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    if not trail.logging_periods:
        raise ConfigError(
            f"trail {trail.name} has no logging periods",
            "pass the trail's StartLogging/StopLogging history; without it missing digests cannot be counted",
        )
    if trail.digest_interval <= timedelta(0) or trail.digest_interval.total_seconds() % 1:
        raise ConfigError(f"digest interval {trail.digest_interval} must be a positive whole number of seconds")


def _validate_region(run: _Run, region: str) -> None:
    t = run.trail
    interval = t.digest_interval
    # One window past what is in range, so logs of the open window are recognised as pending.
    horizon = min(run.end, run.now) + interval
    windows = expected_windows(t.logging_periods, interval, run.start - interval, horizon)
    found = _list_digests(run, region, windows)
    slots = _make_slots(run, region, windows, found)
    unexpected = _attach_found(slots, found)
    digests = [d for s in slots for d in (s.digest, s.backfill) if d is not None] + unexpected
    run.tick(added_total=len(digests))
    keyring_region = t.home_region
    # hashlib and zlib/isal release the GIL on large buffers, so pool threads use every core;
    # a trusted digest's logs start hashing at once while later digests and the chain, the
    # log-folder listing and the report are worked out on this thread.
    with ThreadPoolExecutor(max_workers=run.workers) as pool:
        hashing = _LogHashing(run, pool)
        readable = []
        for d in digests:
            if _check_digest_file(run.store, d):
                readable.append(d)
                hashing.prefetch(d)
        for d in readable:
            d.trusted = _check_signature(d, run.keys, keyring_region, t.delivery_allowance)
        for d in digests:
            _check_moved_signature(d, run.keys, keyring_region, t.delivery_allowance)
            run.tick(done=1)
            hashing.add(d)
        for d in unexpected:
            if d.trusted:
                d.fail(Code.CHAIN_GAP, f"digest window ending {iso_seconds(d.end)} does not fit the trail's logging history")
        _require(run, region, slots, digests)
        in_range = [s for s in slots if s.in_range]
        _check_links([s for s in slots if s.window.end <= run.now], run.store.bucket, t.delivery_allowance)
        chain_items = _chain_findings(run, region, in_range, unexpected)
        stray, waiting = _stray_logs(run, region, in_range, slots, digests)
        log_results = hashing.results()
    pending = _pending(run, region, slots, waiting)
    _assemble(run, region, in_range, unexpected, chain_items, log_results, stray, pending)
    if isinstance(run.store, VersionedStore):
        _version_findings(run, run.store, region, min([run.start, *(s.window.start for s in in_range)]))


# A digest key dated this far past the validator's clock cannot be a window that has ended
# (a digest is written after its window): it was placed there. The margin is for clock skew.
FUTURE_KEY_SKEW = timedelta(minutes=5)


def _list_digests(run: _Run, region: str, windows: list[Window]) -> dict[str, layout.DigestKey]:
    """Every digest key of this trail and region from the first day of the checked span on.

    Keys whose time lies in the span are checked as the span's digests. Keys dated after the
    validator's own clock are checked too, wherever they lie: no window can have produced
    them, so a digest found there was moved (or copied) there. The folders are read
    leniently, as the AWS CLI reads them: a digest renamed into the wrong date folder is
    still found, and reported where it is.
    """
    t = run.trail
    lo = run.start
    hi = min(run.now, run.end + t.digest_interval + t.delivery_allowance)
    if windows:
        hi = max(hi, min(run.now, windows[-1].end))
    base = layout.digest_prefix(t.prefix, t.account_id, region)
    found: dict[str, layout.DigestKey] = {}
    for info in run.store.list(base, start_after=f"{base}{lo:%Y/%m/%d}"):
        claimed = _claimed_digest_key(info.key, base, t, region)
        if claimed is not None and (lo < claimed.end <= hi or claimed.end > run.now + FUTURE_KEY_SKEW):
            found[info.key] = claimed
    return found


def _claimed_digest_key(key: str, base: str, t: TrailInfo, region: str) -> layout.DigestKey | None:
    """This trail's digest key as its file name claims it, whatever folder it sits in."""
    if not key.startswith(base) or "/" not in key[len(base):]:
        return None
    name = key.rsplit("/", 1)[1]
    stem = f"{t.account_id}_CloudTrail-Digest_{region}_{t.name}_{t.home_region}_"
    tail = name[len(stem):] if name.startswith(stem) else ""
    backfill = tail.endswith("_backfill.json.gz")
    stamp = tail.removesuffix("_backfill.json.gz" if backfill else ".json.gz")
    if len(stamp) != len("YYYYMMDDTHHMMSSZ") or stamp == tail:
        return None
    try:
        end = datetime.strptime(stamp, layout.DIGEST_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return layout.DigestKey(t.prefix, t.account_id, region, t.name, t.home_region, end, backfill, None)


def _parse_own_digest_key(key: str, t: TrailInfo, region: str) -> layout.DigestKey | None:
    try:
        parsed = layout.parse_digest_key(key)
    except ValueError:
        return None  # not a digest key at all: nothing the chain vouches for
    own = (parsed.prefix, parsed.account, parsed.src_region, parsed.trail_name, parsed.home_region, parsed.org_id)
    return parsed if own == (t.prefix, t.account_id, region, t.name, t.home_region, None) else None


def _days(lo: datetime, hi: datetime) -> Iterator[datetime]:
    day = lo.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= hi:
        yield day
        day += timedelta(days=1)


def _make_slots(run: _Run, region: str, windows: list[Window], found: Mapping[str, layout.DigestKey]) -> list[_Slot]:
    t = run.trail
    slots = []
    found_ends = sorted(k.end for k in found.values() if not k.backfill)
    for w in windows:
        w = _settle_final(w, found_ends, t.delivery_allowance)
        key = layout.digest_key(t.prefix, t.account_id, region, t.name, t.home_region, w.end)
        in_range = w.end > run.start and w.start <= run.end and w.end <= run.now
        slots.append(_Slot(w, key, required=False, in_range=in_range))
    return slots


def _require(run: _Run, region: str, slots: list[_Slot], digests: list[_Digest]) -> None:
    """Decide which windows must have a digest by now (a missing one is then DIGEST_MISSING).

    The writer seals windows in order, so every ended window before the newest one is due
    whatever its age. The newest ended window is due once its delivery allowance has passed,
    or as soon as anything proves its digest was written: an authentic digest (at its own key
    or moved elsewhere) naming that window or a later one, or the verified state of an
    earlier run reaching it.
    """
    closed = [s for s in slots if s.window.end <= run.now]
    if not closed:
        return
    proof = [d.doc_end for d in digests if d.authentic and not d.backfill and d.doc_end is not None]
    head = _state_head(run, region)
    if head is not None:
        proof.append(head.end_time)
    proven_through = max(proof, default=None)
    for slot in closed[:-1]:
        slot.required = True
    newest = closed[-1]
    due = newest.window.end + run.trail.delivery_allowance <= run.now
    newest.required = due or (proven_through is not None and newest.window.end <= proven_through)
    claimed = {d.doc.key: d.key for d in digests if d.moved and d.authentic and d.doc is not None}
    for slot in slots:
        slot.moved_to = claimed.get(slot.key)


def _settle_final(w: Window, found_ends: list[datetime], allowance: timedelta) -> Window:
    """A final digest ends when the writer finished the stop, shortly after the recorded stop time."""
    if not w.final or w.end in found_ends:
        return w
    late = [e for e in found_ends if w.end < e <= w.end + allowance]
    return Window(w.start, late[0], w.starting, w.final) if late else w


def _attach_found(slots: list[_Slot], found: Mapping[str, layout.DigestKey]) -> list[_Digest]:
    """Put each found digest in its window's slot; return the ones no window expects."""
    by_end = {s.window.end: s for s in slots}
    unexpected = []
    for key, parsed in sorted(found.items(), key=lambda kv: kv[1].end):
        d = _Digest(key, parsed.end, parsed.backfill)
        slot = by_end.get(parsed.end)
        if slot is not None and parsed.backfill and slot.backfill is None:
            slot.backfill = d
        elif slot is not None and not parsed.backfill and key == slot.key:
            slot.digest = d
        else:
            unexpected.append(d)
    return unexpected


def _chain_findings(run: _Run, region: str, slots: list[_Slot], unexpected: list[_Digest]) -> list[ReportEntry]:
    """Missing windows, tail truncation (against the history and the saved state)."""
    bucket = run.store.bucket
    items = _state_findings(run, region, slots)
    required = [s for s in slots if s.required]
    present_ends = [d.end for s in slots for d in (s.digest, s.backfill) if d is not None]
    present_ends += [d.end for d in unexpected if not d.backfill and d.end <= run.now]
    newest = max(present_ends, default=None)
    if required and (newest is None or newest < required[-1].window.end):
        last = required[-1]
        seen = "no digest at all" if newest is None else f"the newest digest ends at {iso_seconds(newest)}"
        msg = f"digests are due through {iso_seconds(last.window.end)} but {seen}"
        if last.key not in {e.key for e in items}:  # the verified state already names it
            items.append(_invalid("digest", bucket, last.key, Code.CHAIN_TRUNCATED, msg, region))
    return items


def _state_head(run: _Run, region: str) -> VerifiedHead | None:
    """The head an earlier run verified, if it lies in the place this run validates (a trail
    that moved has its newest verified digest in its newest place)."""
    head = run.state.head(run.trail.arn, region) if run.state is not None else None
    if head is None or (head.bucket and head.bucket != run.store.bucket):
        return None
    return head


def _state_findings(run: _Run, region: str, slots: list[_Slot]) -> list[ReportEntry]:
    head = _state_head(run, region)
    if head is None or not run.start < head.end_time <= run.end:
        return []
    bucket = run.store.bucket
    match = next((s.digest for s in slots if s.key == head.digest_key), None)
    if match is None:
        msg = f"the digest ending {iso_seconds(head.end_time)} verified on an earlier run is gone"
        return [_invalid("digest", bucket, head.digest_key, Code.CHAIN_TRUNCATED, msg, region)]
    if match.inflated_sha and match.inflated_sha != head.hash_value:
        msg = "differs from the digest verified on an earlier run (history rewritten or forked)"
        return [_invalid("digest", bucket, head.digest_key, Code.CHAIN_LINK_MISMATCH, msg, region)]
    return []


class _LogHashing:
    """Every log a trusted digest lists, hashed once on the pool, keyed by log key.

    Hashing starts as soon as a digest parses (`prefetch`), before its signature is checked,
    so that the pool works while the signatures are verified; only what a trusted digest
    lists (`add`) is reported. A prefetched entry is reused only if a trusted digest lists
    the very same entry (key, hashes and bucket), so nothing an untrusted digest claims
    can stand in for what a trusted one says.
    """

    def __init__(self, run: _Run, pool: ThreadPoolExecutor) -> None:
        self._run = run
        self._pool = pool
        self._started: dict[tuple[str | None, ...], Future[_LogResult]] = {}
        self._jobs: dict[str, Future[_LogResult]] = {}

    def prefetch(self, d: _Digest) -> None:
        assert d.doc is not None
        for entry in d.doc.log_files:
            if _claim(entry) not in self._started:
                self._started[_claim(entry)] = self._pool.submit(_check_log, self._run.store, entry, self._run.mode, self._run.opener)

    def add(self, d: _Digest) -> None:
        if not d.trusted or d.doc is None:
            return
        fresh = [e for e in d.doc.log_files if e.s3_object not in self._jobs]
        self._run.tick(added_total=len(fresh))
        for entry in fresh:
            started = self._started.get(_claim(entry))
            self._jobs[entry.s3_object] = started if started is not None else self._pool.submit(
                _check_log, self._run.store, entry, self._run.mode, self._run.opener)

    def results(self) -> dict[str, _LogResult]:
        out: dict[str, _LogResult] = {}
        for future in as_completed(self._jobs.values()):
            result = future.result()
            out[result.key] = result
            self._run.tick(done=1)
        return out


def _claim(entry: digestfmt.DigestLogFile) -> tuple[str | None, ...]:
    """Everything `_check_log` reads from a digest entry."""
    return (entry.s3_bucket, entry.s3_object, entry.hash_value, entry.stored_hash_value)


def _stray_logs(
    run: _Run, region: str, slots: list[_Slot], all_slots: list[_Slot], digests: list[_Digest]
) -> tuple[list[ReportEntry], dict[str, list[str]]]:
    """Listed log files no trusted digest references: unreferenced or unverifiable entries, and
    the logs that wait for a digest not due yet (by that window's digest key)."""
    t = run.trail
    referenced = {e.s3_object for d in digests if d.trusted and d.doc is not None for e in d.doc.log_files}
    lo = min([run.start, *(s.window.start for s in slots)]) - _LOG_NAME_GRANULARITY
    base = layout.log_prefix(t.prefix, t.account_id, region)
    items = []
    waiting: dict[str, list[str]] = {}
    for day in _days(lo, run.end):
        for info in run.store.list(f"{base}{day:%Y/%m/%d}/"):
            if info.key in referenced:
                continue
            delivered = _log_delivery(info.key, t, region)
            if delivered is None or not lo <= delivered <= run.end:
                continue
            verdict = _classify_stray(delivered, all_slots, run.now, t.delivery_allowance)
            if isinstance(verdict, _Slot):
                waiting.setdefault(verdict.key, []).append(info.key)
            elif verdict is not None:
                items.append(_invalid("log", run.store.bucket, info.key, verdict[0], verdict[1], region))
    return items, waiting


def _version_findings(run: _Run, store: VersionedStore, region: str, lo: datetime) -> None:
    """Delete markers and overwrites on this trail's keys (tamper catalogue rows 20-21).

    A GET sees neither: behind a delete marker the locked version is still there (the GET says
    404), and an overwrite leaves only the newest bytes visible. Create-only writes mean an
    honest writer never makes a second version, so any is reported, even with identical bytes.
    A finding replaces the plain "missing" entry of the same key.
    """
    t = run.trail
    found: dict[str, list[ObjectVersion]] = {}
    for base in (layout.digest_prefix(t.prefix, t.account_id, region), layout.log_prefix(t.prefix, t.account_id, region)):
        for day in _days(lo - t.digest_interval, run.end + t.digest_interval):
            for version in store.list_versions(f"{base}{day:%Y/%m/%d}/"):
                found.setdefault(version.key, []).append(version)
    span = (lo - t.digest_interval, run.end + t.digest_interval)
    findings = {key: f for key, versions in found.items() if (f := _version_problem(key, versions, t, region, span))}
    if not findings:
        return
    items = run.report.items
    missing = (Code.DIGEST_MISSING, Code.LOG_MISSING)
    replaced = set()
    for i, item in enumerate(items):
        if isinstance(item, ReportEntry) and item.key in findings and item.code in missing:
            kind, code, message = findings[item.key]
            items[i] = replace(item, code=code, message=message)
            replaced.add(item.key)
    for key, (kind, code, message) in sorted(findings.items()):
        if key not in replaced:
            items.append(_invalid(kind, run.store.bucket, key, code, message, region))


def _version_problem(key: str, versions: list[ObjectVersion], t: TrailInfo, region: str,
                     span: tuple[datetime, datetime]) -> tuple[Kind, Code, str] | None:
    """The finding for one of this trail's keys whose time falls in `span`, if any."""
    kind: Kind
    digest = _parse_own_digest_key(key, t, region)
    delivered = _log_delivery(key, t, region)
    if digest is not None:
        kind, when = "digest", digest.end
    elif delivered is not None:
        kind, when = "log", delivered
    else:
        return None
    if not span[0] <= when <= span[1]:
        return None
    markers = [v for v in versions if v.is_delete_marker]
    kept = [v for v in versions if not v.is_delete_marker]
    if markers:
        ids = ", ".join(v.version_id for v in kept) or "none"
        return kind, Code.DELETE_MARKER, (f"deleted: {len(markers)} delete marker(s) hide the key; the stored "
                                          f"version(s) {ids} are still present (locked)")
    if len(kept) > 1:
        return kind, Code.OVERWRITTEN, (f"overwritten: the key has {len(kept)} versions; create-only writes "
                                        "never make a second one")
    return None


def _log_delivery(key: str, t: TrailInfo, region: str) -> datetime | None:
    try:
        parsed = layout.parse_log_key(key)
    except ValueError:
        return None
    own = (parsed.prefix, parsed.account, parsed.region, parsed.org_id)
    return parsed.delivered if own == (t.prefix, t.account_id, region, None) else None


def _classify_stray(delivered: datetime, slots: list[_Slot], now: datetime, allowance: timedelta) -> Problem | _Slot | None:
    """What an unreferenced log is: a problem, or the window whose pending digest it waits for."""
    # The key holds only the delivery minute, so any window overlapping that minute may own it.
    minute_end = delivered + _LOG_NAME_GRANULARITY
    owners = [s for s in slots if s.window.start < minute_end and delivered < s.window.end]
    if not owners:
        closed = [s for s in slots if s.window.end <= now]
        last = closed[-1] if closed else None
        after_last = last is not None and delivered >= last.window.end and not any(
            s.window.start > delivered for s in slots)
        if after_last and last is not None and not last.required and last.digest is None:
            return last  # delivered after a stop whose final digest is not due yet
        return Code.LOG_UNREFERENCED, "delivered while no logging period was open; no digest references it"
    waiting = [s for s in owners if not s.satisfied and not s.required and s.digest is None]
    if waiting:
        return waiting[-1]
    broken = [s for s in owners if not s.satisfied]
    if broken and broken[0].digest is not None:
        return Code.LOG_UNVERIFIABLE, f"the digest of its window ({broken[0].key}) is invalid"
    if broken:
        return Code.LOG_UNREFERENCED, (f"no present digest references it: the digest of its window, "
                                       f"{broken[0].key}, is missing")
    return Code.LOG_UNREFERENCED, "no digest references it although its window's digest is valid"




def _pending(run: _Run, region: str, slots: list[_Slot], waiting: Mapping[str, list[str]]) -> dict[str, PendingNotice]:
    """Windows whose digest is not due yet, by digest key: the newest ended window when its
    digest is still missing, and the open window when logs already wait for it."""
    out: dict[str, PendingNotice] = {}
    for slot in slots:
        w = slot.window
        is_open = w.end > run.now
        missing = slot.in_range and not slot.required and slot.digest is None and slot.backfill is None
        logs = waiting.get(slot.key, [])
        if missing or (is_open and logs and w.start <= run.end):
            out[slot.key] = PendingNotice(region, run.store.bucket, slot.key, w.start, w.end,
                                          w.end + run.trail.delivery_allowance, is_open, tuple(logs))
    return out


def _assemble(
    run: _Run,
    region: str,
    slots: list[_Slot],
    unexpected: list[_Digest],
    chain_items: list[ReportEntry],
    log_results: Mapping[str, _LogResult],
    stray: list[ReportEntry],
    pending: Mapping[str, PendingNotice],
) -> None:
    """Append this region's findings in AWS CLI order: newest digest first, each followed by its logs."""
    items = run.report.items
    items.extend(chain_items)
    in_slots = {s.key for s in slots}
    items.extend(p for key, p in pending.items() if key not in in_slots)  # the open window, newest of all
    bucket = run.store.bucket
    for i in range(len(slots) - 1, -1, -1):
        slot = slots[i]
        for d in (slot.digest, slot.backfill):
            if d is not None:
                items.extend(_digest_items(d, bucket, region, log_results))
                _track_found(run, region, d)
        if slot.digest is None and slot.backfill is None and slot.required:
            items.append(_invalid("digest", bucket, slot.key, Code.DIGEST_MISSING, _missing_text(slot), region))
        if slot.key in pending:
            items.append(pending[slot.key])
        if slot.window.starting and i > 0:
            items.append(GapNotice(region, slots[i - 1].window.end, slot.window.start))
    for d in unexpected:
        items.extend(_digest_items(d, bucket, region, log_results))
    items.extend(stray)


def _missing_text(slot: _Slot) -> str:
    if slot.moved_to is None:
        return "not found"
    return f"not found: the digest of this window was found at {slot.moved_to}"


def _digest_items(d: _Digest, bucket: str, region: str, logs: Mapping[str, _LogResult]) -> list[ReportEntry]:
    if d.problems:
        out = [_invalid("digest", bucket, d.key, code, msg, region, d.backfill) for code, msg in d.problems]
    else:
        out = [ReportEntry("digest", bucket, d.key, Status.VALID, None, "valid", region, d.backfill)]
    if d.trusted and d.doc is not None:
        for entry in d.doc.log_files:
            result = logs.get(entry.s3_object)
            if result is not None:
                out.extend(_log_items(result, region))
    return out


def _log_items(r: _LogResult, region: str) -> list[ReportEntry]:
    if not r.problems:
        return [ReportEntry("log", r.bucket, r.key, Status.VALID, None, "valid", region)]
    return [_invalid("log", r.bucket, r.key, code, msg, region) for code, msg in r.problems]


def _track_found(run: _Run, region: str, d: _Digest) -> None:
    if not d.trusted or d.problems or d.start is None:
        return
    report = run.report
    start = max(d.start, run.start)
    end = min(d.end, run.end)
    report.found_start = start if report.found_start is None else min(report.found_start, start)
    report.found_end = end if report.found_end is None else max(report.found_end, end)
    head = report.heads.get(region)
    if not d.backfill and (head is None or d.end > head.end_time):
        report.heads[region] = VerifiedHead(d.key, d.end, d.inflated_sha, run.store.bucket)
