"""The limiter that keeps unauthenticated refusals from filling the spool, and its summary."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from tests.pipeline import Pipeline

from trailkeeper.api.app import App
from trailkeeper.api.refusals import (
    PER_SOURCE_BURST,
    PER_SOURCE_RATE,
    SUMMARY_INTERVAL_S,
    TOTAL_BURST,
    RefusalLimiter,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_source_gets_a_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RefusalLimiter(clock)
    admitted = sum(limiter.admit("198.51.100.1", "MissingAuthenticationToken") for _ in range(1000))
    assert admitted == PER_SOURCE_BURST
    clock.now += 10
    admitted = sum(limiter.admit("198.51.100.1", "MissingAuthenticationToken") for _ in range(1000))
    assert admitted == PER_SOURCE_BURST  # refilled at PER_SOURCE_RATE, capped by the burst
    clock.now += 1
    assert sum(limiter.admit("198.51.100.1", "X") for _ in range(100)) == PER_SOURCE_RATE
    assert limiter.admit("198.51.100.2", "X")  # another address has its own bucket


def test_all_sources_together_are_capped() -> None:
    limiter = RefusalLimiter(Clock())
    admitted = sum(limiter.admit(f"2001:db8::{n:x}", "X") for n in range(2000))
    assert admitted == TOTAL_BURST


def test_what_is_dropped_is_summarised_once_per_interval() -> None:
    clock = Clock()
    limiter = RefusalLimiter(clock)
    for _ in range(100):
        limiter.admit("198.51.100.1", "MissingAuthenticationToken")
    for _ in range(30):
        limiter.admit("198.51.100.9", "SignatureDoesNotMatch")
    assert limiter.summary_due() is None  # not yet an interval
    clock.now += SUMMARY_INTERVAL_S
    summary = limiter.summary_due()
    assert summary is not None and summary.total == 100 + 30 - 2 * int(PER_SOURCE_BURST)
    details = summary.details()
    assert details["sources"] == [{"sourceIPAddress": "198.51.100.1", "dropped": 80},
                                  {"sourceIPAddress": "198.51.100.9", "dropped": 10}]
    assert details["errorCodes"] == {"MissingAuthenticationToken": 80, "SignatureDoesNotMatch": 10}
    assert limiter.summary_due() is None  # reported once


def _unsigned(app: App, path: str, agent: bytes) -> int:
    sent: dict[str, Any] = {}
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [(b"user-agent", agent)], "client": ("203.0.113.66", 4000)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.update(message)

    asyncio.run(app(scope, receive, send))
    return int(sent["status"])


def test_the_summary_is_recorded_in_a_maintenance_round(pipeline: Pipeline) -> None:
    clock = Clock()
    app = App(pipeline.service, workers=2)
    app.refusals = RefusalLimiter(clock)
    first = pipeline.service.spool.next_seq()
    for _ in range(60):
        assert _unsigned(app, "/\x1b[2J" + "A" * 5000, b"x" * 100_000) == 403
    recorded = pipeline.service.spool.read(first, 1000, 1 << 30)
    assert len(recorded) == PER_SOURCE_BURST
    for _, body in recorded:
        record = orjson.loads(body)
        assert len(record["eventName"]) <= 1024 and "\x1b" not in record["eventName"]
        assert len(record["userAgent"]) <= 1024
    clock.now += SUMMARY_INTERVAL_S
    app.report_suppressed()
    [(_, body)] = pipeline.service.spool.read(first + len(recorded), 10, 1 << 30)
    summary = orjson.loads(body)
    assert summary["eventName"] == "UnauthenticatedRequestsSuppressed"
    assert summary["serviceEventDetails"]["dropped"] == 60 - PER_SOURCE_BURST
    assert summary["serviceEventDetails"]["sources"][0]["sourceIPAddress"] == "203.0.113.66"
