"""The backlog policy while a destination is down: fail-closed refuses new events with 503 and
records it; fail-open accepts them and raises the alarm; either way the end is recorded and
nothing acknowledged is lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.pipeline import Pipeline, app_event, call_app, open_pipeline

from trailkeeper.api.app import App
from trailkeeper.api.operations import OPEN_END, OPEN_START, get_server_status
from trailkeeper.errors import BacklogFullError
from trailkeeper.history.base import LookupQuery
from trailkeeper.service import BACKLOG_RECHECK_S
from trailkeeper.storage.faults import FaultyStore
from trailkeeper.trails import TrailConfig

LIMIT = 30


def _break_destination(p: Pipeline, dest: Path) -> FaultyStore:
    p.service.create_trail(TrailConfig(name="held", bucket="held-bucket", destination=str(dest),
                                       flush_interval_s=1, digest_interval_s=60))
    p.service.start_logging("held")
    store = p.service.open_store(p.service.get_trail("held"))
    assert isinstance(store, FaultyStore)
    store.fail("put")  # every write fails until healed
    return store


def _names(p: Pipeline, name: str) -> list[dict[str, Any]]:
    p.service.index_pending()
    page = p.service.history.lookup(LookupQuery("EventName", name, OPEN_START, OPEN_END))
    return page.records


def _fill(p: Pipeline, count: int) -> list[str]:
    ids: list[str] = []
    for i in range(count):
        ids += p.ingest([app_event(i, p.clock.now())])
    p.advance(2)
    return ids


def _post_events(app: App, p: Pipeline) -> tuple[int, dict[str, Any]]:
    creds = p.creds
    body = orjson.dumps({"Records": [app_event(0, p.clock.now())]})
    status, answer = call_app(app, creds.region, creds.access_key_id, creds.secret_access_key, "trailkeeper",
                              "/v1/events", body, {"Content-Type": "application/json"})
    return status, answer


def test_fail_closed_refuses_new_events_and_records_the_crossing(tmp_path: Path) -> None:
    with open_pipeline(tmp_path, wrap_store=FaultyStore, max_backlog_events=LIMIT) as p:
        assert p.service.config.backlog_policy == "fail-closed"  # the default
        dest = tmp_path / "dest"
        store = _break_destination(p, dest)
        acked = _fill(p, LIMIT)
        time.sleep(BACKLOG_RECHECK_S + 0.1)
        with pytest.raises(BacklogFullError) as refused:
            p.ingest([app_event(0, p.clock.now())])
        assert "fail-closed" in str(refused.value)
        status, answer = _post_events(App(p.service), p)
        assert status == 503 and "fail-closed" in str(answer), answer
        reached = _names(p, "BacklogLimitReached")
        assert len(reached) == 1, "the crossing is recorded once, not once per refusal"
        p.advance(2)  # a delivery attempt is due: it fails
        status = get_server_status(p.service, None, {})  # type: ignore[arg-type]
        assert status["Backlog"] == {"MaxEvents": LIMIT, "Policy": "fail-closed", "LimitReached": True}
        assert status["Trails"][0]["Backlog"] >= LIMIT and status["Trails"][0]["LatestDeliveryError"]

        assert store.struck > 0
        store.heal()  # the destination is back: everything acknowledged is delivered
        p.advance(2)
        p.advance(2)
        time.sleep(BACKLOG_RECHECK_S + 0.1)
        acked += p.ingest([app_event(1, p.clock.now())])
        assert _names(p, "BacklogLimitCleared")
        p.advance(2)
        p.service.flush(1)
        delivered = _delivered_ids(dest)
        assert set(acked) <= set(delivered) and len(delivered) == len(set(delivered))


def test_fail_open_accepts_and_raises_the_alarm(tmp_path: Path) -> None:
    with open_pipeline(tmp_path, wrap_store=FaultyStore, max_backlog_events=LIMIT, backlog_policy="fail-open") as p:
        _break_destination(p, tmp_path / "dest")
        _fill(p, LIMIT)
        time.sleep(BACKLOG_RECHECK_S + 0.1)
        assert p.ingest([app_event(0, p.clock.now())])  # accepted
        alarm = _names(p, "BacklogLimitReached")
        assert len(alarm) == 1


def test_policy_is_checked_at_start() -> None:
    from trailkeeper.config import load_config
    from trailkeeper.errors import ConfigError

    with pytest.raises(ConfigError, match="backlog_policy"):
        load_config(Path("/nonexistent-tk"), backlog_policy="drop-oldest")


def _delivered_ids(dest: Path) -> list[str]:
    import gzip

    ids: list[str] = []
    for path in sorted(dest.rglob("*.json.gz")):
        if "CloudTrail-Digest" not in str(path):
            ids += [r["eventID"] for r in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]]
    return ids
