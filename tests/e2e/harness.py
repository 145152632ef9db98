"""A real trailkeeper server in a subprocess, driven through the real CLI and client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from trailkeeper.client import Client

BIN = Path(sys.executable).parent
TRAILKEEPER = str(BIN / "trailkeeper")
AWS = str(BIN / "aws")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([TRAILKEEPER, *args], capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"trailkeeper {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Server:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    creds: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    # The command that runs the server, before its --data-dir/--host/--port (a test may run it
    # through a launcher of its own, e.g. tests/e2e/faulty_server.py).
    command: tuple[str, ...] = (TRAILKEEPER, "server")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.creds["rootAccessKeyId"], "AWS_SECRET_ACCESS_KEY": self.creds["rootSecretAccessKey"],
                "TRAILKEEPER_ENDPOINT": self.endpoint}

    @classmethod
    def for_data(cls, data_dir: Path, creds: Any) -> Server:
        """A server (not started) for a data directory made in-process, with its root credentials
        (`identity.RootCredentials`)."""
        server = cls(data_dir)
        server.creds = {"accountId": creds.account_id, "region": creds.region,
                        "rootAccessKeyId": creds.access_key_id, "rootSecretAccessKey": creds.secret_access_key}
        return server

    def init(self, cis_pack: bool = False) -> dict[str, str]:
        """`trailkeeper init`; without the CIS pack unless asked (tests count alarms, groups and
        forwarded events of their own; tests/e2e/test_monitoring_pack.py tests the default)."""
        flag = "--cis-pack" if cis_pack else "--no-cis-pack"
        self.creds = json.loads(run_cli("init", "--data-dir", str(self.data_dir), flag, "--json").stdout)
        return self.creds

    def start(self, timeout: float = 30, new_session: bool = False) -> None:
        """`new_session`: the server leads its own process group, so a test can signal the whole
        group as a terminal's Ctrl-C or a service manager does."""
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child process owns it until it exits
        self.proc = subprocess.Popen(
            [*self.command, "--data-dir", str(self.data_dir), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=new_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.endpoint}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not become healthy: {self.log_path.read_text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def client(self, access_key_id: str | None = None, secret: str | None = None) -> Client:
        return Client(self.endpoint, access_key_id or self.creds["rootAccessKeyId"],
                      secret or self.creds["rootSecretAccessKey"], region=self.creds["region"])

    def cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={**self.env, **(env or {})}, check=check)

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def aws(self, *args: str, key_id: str | None = None, secret: str | None = None) -> subprocess.CompletedProcess[str]:
        """The unmodified AWS CLI against this server, as root unless another key is given."""
        env = {**os.environ, "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": self.creds["region"],
               "AWS_ACCESS_KEY_ID": key_id or self.creds["rootAccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": secret or self.creds["rootSecretAccessKey"],
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        return subprocess.run([AWS, *args, "--output", "json"], capture_output=True, text=True, env=env,
                              timeout=120, stdin=subprocess.DEVNULL)

    def aws_json(self, *args: str, key_id: str | None = None, secret: str | None = None) -> Any:
        """`aws(...)`'s JSON answer; the call must succeed."""
        done = self.aws(*args, key_id=key_id, secret=secret)
        assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else {}


def running_server(data_dir: Path) -> Iterator[Server]:
    """A freshly initialised server for a module's tests; it must stop cleanly afterwards.
    Module fixtures: `yield from running_server(tmp_path_factory.mktemp("name") / "data")`."""
    server = Server(data_dir)
    server.init()
    server.start()
    yield server
    assert server.terminate() == 0


def delivered_records(dest: Path) -> list[dict[str, Any]]:
    import gzip

    records: list[dict[str, Any]] = []
    for path in sorted(dest.rglob("*.json.gz")):
        if "CloudTrail-Digest" in path.parts:
            continue
        records.extend(json.loads(gzip.decompress(path.read_bytes()))["Records"])
    return records


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def signed_post(server: Server, path: str, body: bytes, *, secret: str | None = None, key_id: str | None = None,
                region: str | None = None, when: Any = None) -> httpx.Response:
    """POST `body` signed by botocore itself (not by our client), optionally as of another time."""
    import unittest.mock

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{server.endpoint}{path}"
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    signer = SigV4Auth(Credentials(key_id or server.creds["rootAccessKeyId"], secret or server.creds["rootSecretAccessKey"]),
                       "trailkeeper", region or server.creds["region"])
    if when is not None:
        with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=when.replace(tzinfo=None)):
            signer.add_auth(request)
    else:
        signer.add_auth(request)
    return httpx.post(url, content=body, headers=dict(request.headers.items()))
