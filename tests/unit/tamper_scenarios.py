"""Tamper scenarios for the offline validator: one named, data-driven case per
catalogue row (integrity-and-compliance.md §4) plus the extra cases validators
are known to miss.

A scenario only sees a snapshot of the stored objects and the `TrailFacts` of
the untouched trail, so the same table runs against any way of building a
trail: `build_trail` below (format modules only) or the real delivery pipeline.
A trail built elsewhere must provide the same facts: at least three
consecutive required non-starting digests with logs followed by one more
digest, a key rotation, and one digest after the last required window.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization

from trailkeeper import digest as digestfmt
from trailkeeper import layout
from trailkeeper._internal.gzipio import gunzip_strict, gzip_single
from trailkeeper.clock import FrozenClock, iso_seconds
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.keys.signing import PublicKeyInfo, SigningKeys
from trailkeeper.state.signing_keys import SqliteSigningKeyRepository
from trailkeeper.storage.base import ObjectStore
from trailkeeper.storage.memory import MemoryStore
from trailkeeper.validate import Code, TrailInfo

ACCOUNT = "111122223333"
REGION = "us-east-1"
TRAIL_NAME = "audit-trail"
BUCKET = "tk-audit-logs"
INTERVAL = timedelta(hours=1)
ALLOWANCE = timedelta(minutes=10)
# Logging on 09:17-12:20 and from 13:10; digests are written at each window end.
T0 = datetime(2024, 3, 10, 9, 17, tzinfo=UTC)
STOP = datetime(2024, 3, 10, 12, 20, tzinfo=UTC)
RESTART = datetime(2024, 3, 10, 13, 10, tzinfo=UTC)
# Every window before the newest is due; the newest (17:00-18:00) is not due until 18:10.
NOW = datetime(2024, 3, 10, 18, 5, tzinfo=UTC)
# A key older than this is replaced at the next signing: the first key (10:00) is
# replaced exactly at the 14:00 digest boundary.
ROTATION = timedelta(hours=3, minutes=59)
# Minutes after each window start at which a log file is delivered; the 11:00
# window gets none (an empty digest) and one log lands in the open 18:00 window.
LOG_MINUTES = (3, 28)
EMPTY_WINDOW_START = datetime(2024, 3, 10, 11, 0, tzinfo=UTC)
OPEN_LOG_AT = datetime(2024, 3, 10, 18, 2, tzinfo=UTC)


@dataclass
class Obj:
    data: bytes
    metadata: dict[str, str]


Objects = dict[str, Obj]


@dataclass(frozen=True)
class DigestFact:
    key: str
    start: datetime
    end: datetime
    fingerprint: str
    log_keys: tuple[str, ...]
    starting: bool


@dataclass
class TrailFacts:
    """What the untouched trail looks like; scenarios pick their targets from it."""

    trail: TrailInfo
    public_keys: list[PublicKeyInfo]
    digests: list[DigestFact]  # in window order
    start: datetime  # validation range
    end: datetime
    now: datetime
    sign: Callable[[str, bytes], str]  # (fingerprint, message) -> hex signature
    pending_log_keys: list[str] = field(default_factory=list)  # logs whose digest is not due yet

    def required(self, i: int) -> bool:
        """Digests are written in order: all but the newest are due whatever their age, and the
        newest once its delivery allowance has passed."""
        newest = i == len(self.digests) - 1
        return not newest or self.digests[i].end + self.trail.delivery_allowance <= self.now

    def logs(self, i: int) -> int:
        return len(self.digests[i].log_keys)

    def run_of(self, k: int) -> int:
        """First index of k consecutive required, non-starting digests with logs and a successor."""
        d = self.digests
        for i in range(1, len(d) - k):
            block = range(i, i + k)
            if (
                all(self.required(j) and not d[j].starting and d[j].log_keys for j in block)
                and not d[i + k].starting
            ):
                return i
        raise AssertionError(f"trail has no run of {k} middle digests")

    def middle(self) -> int:
        return self.run_of(1)

    def with_predecessor(self) -> int:
        """A required digest with logs that links to a previous digest (not a starting one)."""
        return self.run_of(1)

    def key_digests(self, fp: str) -> list[int]:
        return [i for i, d in enumerate(self.digests) if d.fingerprint == fp]

    def unverifiable(self, indices: list[int]) -> int:
        return sum(self.logs(i) for i in indices)

    def log_key(self, i: int, j: int = 0) -> str:
        return self.digests[i].log_keys[j]


# ---------------------------------------------------------------- building


def make_signing_keys(tmp_path: Path, clock: FrozenClock) -> SigningKeys:
    return SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), MemoryKeyring(), clock, ROTATION)


def _records(when: datetime, n: int, tag: str) -> bytes:
    events = []
    for i in range(n):
        events.append(
            {
                "eventVersion": "1.11",
                "eventTime": iso_seconds(when - timedelta(seconds=30 + i)),
                "eventSource": "s3.amazonaws.com",
                "eventName": "PutObject",
                "awsRegion": REGION,
                "sourceIPAddress": "192.0.2.10",
                "userIdentity": {"type": "IAMUser", "accountId": ACCOUNT, "userName": "alice"},
                "requestParameters": {"bucketName": "data", "key": f"{tag}-{i}"},
                "eventID": f"{tag}-{i:04d}",
                "eventType": "AwsApiCall",
                "recipientAccountId": ACCOUNT,
            }
        )
    return orjson.dumps({"Records": events})


def put_log(
    store: ObjectStore, delivered: datetime, tag: str, account: str = ACCOUNT, region: str = REGION
) -> digestfmt.LogFileEntry:
    inflated = _records(delivered, 3, tag)
    stored = gzip_single(inflated)
    key = layout.log_key("", account, region, delivered, layout.uniq16_for(tag.encode()))
    store.put_exclusive(key, stored, {})
    newest = delivered - timedelta(seconds=30)
    return digestfmt.LogFileEntry(
        store.bucket,
        key,
        hashlib.sha256(inflated).hexdigest(),
        hashlib.sha256(stored).hexdigest(),
        newest,
        newest - timedelta(seconds=2),
    )


def _windows() -> list[tuple[datetime, datetime, bool]]:
    """(start, end, starting) of every digest written by NOW."""
    out = []
    for begin, stop in ((T0, STOP), (RESTART, None)):
        t = begin
        while stop is None or t < stop:
            end = datetime.fromtimestamp((int(t.timestamp()) // 3600 + 1) * 3600, UTC)
            end = min(end, stop) if stop else end
            if end > NOW:
                break
            out.append((t, end, t == begin))
            t = end
    return out


def build_trail(store: ObjectStore, keys: SigningKeys, clock: FrozenClock) -> TrailFacts:
    """Write the log files and hourly digests of the scenario trail into `store`."""
    digests: list[DigestFact] = []
    previous: digestfmt.ChainLink | None = None
    for start, end, starting in _windows():
        entries = []
        if start != EMPTY_WINDOW_START:
            for minute in LOG_MINUTES:
                at = start + timedelta(minutes=minute)
                if at < end:
                    entries.append(put_log(store, at, f"log-{at:%H%M}"))
        clock.set(end)  # digests are delivered the moment their window closes
        fp = keys.current().fingerprint
        key = layout.digest_key("", ACCOUNT, REGION, TRAIL_NAME, REGION, end)
        body = digestfmt.build_digest(
            ACCOUNT, start, end, store.bucket, key, fp, entries, None if starting else previous
        )
        sig = digestfmt.sign_digest(
            body,
            iso_seconds(end),
            store.bucket,
            key,
            None if starting or previous is None else previous.signature,
            functools.partial(keys.sign, fp),
        )
        store.put_exclusive(key, gzip_single(body), digestfmt.digest_metadata(sig))
        previous = digestfmt.ChainLink(store.bucket, key, hashlib.sha256(body).hexdigest(), sig)
        digests.append(
            DigestFact(key, start, end, fp, tuple(e.s3_object for e in entries), starting)
        )
    pending = [put_log(store, OPEN_LOG_AT, "log-open").s3_object]
    trail = TrailInfo(
        TRAIL_NAME,
        ACCOUNT,
        REGION,
        store.bucket,
        "",
        INTERVAL,
        [(T0, STOP), (RESTART, None)],
        ALLOWANCE,
    )
    clock.set(NOW)
    return TrailFacts(trail, keys.all_public_keys(), digests, T0, NOW, NOW, keys.sign, pending)


# ---------------------------------------------------------------- object snapshots


def snapshot(store: ObjectStore) -> Objects:
    out: Objects = {}
    for info in store.list():
        obj = store.get(info.key)
        out[info.key] = Obj(obj.data, dict(obj.metadata))
    return out


def restore(objects: Objects, store: ObjectStore) -> None:
    for key, obj in sorted(objects.items()):
        store.put_exclusive(key, obj.data, obj.metadata)


# ---------------------------------------------------------------- tamper helpers


def _doc(objects: Objects, key: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(gunzip_strict(objects[key].data))
    return doc


def _write_signed(
    objects: Objects,
    facts: TrailFacts,
    key: str,
    doc: dict[str, Any],
    fp: str,
    extra_meta: dict[str, str] | None = None,
) -> None:
    """Store `doc` as a correctly signed digest at `key` (what a key holder could do)."""
    body = orjson.dumps(doc)
    sig = digestfmt.sign_digest(
        body,
        doc["digestEndTime"],
        doc["digestS3Bucket"],
        doc["digestS3Object"],
        doc["previousDigestSignature"],
        lambda m: facts.sign(fp, m),
    )
    objects[key] = Obj(gzip_single(body), {**digestfmt.digest_metadata(sig), **(extra_meta or {})})


def resign(
    objects: Objects, facts: TrailFacts, i: int, change: Callable[[dict[str, Any]], None]
) -> None:
    """Change digest i, re-sign it, and re-link every later digest of its chain to it."""
    fact = facts.digests[i]
    doc = _doc(objects, fact.key)
    change(doc)
    _write_signed(objects, facts, fact.key, doc, fact.fingerprint)
    rechain_after(objects, facts, i)


def rechain_after(objects: Objects, facts: TrailFacts, i: int) -> None:
    for j in range(i + 1, len(facts.digests)):
        fact = facts.digests[j]
        if fact.starting:
            return
        prev = facts.digests[j - 1].key
        doc = _doc(objects, fact.key)
        doc["previousDigestHashValue"] = hashlib.sha256(
            gunzip_strict(objects[prev].data)
        ).hexdigest()
        doc["previousDigestSignature"] = objects[prev].metadata["signature"]
        _write_signed(objects, facts, fact.key, doc, fact.fingerprint)


def regzip(
    objects: Objects, key: str, change: Callable[[bytes], bytes] = lambda b: b, mtime: int = 0
) -> None:
    obj = objects[key]
    objects[key] = Obj(
        gzip.compress(change(gunzip_strict(obj.data)), compresslevel=6, mtime=mtime), obj.metadata
    )


def append_bytes(objects: Objects, key: str, extra: bytes) -> None:
    objects[key] = Obj(objects[key].data + extra, objects[key].metadata)


def _flip_sig(objects: Objects, key: str) -> None:
    meta = dict(objects[key].metadata)
    sig = meta["signature"]
    meta["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    objects[key] = Obj(objects[key].data, meta)


def _uppercase_sig(objects: Objects, key: str) -> None:
    meta = dict(objects[key].metadata)
    meta["Signature"] = meta.pop("signature")
    objects[key] = Obj(objects[key].data, meta)


def _drop_meta(objects: Objects, key: str, name: str) -> None:
    meta = dict(objects[key].metadata)
    del meta[name]
    objects[key] = Obj(objects[key].data, meta)


def _move(objects: Objects, facts: TrailFacts, i: int) -> None:
    fact = facts.digests[i]
    t = facts.trail
    new_key = layout.digest_key(
        t.prefix, t.account_id, t.home_region, t.name, t.home_region, fact.end + timedelta(seconds=1)
    )
    objects[new_key] = objects.pop(fact.key)


def _digest_key_at(facts: TrailFacts, end: datetime) -> str:
    t = facts.trail
    return layout.digest_key(t.prefix, t.account_id, t.home_region, t.name, t.home_region, end)


def _move_to(objects: Objects, facts: TrailFacts, i: int, end: datetime, keep: bool = False) -> None:
    """Rename digest i to the key of another time (its own date folder); `keep` copies it."""
    key = facts.digests[i].key
    objects[_digest_key_at(facts, end)] = objects[key] if keep else objects.pop(key)


def _rename_in_folder(objects: Objects, facts: TrailFacts, i: int, stamp: str) -> None:
    """Change only the time in digest i's file name, leaving it in its date folder (the
    AWS CLI reads the time from the name, whatever the folder says)."""
    key = facts.digests[i].key
    objects[key[: -len("YYYYMMDDTHHMMSSZ.json.gz")] + stamp + ".json.gz"] = objects.pop(key)


def _replay(objects: Objects, facts: TrailFacts, i: int) -> None:
    """Put the previous window's digest where digest i was."""
    objects[facts.digests[i].key] = objects[facts.digests[i - 1].key]


def _plant_log(objects: Objects, facts: TrailFacts, at: datetime) -> None:
    scratch = MemoryStore(facts.trail.bucket)
    put_log(scratch, at, f"planted-{at:%H%M%S}", facts.trail.account_id, facts.trail.home_region)
    objects.update(snapshot(scratch))


def _backfill(objects: Objects, facts: TrailFacts, i: int, with_timestamp: bool) -> None:
    fact = facts.digests[i]
    t = facts.trail
    key = layout.digest_key(
        t.prefix, t.account_id, t.home_region, t.name, t.home_region, fact.end, backfill=True
    )
    doc = _doc(objects, fact.key)
    doc["digestS3Object"] = key
    for name in (
        "previousDigestS3Bucket",
        "previousDigestS3Object",
        "previousDigestHashValue",
        "previousDigestHashAlgorithm",
        "previousDigestSignature",
    ):
        doc[name] = None
    extra = {"backfill-generation-timestamp": iso_seconds(facts.now)} if with_timestamp else {}
    _write_signed(objects, facts, key, doc, fact.fingerprint, extra)


def _edit_log(data: bytes) -> bytes:
    """Backdate the first event by a millennium: every CloudTrail record has an eventTime."""
    assert b'"eventTime":"2' in data
    return data.replace(b'"eventTime":"2', b'"eventTime":"1', 1)


def _second_member(objects: Objects, key: str) -> None:
    append_bytes(objects, key, gzip_single(b'{"Records":[{"eventName":"Injected"}]}'))


def _truncate(objects: Objects, key: str) -> None:
    objects[key] = Obj(objects[key].data[:-12], objects[key].metadata)


def _bad_json(objects: Objects, key: str) -> None:
    objects[key] = Obj(gzip_single(gunzip_strict(objects[key].data)[:-3]), objects[key].metadata)


def _delete(objects: Objects, keys: list[str]) -> None:
    for key in keys:
        del objects[key]


# ---------------------------------------------------------------- key-list changes


def _without_old_key(keys: list[PublicKeyInfo], facts: TrailFacts) -> list[PublicKeyInfo]:
    return [k for k in keys if k.fingerprint != facts.digests[0].fingerprint]


def _spki(keys: list[PublicKeyInfo], facts: TrailFacts) -> list[PublicKeyInfo]:
    out = []
    for k in keys:
        if k.fingerprint == facts.digests[0].fingerprint:
            public = serialization.load_der_public_key(k.der_pkcs1)
            spki = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            k = replace(k, der_pkcs1=spki)
        out.append(k)
    return out


def _new_key_starts_late(keys: list[PublicKeyInfo], facts: TrailFacts) -> list[PublicKeyInfo]:
    new_fp = facts.digests[-1].fingerprint
    return [
        replace(k, valid_from=k.valid_from + facts.trail.digest_interval)
        if k.fingerprint == new_fp
        else k
        for k in keys
    ]


def _late_key_digests(facts: TrailFacts) -> list[int]:
    new_fp = facts.digests[-1].fingerprint
    new = next(k for k in facts.public_keys if k.fingerprint == new_fp)
    late_from = new.valid_from + facts.trail.digest_interval
    return [
        i
        for i in facts.key_digests(new_fp)
        if facts.digests[i].end + facts.trail.delivery_allowance < late_from
    ]


# ---------------------------------------------------------------- the table


Expected = Callable[[TrailFacts], dict[Code, int]]


@dataclass(frozen=True)
class Scenario:
    name: str
    row: int | None  # catalogue row of integrity-and-compliance.md §4, None for extra cases
    tamper: Callable[[Objects, TrailFacts], None]
    expected: Expected
    keys: Callable[[list[PublicKeyInfo], TrailFacts], list[PublicKeyInfo]] | None = None


def _bad_digest(code: Code, pick: Callable[[TrailFacts], int] = TrailFacts.middle) -> Expected:
    """One invalid digest; the logs of its window can then not be verified."""
    return lambda f: {code: 1, Code.LOG_UNVERIFIABLE: f.logs(pick(f))}


def _missing(indices: Callable[[TrailFacts], list[int]], truncated: bool = False) -> Expected:
    def expect(f: TrailFacts) -> dict[Code, int]:
        gone = [i for i in indices(f) if f.required(i)]
        # Their logs are still listed, and no present digest references them.
        out = {Code.DIGEST_MISSING: len(gone), Code.LOG_UNREFERENCED: f.unverifiable(gone)}
        if truncated:
            out[Code.CHAIN_TRUNCATED] = 1
        return out

    return expect


def _one(code: Code) -> Expected:
    return lambda f: {code: 1}


def _tail(f: TrailFacts) -> list[int]:
    """The newest three digests: the last one is not due yet, the two before it are."""
    return list(range(len(f.digests) - 3, len(f.digests)))


def _keyed(fp_of: Callable[[TrailFacts], list[int]], code: Code) -> Expected:
    return lambda f: {code: len(fp_of(f)), Code.LOG_UNVERIFIABLE: f.unverifiable(fp_of(f))}


def _old_key_digests(f: TrailFacts) -> list[int]:
    return f.key_digests(f.digests[0].fingerprint)


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc[name] = value

    return change


def _shift_start(delta: timedelta) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        start = datetime.strptime(doc["digestStartTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        doc["digestStartTime"] = iso_seconds(start + delta)

    return change


def _null_previous(doc: dict[str, Any]) -> None:
    for name in (
        "previousDigestS3Bucket",
        "previousDigestS3Object",
        "previousDigestHashValue",
        "previousDigestHashAlgorithm",
        "previousDigestSignature",
    ):
        doc[name] = None


def _late_in(d: DigestFact) -> datetime:
    """A moment late in a digest window (5/6 of the way), whatever its length."""
    return d.start + (d.end - d.start) * 5 / 6


def _between_periods(f: TrailFacts) -> datetime:
    """The middle of the first logged gap: a time when logging was off."""
    (_, stop), (restart, _) = f.trail.logging_periods[0], f.trail.logging_periods[1]
    assert stop is not None
    return stop + (restart - stop) / 2


def _key_of(f: TrailFacts, i: int) -> str:
    return f.digests[i].key


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "log_modified",
        1,
        lambda o, f: regzip(o, f.log_key(f.middle()), _edit_log),
        _one(Code.LOG_HASH_MISMATCH),
    ),
    Scenario(
        "log_deleted", 2, lambda o, f: _delete(o, [f.log_key(f.middle())]), _one(Code.LOG_MISSING)
    ),
    Scenario(
        "log_unreferenced",
        3,
        lambda o, f: _plant_log(o, f, _late_in(f.digests[f.middle()])),
        _one(Code.LOG_UNREFERENCED),
    ),
    Scenario(
        "log_planted_while_logging_off",
        3,
        lambda o, f: _plant_log(o, f, _between_periods(f)),
        _one(Code.LOG_UNREFERENCED),
    ),
    Scenario(
        "digest_content_modified",
        4,
        lambda o, f: regzip(
            o, _key_of(f, f.middle()), lambda b: b.replace(b'"logFiles":[', b'"logFiles":[ ', 1)
        ),
        _bad_digest(Code.DIGEST_BAD_SIGNATURE),
    ),
    Scenario(
        "digest_deleted_middle",
        5,
        lambda o, f: _delete(o, [_key_of(f, f.middle())]),
        _missing(lambda f: [f.middle()]),
    ),
    Scenario(
        "two_consecutive_digests_deleted",
        6,
        lambda o, f: _delete(o, [_key_of(f, f.run_of(2)), _key_of(f, f.run_of(2) + 1)]),
        _missing(lambda f: [f.run_of(2), f.run_of(2) + 1]),
    ),
    Scenario(
        "three_consecutive_digests_deleted",
        6,
        lambda o, f: _delete(o, [_key_of(f, f.run_of(3) + k) for k in range(3)]),
        _missing(lambda f: [f.run_of(3) + k for k in range(3)]),
    ),
    Scenario(
        "newest_digests_deleted",
        7,
        lambda o, f: _delete(o, [_key_of(f, i) for i in _tail(f)]),
        _missing(_tail, truncated=True),
    ),
    Scenario(
        "digest_moved",
        8,
        lambda o, f: _move(o, f, f.middle()),
        lambda f: {
            Code.DIGEST_MOVED: 1,
            Code.DIGEST_MISSING: 1,
            Code.LOG_UNREFERENCED: f.logs(f.middle()),
        },
    ),
    Scenario(
        "old_digest_replayed_at_new_key",
        8,
        lambda o, f: _replay(o, f, f.middle()),
        _bad_digest(Code.DIGEST_MOVED),
    ),
    Scenario(
        "unknown_fingerprint",
        9,
        lambda o, f: regzip(
            o,
            _key_of(f, f.middle()),
            lambda b: b.replace(f.digests[f.middle()].fingerprint.encode(), b"0" * 32),
        ),
        _bad_digest(Code.KEY_UNKNOWN),
    ),
    Scenario(
        "key_validity_window_excludes_digest",
        9,
        lambda o, f: None,
        _keyed(_late_key_digests, Code.KEY_UNKNOWN),
        keys=_new_key_starts_late,
    ),
    Scenario(
        "key_published_as_spki",
        10,
        lambda o, f: None,
        _keyed(_old_key_digests, Code.KEY_FORMAT),
        keys=_spki,
    ),
    Scenario(
        "bad_signature",
        11,
        lambda o, f: _flip_sig(o, _key_of(f, f.middle())),
        _bad_digest(Code.DIGEST_BAD_SIGNATURE),
    ),
    Scenario(
        "signature_metadata_missing",
        11,
        lambda o, f: _drop_meta(o, _key_of(f, f.middle()), "signature"),
        _bad_digest(Code.DIGEST_NO_SIGNATURE),
    ),
    Scenario(
        "signature_algorithm_metadata_missing",
        11,
        lambda o, f: _drop_meta(o, _key_of(f, f.middle()), "signature-algorithm"),
        _bad_digest(Code.DIGEST_NO_SIGNATURE),
    ),
    Scenario(
        "log_trailing_data",
        12,
        lambda o, f: append_bytes(o, f.log_key(f.middle()), b"appended"),
        _one(Code.TRAILING_DATA),
    ),
    Scenario(
        "digest_trailing_data",
        12,
        lambda o, f: append_bytes(o, _key_of(f, f.middle()), b"\x00\x00"),
        _bad_digest(Code.TRAILING_DATA),
    ),
    Scenario(
        "log_second_gzip_member",
        13,
        lambda o, f: _second_member(o, f.log_key(f.middle())),
        _one(Code.MULTI_MEMBER_GZIP),
    ),
    Scenario(
        "digest_second_gzip_member",
        13,
        lambda o, f: _second_member(o, _key_of(f, f.middle())),
        _bad_digest(Code.MULTI_MEMBER_GZIP),
    ),
    Scenario(
        "log_truncated_gzip",
        14,
        lambda o, f: _truncate(o, f.log_key(f.middle())),
        _one(Code.INVALID_FORMAT),
    ),
    Scenario(
        "digest_truncated_gzip",
        14,
        lambda o, f: _truncate(o, _key_of(f, f.middle())),
        _bad_digest(Code.INVALID_FORMAT),
    ),
    Scenario(
        "digest_bad_json",
        14,
        lambda o, f: _bad_json(o, _key_of(f, f.middle())),
        _bad_digest(Code.INVALID_FORMAT),
    ),
    Scenario(
        "chain_previous_hash_mismatch",
        15,
        lambda o, f: resign(o, f, f.with_predecessor(), _set("previousDigestHashValue", "0" * 64)),
        _one(Code.CHAIN_LINK_MISMATCH),
    ),
    Scenario(
        "chain_previous_signature_mismatch",
        15,
        lambda o, f: resign(
            o, f, f.with_predecessor(), _set("previousDigestSignature", "ab" * 256)
        ),
        _one(Code.CHAIN_LINK_MISMATCH),
    ),
    Scenario(
        "chain_previous_key_mismatch",
        15,
        lambda o, f: resign(
            o,
            f,
            f.with_predecessor(),
            _set("previousDigestS3Object", _key_of(f, f.with_predecessor())),
        ),
        _one(Code.CHAIN_LINK_MISMATCH),
    ),
    Scenario(
        "window_gap",
        16,
        lambda o, f: resign(o, f, f.with_predecessor(), _shift_start(timedelta(minutes=10))),
        _one(Code.CHAIN_GAP),
    ),
    Scenario(
        "window_overlap",
        16,
        lambda o, f: resign(o, f, f.with_predecessor(), _shift_start(-timedelta(minutes=10))),
        _one(Code.CHAIN_GAP),
    ),
    Scenario(
        "chain_restart_without_logged_stop",
        16,
        lambda o, f: resign(o, f, f.with_predecessor(), _null_previous),
        _one(Code.CHAIN_GAP),
    ),
    Scenario(
        "uppercase_signature_metadata",
        22,
        lambda o, f: _uppercase_sig(o, _key_of(f, f.middle())),
        _bad_digest(Code.DIGEST_NO_SIGNATURE),
    ),
    Scenario(
        "backfill_without_generation_timestamp",
        23,
        lambda o, f: _backfill(o, f, f.middle(), with_timestamp=False),
        _one(Code.INVALID_FORMAT),
    ),
    Scenario(
        "key_rotation_history_incomplete",
        24,
        lambda o, f: None,
        _keyed(_old_key_digests, Code.KEY_UNKNOWN),
        keys=_without_old_key,
    ),
    Scenario(
        "log_regzipped_stored_hash_mismatch",
        None,
        lambda o, f: regzip(o, f.log_key(f.middle()), mtime=12345),
        _one(Code.STORED_HASH_MISMATCH),
    ),
)


def counts(codes: list[Code]) -> dict[Code, int]:
    return dict(Counter(codes))


def nonzero(expected: dict[Code, int]) -> dict[Code, int]:
    return {k: v for k, v in expected.items() if v}


# ---------------------------------------------------------------- young windows

# Run on a trail validated right after it was written, every window younger than its delivery
# allowance: what proves a digest should exist is the chain, not its age. Each case is also a
# case where the AWS CLI's backward walk finds the problem (or where we find more).
FAR_FUTURE = datetime(2030, 1, 1, tzinfo=UTC)


def _newest_but_one(f: TrailFacts) -> int:
    return len(f.digests) - 2


def _moved_away(f: TrailFacts) -> dict[Code, int]:
    return {Code.DIGEST_MOVED: 1, Code.DIGEST_MISSING: 1, Code.LOG_UNREFERENCED: f.logs(f.middle())}


YOUNG_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "young_middle_digest_deleted",
        5,
        lambda o, f: _delete(o, [_key_of(f, f.middle())]),
        _missing(lambda f: [f.middle()]),
    ),
    Scenario(
        "young_newest_but_one_deleted",
        5,
        lambda o, f: _delete(o, [_key_of(f, _newest_but_one(f))]),
        _missing(lambda f: [_newest_but_one(f)]),
    ),
    Scenario(
        "young_two_consecutive_deleted",
        6,
        lambda o, f: _delete(o, [_key_of(f, f.run_of(2)), _key_of(f, f.run_of(2) + 1)]),
        _missing(lambda f: [f.run_of(2), f.run_of(2) + 1]),
    ),
    Scenario(
        "young_digest_moved_to_future_key",
        8,
        lambda o, f: _move_to(o, f, f.middle(), FAR_FUTURE),
        _moved_away,
    ),
    Scenario(
        "young_digest_renamed_to_future_time_in_its_folder",
        8,
        lambda o, f: _rename_in_folder(o, f, f.middle(), "20300101T000000Z"),
        _moved_away,
    ),
    Scenario(
        "young_digest_moved_to_past_key",
        8,
        lambda o, f: _move_to(o, f, f.middle(), f.digests[f.middle()].end - timedelta(seconds=30)),
        _moved_away,
    ),
    Scenario(
        "young_digest_copied_to_second_key",
        8,
        lambda o, f: _move_to(o, f, f.middle(), f.digests[f.middle()].end + timedelta(seconds=1), keep=True),
        _one(Code.DIGEST_MOVED),
    ),
    Scenario(
        "young_log_deleted_with_its_digest",
        5,
        lambda o, f: _delete(o, [f.log_key(f.middle()), _key_of(f, f.middle())]),
        lambda f: {Code.DIGEST_MISSING: 1, Code.LOG_UNREFERENCED: f.logs(f.middle()) - 1},
    ),
)
