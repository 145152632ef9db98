"""The digest chain on its own: in-memory trails and object store, a frozen clock, a fake signer."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trailkeeper import layout
from trailkeeper.clock import FrozenClock
from trailkeeper.digest import string_to_sign
from trailkeeper.digest_chain import DigestChain
from trailkeeper.errors import StorageError
from trailkeeper.keys.signing import PublicKeyInfo, fingerprint
from trailkeeper.state.trails import MemoryTrailRepository
from trailkeeper.storage.memory import MemoryStore
from trailkeeper.trails import DeliveredFile, Trail, TrailConfig, TrailState, TrailStore

START = datetime(2026, 3, 1, 10, 58, 30, 400000, tzinfo=UTC)
ACCOUNT, REGION = "123456789012", "eu-west-1"
CONFIG = TrailConfig(name="audit", bucket="audit-logs", destination="unused", validation=True, digest_interval_s=900)


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-03-01T{text}+00:00")


class Signer:
    """A fake of digest_chain.DigestSigner: one current RSA key; `rotate` makes a new one."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.info = self.rotate()

    def rotate(self) -> PublicKeyInfo:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        self.info = PublicKeyInfo(der, fingerprint(der), START, None)
        self.keys[self.info.fingerprint] = key
        return self.info

    def current(self) -> PublicKeyInfo:
        return self.info

    def sign(self, fp: str, message: bytes) -> str:
        return self.keys[fp].sign(message, padding.PKCS1v15(), hashes.SHA256()).hex()

    def verify(self, fp: str, signature: str, message: bytes) -> None:
        self.keys[fp].public_key().verify(bytes.fromhex(signature), message, padding.PKCS1v15(), hashes.SHA256())


class CrashingTrails(TrailStore):
    """Dies once between the digest's write and its commit, when told to."""

    crash = False

    def record_digest(self, name: str, state: TrailState, keys: list[str], end: datetime, final: bool) -> None:
        if self.crash:
            self.crash = False
            raise RuntimeError("killed between the digest's write and its commit")
        super().record_digest(name, state, keys, end, final)


@dataclass
class Rig:
    clock: FrozenClock
    trails: CrashingTrails
    store: MemoryStore
    signer: Signer
    chain: DigestChain
    settled: list[TrailState] = field(default_factory=list)

    def trail(self) -> Trail:
        return self.trails.get(CONFIG.name)

    def step(self, method: Callable[[Trail, datetime], bool], when: str) -> bool:
        self.clock.set(at(when))
        return method(self.trail(), self.clock.now())

    def deliver(self, key_minute: str, delivered: str) -> DeliveredFile:
        when = at(delivered)
        key = layout.log_key("", ACCOUNT, REGION, when, layout.uniq16_for(key_minute.encode()))
        file = DeliveredFile(key, "ab" * 32, "cd" * 32, when, when, when, 1)
        self.trails.record_delivery(CONFIG.name, self.trail().state, file, 1, 2)
        return file

    def digest(self, end: datetime) -> tuple[dict[str, Any], bytes, dict[str, str]]:
        stored = self.store.get(layout.digest_key("", ACCOUNT, REGION, CONFIG.name, REGION, end))
        body = gzip.decompress(stored.data)
        return orjson.loads(body), body, dict(stored.metadata)

    def verify(self, doc: dict[str, Any], body: bytes, metadata: dict[str, str]) -> None:
        message = string_to_sign(doc["digestEndTime"], doc["digestS3Bucket"], doc["digestS3Object"],
                                 hashlib.sha256(body).hexdigest(), doc["previousDigestSignature"])
        self.signer.verify(doc["digestPublicKeyFingerprint"], metadata["signature"], message)


@pytest.fixture
def rig() -> Rig:
    clock = FrozenClock(START)
    trails = CrashingTrails(MemoryTrailRepository())
    trails.create(CONFIG, START)
    trails.save_state(CONFIG.name, TrailState(is_logging=True, offset_seq=1, start_logging_time=START.replace(microsecond=0)))
    store = MemoryStore(CONFIG.bucket, clock)
    signer = Signer()
    settled: list[TrailState] = []

    def settle(trail: Trail, state: TrailState, now: datetime) -> TrailState:
        settled.append(state)
        return replace(state, failing_since=None)

    chain = DigestChain(ACCOUNT, REGION, trails, signer, lambda trail: store, settle=settle)
    return Rig(clock, trails, store, signer, chain, settled)


def test_a_chain_starts_when_logging_started_and_links_every_window(rig: Rig) -> None:
    assert rig.step(rig.chain.maybe_start, "10:58:50")
    assert not rig.step(rig.chain.maybe_start, "10:58:51")  # one chain per logging period
    assert rig.trail().state.digest_start == at("10:58:30")
    [period] = rig.trails.periods(CONFIG.name)
    assert period.started == at("10:58:30") and period.location == CONFIG.location
    first_file = rig.deliver("a", "10:59:10")

    assert not rig.step(rig.chain.maybe_digest, "10:59:59.999")
    assert rig.step(rig.chain.maybe_digest, "11:00:02")
    doc, body, meta = rig.digest(at("11:00:00"))
    assert (doc["digestStartTime"], doc["digestEndTime"]) == ("2026-03-01T10:58:30Z", "2026-03-01T11:00:00Z")
    assert [f["s3Object"] for f in doc["logFiles"]] == [first_file.key]
    assert doc["previousDigestSignature"] is None  # a starting digest
    rig.verify(doc, body, meta)
    state = rig.trail().state
    assert state.chain is not None and state.chain.signature == meta["signature"] == meta["signature"].lower()
    assert state.digest_start == at("11:00:00") and rig.trails.undigested(CONFIG.name, at("12:00:00")) == []
    assert rig.settled[-1].chain == state.chain  # the hook saw the state about to be committed

    rig.deliver("b", "11:07:00")
    assert rig.step(rig.chain.maybe_digest, "11:15:00")
    second, second_body, second_meta = rig.digest(at("11:15:00"))
    assert second["digestStartTime"] == "2026-03-01T11:00:00Z" and len(second["logFiles"]) == 1
    assert second["previousDigestSignature"] == meta["signature"]
    assert second["previousDigestHashValue"] == hashlib.sha256(body).hexdigest()
    rig.verify(second, second_body, second_meta)
    assert rig.step(rig.chain.maybe_digest, "11:31:00")  # a window without files has its digest too
    assert rig.digest(at("11:30:00"))[0]["logFiles"] == []


def test_the_final_digest_waits_for_its_end_and_completes_the_stop(rig: Rig) -> None:
    assert rig.step(rig.chain.maybe_start, "10:58:40")
    rig.deliver("a", "10:59:41.7")
    rig.trails.save_state(CONFIG.name, replace(rig.trail().state, stop_seq=5, stop_logging_time=at("10:59:41.8")))
    # The end is the first whole second after the last delivery; it is kept, not yet reached.
    assert not rig.step(rig.chain.finish, "10:59:41.9")
    assert rig.trail().state.final_end == at("10:59:42")
    assert rig.step(rig.chain.finish, "10:59:42.5")
    doc, body, meta = rig.digest(at("10:59:42"))
    rig.verify(doc, body, meta)
    state = rig.trail().state
    assert not state.is_logging and state.stop_seq is None and state.digest_start is None
    assert state.chain is not None and state.chain.end == at("10:59:42") and state.final_end is None
    assert rig.trails.periods(CONFIG.name)[-1].final_digest_end == at("10:59:42")

    # The next period's chain starts no earlier than this one ended.
    assert DigestChain.chain_start(replace(state, start_logging_time=at("10:59:40")), at("11:03:00")) == at("10:59:42")


def test_a_retry_after_a_crash_before_the_commit_writes_the_same_bytes_with_the_same_key(rig: Rig) -> None:
    rig.step(rig.chain.maybe_start, "10:58:40")
    rig.deliver("a", "10:59:10")
    first_key = rig.signer.info.fingerprint
    rig.trails.crash = True
    with pytest.raises(RuntimeError, match="killed"):
        rig.step(rig.chain.maybe_digest, "11:00:02")
    written = rig.store.get(layout.digest_key("", ACCOUNT, REGION, CONFIG.name, REGION, at("11:00:00")))
    assert rig.trail().state.digest_fingerprint == first_key  # chosen and committed before the write

    rig.signer.rotate()  # a new current key must not change the digest being retried
    assert rig.step(rig.chain.maybe_digest, "11:00:40")
    doc, body, meta = rig.digest(at("11:00:00"))
    assert (body, meta) == (gzip.decompress(written.data), dict(written.metadata))
    assert doc["digestPublicKeyFingerprint"] == first_key
    assert rig.trail().state.digest_fingerprint is None


def test_a_digest_key_holding_other_bytes_is_refused_not_overwritten(rig: Rig) -> None:
    rig.step(rig.chain.maybe_start, "10:58:40")
    key = layout.digest_key("", ACCOUNT, REGION, CONFIG.name, REGION, at("11:00:00"))
    rig.store.put_exclusive(key, b"someone else's bytes", {})
    with pytest.raises(StorageError, match="exists with other content"):
        rig.step(rig.chain.maybe_digest, "11:00:02")
    assert rig.trail().state.digest_start == at("10:58:30") and rig.trail().state.chain is None


def test_turning_validation_off_closes_the_chain_with_a_final_digest(rig: Rig) -> None:
    rig.step(rig.chain.maybe_start, "10:58:40")
    rig.trails.update_config(replace(CONFIG, validation=False))
    assert rig.step(rig.chain.maybe_start, "11:04:10")
    state = rig.trail().state
    assert state.is_logging and state.digest_start is None  # logging goes on, without digests
    key = layout.digest_key("", ACCOUNT, REGION, CONFIG.name, REGION, at("11:04:10"))
    assert state.chain is not None and (state.chain.key, state.chain.end) == (key, at("11:04:10"))
    assert not rig.step(rig.chain.maybe_start, "11:05:00") and not rig.step(rig.chain.maybe_digest, "11:16:00")
