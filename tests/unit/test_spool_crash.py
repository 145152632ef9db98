"""SIGKILL a process appending to the spool at random moments; nothing acknowledged is lost."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from trailkeeper.spool import Spool

# Each record is derived from (run, thread, batch, index) so its bytes can be checked.
WRITER = r"""
import sys, threading
from pathlib import Path
from trailkeeper.spool import Spool

directory, run = Path(sys.argv[1]), int(sys.argv[2])
spool = Spool(directory, segment_bytes=32 * 1024)
out_lock = threading.Lock()

def record(thread, batch, index):
    head = f"{run}:{thread}:{batch}:{index}:".encode()
    return head + bytes([(run + thread + batch + index) % 251]) * (50 + (batch * 37 + index) % 400)

def work(thread):
    batch = 0
    while True:
        count = 1 + (batch + thread) % 7
        result = spool.append([record(thread, batch, i) for i in range(count)])
        with out_lock:
            sys.stdout.write(f"{result.first_seq} {result.count} {thread} {batch}\n")
            sys.stdout.flush()
        batch += 1

print("ready", flush=True)
for t in range(4):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""


def expected_record(run: int, thread: int, batch: int, index: int) -> bytes:
    head = f"{run}:{thread}:{batch}:{index}:".encode()
    return head + bytes([(run + thread + batch + index) % 251]) * (50 + (batch * 37 + index) % 400)


def run_and_kill(directory: Path, run: int, rng: random.Random) -> list[tuple[int, int, int, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else b""
    time.sleep(rng.uniform(0.05, 0.4))
    proc.send_signal(signal.SIGKILL)
    out, _err = proc.communicate(timeout=10)
    acked = []
    for line in out.decode().splitlines():
        parts = line.split()
        if len(parts) == 4:  # a line cut by the kill was never fully reported
            first, count, thread, batch = map(int, parts)
            acked.append((first, count, thread, batch))
    return acked


def test_acknowledged_records_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(hashlib.sha256(b"spool-crash").digest())
    directory = tmp_path / "spool"
    acked_all: list[tuple[int, int, int, int, int]] = []
    for run in range(10):
        acked_all += [(run, *entry) for entry in run_and_kill(directory, run, rng)]
        with Spool(directory, segment_bytes=32 * 1024) as sp:
            stored = dict(sp.read(1, 10**9, 10**12))
            assert sorted(stored) == list(range(1, sp.next_seq()))
        for record in stored.values():  # acknowledged or not, every record is whole
            run_id, thread, batch, index = map(int, record.split(b":", 4)[:4])
            assert record == expected_record(run_id, thread, batch, index)
        for run_id, first, count, thread, batch in acked_all:
            for i in range(count):
                assert stored[first + i] == expected_record(run_id, thread, batch, i)
    assert len(acked_all) > 50
    assert len(list(directory.glob("*.seg"))) > 1
