"""A trail worker that meets an unexpected error (here the one seen in the field: sqlite3
'disk I/O error' from the signing-key table while writing a digest) logs it, records
TrailDeliveryFailed, shows it in the trail status, retries with backoff, and recovers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from trailkeeper.api.app import caller_of
from trailkeeper.bootstrap import init_with_config
from trailkeeper.config import load_config
from trailkeeper.keys.signing import PublicKeyInfo
from trailkeeper.service import Service
from trailkeeper.trails import TrailConfig


class FailingKeys:
    """The service's signing keys, with `current()` failing the first `failures` calls."""

    def __init__(self, keys: Any, failures: int) -> None:
        self._keys = keys
        self.failures = failures

    def current(self) -> PublicKeyInfo:
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        info: PublicKeyInfo = self._keys.current()
        return info

    def __getattr__(self, name: str) -> Any:
        return getattr(self._keys, name)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    config = load_config(tmp_path / "data", default_bucket_root=tmp_path / "buckets")
    creds = init_with_config(config)
    svc = Service(config)
    svc.start()
    svc.root_key = creds.access_key_id  # type: ignore[attr-defined]
    try:
        yield svc
    finally:
        svc.close(flush_timeout=2)


def _records(service: Service, name: str) -> list[dict[str, Any]]:
    seq, out = 1, []
    while batch := service.spool.read(seq, 1000, 1 << 30):
        out += [r for r in (orjson.loads(b) for _, b in batch) if r.get("eventName") == name]
        seq = batch[-1][0] + 1
    return out


def _until(check: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


def test_an_unexpected_error_is_recorded_shown_and_survived(service: Service, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    service.create_trail(TrailConfig(name="guarded", bucket="guarded-logs", destination=str(tmp_path / "dest"),
                                     validation=True, flush_interval_s=1, digest_interval_s=60))
    service.start_logging("guarded")
    resolved = service.identity.resolve(service.root_key)  # type: ignore[attr-defined]
    assert resolved is not None
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    service.record([{"eventName": "Before", "eventSource": "app.example.com", "eventTime": now,
                     "requestParameters": None}], caller_of(resolved[0]))
    worker = service._workers["guarded"]
    faulty = FailingKeys(worker.digests.keys, failures=2)
    worker.digests.keys = faulty  # the worker's digest chain signs with these from now on
    service.stop_logging("guarded")  # the final digest needs keys.current(): it fails twice

    assert _until(lambda: _records(service, "TrailDeliveryFailed"))
    [failed] = _records(service, "TrailDeliveryFailed")
    assert "OperationalError: disk I/O error" in failed["serviceEventDetails"]["error"]
    shown = service.get_trail("guarded").state  # what GetTrailStatus shows while it lasts
    assert "disk I/O error" in shown.latest_digest_error and shown.failing_since is not None
    assert _until(lambda: faulty.failures == 0 and not service.get_trail("guarded").state.is_logging)
    assert worker.is_alive()
    assert _until(lambda: _records(service, "TrailDeliveryRecovered"))
    state = service.get_trail("guarded").state
    assert state.latest_digest_error == "" and state.chain is not None  # the final digest is written
    assert any("unexpected error in delivery" in r.message for r in caplog.records)
