"""Shared by the benchmarks: start a real trailkeeper server in a scratch data directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent / "trailkeeper"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BenchServer:
    def __init__(self, data_dir: Path, cis_pack: bool = False) -> None:
        """`cis_pack`: init with the CIS monitoring pack (then new trails forward by default);
        without it unless a benchmark measures it."""
        self.data_dir = data_dir
        self.port = free_port()
        flag = "--cis-pack" if cis_pack else "--no-cis-pack"
        self.creds: dict[str, str] = json.loads(subprocess.run(
            [str(BIN), "init", "--data-dir", str(data_dir), flag, "--json"], check=True, capture_output=True,
            text=True).stdout)
        log = open(data_dir.parent / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([str(BIN), "server", "--data-dir", str(data_dir), "--port", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                if httpx.get(f"{self.endpoint}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": self.creds["rootAccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": self.creds["rootSecretAccessKey"], "TRAILKEEPER_ENDPOINT": self.endpoint}

    def cli(self, *args: str) -> Any:
        out = subprocess.run([str(BIN), *args], check=True, capture_output=True, text=True, env=self.env).stdout
        return json.loads(out) if "--json" in args else out

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=120)
