"""Envelope-encrypted trails on the real pipeline: delivery, validation with and without the key,
tampering of encrypted files (one named case each), and a disabled key as an outage."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper import envelope
from trailkeeper.api.operations import OPEN_END, OPEN_START
from trailkeeper.history.base import LookupQuery
from trailkeeper.storage.folder import FolderStore
from trailkeeper.trails import TrailConfig
from trailkeeper.validate import Code, Status, ValidationReport
from trailkeeper.validate.command import run_validation

BUCKET = "enc-bucket"


@dataclass
class Built:
    pipeline: Pipeline
    dest: Path
    key_arn: str
    ids: list[str]


def _minutes(p: Pipeline, count: int, per_minute: int = 10) -> list[str]:
    ids: list[str] = []
    for _ in range(count):
        ids += p.ingest([app_event(i, p.clock.now()) for i in range(per_minute)])
        p.advance(2)
        p.advance(58)
    return ids


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("encrypted")
    with open_pipeline(tmp) as p:
        key = p.service.kms.create_key("trail logs")
        p.service.create_trail(TrailConfig(name="enc", bucket=BUCKET, destination=str(tmp / "dest"), validation=True,
                                           flush_interval_s=1, digest_interval_s=60, kms_key_id=key.arn))
        p.service.start_logging("enc")
        ids = _minutes(p, 2)
        p.service.kms.rotate_key_on_demand(key.arn)  # files before and after a rotation
        ids += _minutes(p, 2)
        p.service.stop_logging("enc")
        p.advance(3)
        yield Built(p, tmp / "dest", key.arn, ids)


def _logs(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*.json.gz") if "CloudTrail-Digest" not in str(p))


def _validate(b: Built, mode: str = "full") -> ValidationReport:
    now = b.pipeline.clock.now()
    report, _ = run_validation(b.pipeline.service.config, "enc", now - timedelta(hours=1), now, mode,
                               now=now + timedelta(hours=2))
    return report


def _problems(report: ValidationReport) -> list[tuple[str, str, str]]:
    return [(e.key, str(e.code), e.message) for e in report.entries if e.status is Status.INVALID]


def test_log_files_are_envelopes_naming_key_and_version_and_digests_stay_plain(built: Built) -> None:
    logs = _logs(built.dest)
    assert len(logs) >= 4
    versions = set()
    for path in logs:
        data = path.read_bytes()
        header = envelope.read_header(data)
        assert header.key_arn == built.key_arn
        versions.add(header.key_version)
        assert header.context["aws:s3:arn"].endswith(str(path.relative_to(built.dest)))
        assert b"app.example.com" not in data
    assert versions == {1, 2}
    digests = [p for p in built.dest.rglob("*.json.gz") if "CloudTrail-Digest" in str(p)]
    assert digests and all(gzip.decompress(p.read_bytes()).startswith(b"{") for p in digests)


def test_every_acknowledged_event_is_in_exactly_one_encrypted_file(built: Built) -> None:
    kms = built.pipeline.service.kms
    store = FolderStore(built.dest, BUCKET)
    trail_arn = built.pipeline.service.trail_arn("enc")
    seen: list[str] = []
    for path in _logs(built.dest):
        key = str(path.relative_to(built.dest))
        plain = envelope.open_(kms, store.get(key).data, envelope.log_context(trail_arn, BUCKET, key))
        seen += [r["eventID"] for r in orjson.loads(gzip.decompress(plain))["Records"]]
    assert set(built.ids) <= set(seen) and len(seen) == len(set(seen))


def test_full_mode_decrypts_and_validates_and_stored_mode_needs_no_key(built: Built) -> None:
    full = _validate(built, "full")
    assert full.ok, _problems(full)
    assert full.logs_valid == len(_logs(built.dest))
    stored = _validate(built, "stored")
    assert stored.ok, _problems(stored)


def _flip(data: bytes) -> bytes:
    return data[:-30] + bytes([data[-30] ^ 0x40]) + data[-29:]


def _set_version(data: bytes) -> bytes:
    header = envelope.read_header(data)
    old = f'"keyVersion":{header.key_version}'.encode()
    return data.replace(old, f'"keyVersion":{header.key_version % 2 + 1}'.encode(), 1)


Tamper = Callable[[list[Path]], tuple[Path, str]]


def _flip_one(logs: list[Path]) -> tuple[Path, str]:
    logs[1].write_bytes(_flip(logs[1].read_bytes()))
    return logs[1], envelope.CIPHERTEXT_TAMPERED


def _swap_two(logs: list[Path]) -> tuple[Path, str]:
    # Moving a file to another key path: swap two files' bytes, so both keys stay present.
    a, b = logs[0].read_bytes(), logs[2].read_bytes()
    logs[0].write_bytes(b)
    logs[2].write_bytes(a)
    return logs[0], envelope.CONTEXT_MISMATCH


def _change_version(logs: list[Path]) -> tuple[Path, str]:
    logs[3].write_bytes(_set_version(logs[3].read_bytes()))
    return logs[3], envelope.HEADER_MISMATCH


TAMPERINGS: dict[str, Tamper] = {
    "ciphertext-byte-flipped": _flip_one,
    "file-moved-to-another-key-path": _swap_two,
    "header-key-version-changed": _change_version,
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_encrypted_file_is_reported_with_its_reason(built: Built, name: str) -> None:
    logs = _logs(built.dest)
    saved = {p: p.read_bytes() for p in logs}
    try:
        target, reason = TAMPERINGS[name](logs)
        report = _validate(built)
        key = str(target.relative_to(built.dest))
        hits = [p for p in _problems(report) if p[0] == key]
        assert hits and hits[0][1] == Code.LOG_DECRYPT_FAILED and hits[0][2].startswith(reason), _problems(report)
        # Stored mode, without any key, sees that the bytes changed too.
        stored = _validate(built, "stored")
        assert any(p[0] == key and p[1] == Code.STORED_HASH_MISMATCH for p in _problems(stored))
    finally:
        for path, data in saved.items():
            path.write_bytes(data)


def test_a_disabled_key_holds_delivery_back_and_enabling_it_delivers_everything(tmp_path: Path) -> None:
    with open_pipeline(tmp_path) as p:
        key = p.service.kms.create_key("outage")
        p.service.create_trail(TrailConfig(name="kms-out", bucket="k-bucket", destination=str(tmp_path / "dest"),
                                           validation=True, flush_interval_s=1, digest_interval_s=60, kms_key_id=key.arn))
        p.service.start_logging("kms-out")
        ids = _minutes(p, 1)
        p.service.kms.disable_key(key.arn)
        ids += _minutes(p, 2)
        state = p.service.trails.get("kms-out").state
        assert "DisabledException" in state.latest_delivery_error
        failed = p.service.history.lookup(LookupQuery("EventName", "TrailDeliveryFailed", OPEN_START, OPEN_END))
        assert failed.events, "the failure start must be recorded (PCI DSS 10.7.3)"
        p.service.kms.enable_key(key.arn)
        ids += _minutes(p, 2)
        assert p.service.trails.get("kms-out").state.latest_delivery_error == ""
        recovered = p.service.history.lookup(LookupQuery("EventName", "TrailDeliveryRecovered", OPEN_START, OPEN_END))
        assert recovered.events
        p.service.stop_logging("kms-out")
        p.advance(3)
        store = FolderStore(tmp_path / "dest", "k-bucket")
        arn = p.service.trail_arn("kms-out")
        seen = []
        for path in _logs(tmp_path / "dest"):
            k = str(path.relative_to(tmp_path / "dest"))
            plain = envelope.open_(p.service.kms, store.get(k).data, envelope.log_context(arn, "k-bucket", k))
            seen += [r["eventID"] for r in orjson.loads(gzip.decompress(plain))["Records"]]
        assert set(ids) <= set(seen) and len(seen) == len(set(seen))


def test_a_key_used_by_a_logging_trail_cannot_be_scheduled_for_deletion(tmp_path: Path) -> None:
    from trailkeeper.errors import KmsError

    with open_pipeline(tmp_path) as p:
        key = p.service.kms.create_key("in use")
        p.service.kms.create_alias("alias/in-use", key.key_id)
        p.service.create_trail(TrailConfig(name="user-of-key", bucket="u-bucket", destination=str(tmp_path / "d"),
                                           flush_interval_s=1, digest_interval_s=60, kms_key_id="alias/in-use"))
        p.service.start_logging("user-of-key")
        with pytest.raises(KmsError) as refused:
            p.service.kms.schedule_key_deletion(key.arn, 7)
        assert refused.value.code == "KMSInvalidStateException" and "user-of-key" in str(refused.value)
        p.service.stop_logging("user-of-key")
        p.advance(3)
        assert p.service.kms.schedule_key_deletion(key.arn, 7)
