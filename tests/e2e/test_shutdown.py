"""Stopping logs only what is true; a real crash of the indexer is logged and survived.

The server runs in its own process group, and the stop signal goes to the whole group, as a
terminal's Ctrl-C (SIGINT) or a service manager (SIGTERM to the control group) sends it: the
history indexer child receives it too.
"""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from tests.e2e.harness import Server, wait_until

from trailkeeper.client import Client


def _event(i: int) -> dict[str, object]:
    return {"eventName": f"Shutdown{i}", "eventSource": "app.example.com", "requestParameters": None,
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _indexer(server: Server) -> psutil.Process:
    assert server.proc is not None
    found = [c for c in psutil.Process(server.proc.pid).children() if "spawn_main" in " ".join(c.cmdline())]
    assert len(found) == 1, found
    return found[0]


def _searchable(client: Client, ids: list[str]) -> bool:
    found = {e["EventId"] for e in client.iter_lookup_events(start_time=datetime(2020, 1, 1, tzinfo=UTC))}
    return set(ids) <= found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_to_the_process_group_logs_no_error(tmp_path: Path, sig: signal.Signals) -> None:
    server = Server(tmp_path / "data")
    server.init()
    server.start(new_session=True)
    client = server.client()
    ids = [i for n in range(5) for i in client.put_events([_event(n)])]
    assert wait_until(lambda: _searchable(client, ids), 5)
    assert server.proc is not None
    os.killpg(server.proc.pid, sig)
    assert server.proc.wait(timeout=60) == 0
    assert server.log_path is not None
    log = server.log_path.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log
    assert "KeyboardInterrupt" not in log and "after shutdown began" not in log
    assert "trailkeeper stopped" in log


def test_a_killed_indexer_is_logged_restarted_and_loses_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path / "data")
    server.init()
    server.start()
    try:
        client = server.client()
        ids = [i for n in range(3) for i in client.put_events([_event(n)])]
        first = _indexer(server)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        ids += [i for n in range(3, 30) for i in client.put_events([_event(n)])]
        assert wait_until(lambda: _searchable(client, ids), 15)
        assert _indexer(server).pid != first.pid
        assert server.log_path is not None
        log = server.log_path.read_text()
        assert "the history indexer process died (killed by signal 9); restarting it" in log
        status = client.get_server_status()
        assert status["HistoryIndexedSeq"] >= status["Spool"]["next_seq"] - 5
        assert json.dumps(status["Quarantined"]) == "{}"
    finally:
        assert server.terminate() == 0
