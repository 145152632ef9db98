"""Monitoring's cost and lag on a real server (issue #11):

1. ingest throughput with the CIS pack on (the trail forwarding to a log group holding the 15
   CIS filters and their alarms) against the same server set-up without it, measured in the
   same run with the same load (8 clients, batches of 100, as fast as they go): goal within 15 %;
2. forwarding lag at a steady 5,000 events/s with the pack on: each second one probe event with
   a unique eventName, from its acknowledgement to its `ingestionTime` in the log group (found
   with FilterLogEvents on that name): goal p99 <= 1 s.

    .venv/bin/python -m bench.bench_forwarding --seconds 20
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._server import BenchServer
from bench.bench_ingest_http import _client_loop, _records
from trailkeeper.client import Client
from trailkeeper.monitoring import cis_pack

GROUP = "bench-trail-logs"


def _client(server: BenchServer) -> Client:
    return Client(server.endpoint, server.creds["rootAccessKeyId"], server.creds["rootSecretAccessKey"],
                  region=server.creds["region"], timeout=30)


def start(tmp: Path, label: str, pack: bool) -> BenchServer:
    server = BenchServer(tmp / label / "data")
    server.cli("trail", "create", "bench", "--destination", str(tmp / label / "dest"), "--validation",
               "--flush-interval", "5s", "--json")
    server.cli("trail", "start", "bench")
    if pack:
        client = _client(server)
        cis_pack.install(client.call, GROUP)
        server.cli("trail", "update", "bench", "--log-group", GROUP, "--json")
        client.close()
    return server


def throughput(server: BenchServer, seconds: float, clients: int = 8, batch: int = 100,
               rate: int = 0, probe: list[float] | None = None) -> float:
    stop = threading.Event()
    latencies: list[float] = []
    counts = [0] * clients
    interval = clients * batch / rate if rate else 0.0
    threads = [threading.Thread(target=_client_loop, args=(server, i, batch, stop, latencies, counts, interval))
               for i in range(clients)]
    if probe is not None:
        threads.append(threading.Thread(target=_probe_loop, args=(server, stop, probe)))
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def drain(server: BenchServer, limit_s: float = 300) -> tuple[float, int]:
    """Wait until the trail's forwarder has caught up; returns the seconds it took and the events
    it forwarded meanwhile. Caught up: under 5 events forwarded in a second (each status call is
    itself an audited event that is forwarded, so the count never stands quite still)."""
    client = _client(server)

    def forwarded() -> int:
        return int(client.get_server_status()["Trails"][0].get("CloudWatchLogs", {}).get("ForwardedEvents", 0))

    started = time.perf_counter()
    first = last = forwarded()
    while time.perf_counter() - started < limit_s:
        time.sleep(1.0)
        now = forwarded()
        if now - last < 5:
            break
        last = now
    client.close()
    return time.perf_counter() - started - 1.0, last - first


def _probe_loop(server: BenchServer, stop: threading.Event, lags: list[float]) -> None:
    client = _client(server)
    n = 0
    while not stop.wait(1.0):
        n += 1
        name = f"ForwardingProbe{n}"
        record: dict[str, Any] = {**_records(0, 1, 998)[0], "eventName": name}
        client.put_events([record])
        acked_ms = time.time() * 1000
        deadline = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            found = client.call("FilterLogEvents", logGroupName=GROUP,
                                filterPattern=f'{{ $.eventName = "{name}" }}')["events"]
            if found:
                lags.append(max(0.0, (found[0]["ingestionTime"] - acked_ms) / 1000))
                break
            time.sleep(0.02)
        else:
            lags.append(float("inf"))
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        root = Path(tmp)
        without, with_pack = start(root, "plain", pack=False), start(root, "pack", pack=True)
        try:
            rates: dict[str, list[float]] = {"without": [], "with": []}
            for round_ in range(1, args.rounds + 1):  # alternate, so drift hits both alike
                for label, server in (("without", without), ("with", with_pack)):
                    rates[label].append(throughput(server, args.seconds))
                    print(f"round {round_} {label:>7} pack: {rates[label][-1]:,.0f} events/s", flush=True)
                    if label == "with":  # the forwarder catches up before anything else is measured
                        took, events = drain(with_pack)
                        print(f"  the forwarder caught up {took:.1f} s after the load ({events:,} events then)",
                              flush=True)
            best_without, best_with = max(rates["without"]), max(rates["with"])
            change = (best_with - best_without) / best_without * 100
            print(f"ingest: {best_without:,.0f} events/s without the pack, {best_with:,.0f} with it "
                  f"({change:+.1f} %; goal: no worse than -15 %)")
            without.stop()
            lags: list[float] = []
            offered = throughput(with_pack, args.seconds * 2, rate=5000, probe=lags)
            ordered = sorted(lags)
            p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            print(f"forwarding lag at {offered:,.0f} events/s over {len(lags)} probes: p50 {p50 * 1000:.0f} ms, "
                  f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms (goal: p99 <= 1000 ms)")
            status = _client(with_pack).get_server_status()
            print(f"forwarded: {[t.get('CloudWatchLogs') for t in status['Trails']]}")
        finally:
            for server in (without, with_pack):
                if server.proc.poll() is None:
                    server.stop()


if __name__ == "__main__":
    main()
