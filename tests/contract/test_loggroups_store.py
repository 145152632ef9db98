"""One contract for the CloudWatch Logs repositories: SQLite (state database) and memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.monitoring.loggroups_store import (
    EventQuery,
    LogGroupRecord,
    LogGroupRepository,
    LogStreamRecord,
    MemoryLogGroupRepository,
    MetricFilterRecord,
    NewEvent,
    Sealer,
    SqliteLogGroupRepository,
)


@pytest.fixture(params=["sqlite", "memory"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogGroupRepository]:
    if request.param == "memory":
        yield MemoryLogGroupRepository()
        return
    db = Database(tmp_path / "state.db")
    yield SqliteLogGroupRepository(db)
    db.close()


def _group_with_stream(repo: LogGroupRepository, name: str = "g", stream: str = "s") -> None:
    repo.add_group(LogGroupRecord(name, 1, tags={"k": "v"}))
    repo.add_stream(LogStreamRecord(name, stream, 2))


def test_a_group_is_added_once_and_read_back_with_its_tags(repo: LogGroupRepository) -> None:
    assert repo.add_group(LogGroupRecord("a/b", 5, None, "arn:aws:kms:x", {"t": "1"}))
    assert not repo.add_group(LogGroupRecord("a/b", 6))
    assert repo.get_group("a/b") == LogGroupRecord("a/b", 5, None, "arn:aws:kms:x", {"t": "1"})
    assert repo.get_group("A/B") is None


def test_groups_page_by_prefix_in_name_order(repo: LogGroupRepository) -> None:
    for name in ("b_1", "a", "bx1", "b_2"):
        repo.add_group(LogGroupRecord(name, 1))
    assert [g.name for g in repo.groups("b_")] == ["b_1", "b_2"]  # _ is a character, not a wildcard
    assert [g.name for g in repo.groups("", "b_1", 2)] == ["b_2", "bx1"]


def test_retention_and_tags_change_only_an_existing_group(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    assert repo.set_retention("g", 7) and repo.set_tags("g", {"x": "y"})
    assert not repo.set_retention("nope", 7) and not repo.set_tags("nope", {})
    group = repo.get_group("g")
    assert group is not None and (group.retention_days, group.tags) == (7, {"x": "y"})


def test_streams_summarise_their_events(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    assert not repo.add_stream(LogStreamRecord("g", "s", 9))
    assert repo.has_stream("g", "s") and not repo.has_stream("g", "t") and not repo.has_stream("h", "s")
    repo.add_stream(LogStreamRecord("g", "empty", 3))
    assert repo.append_events("g", "s", [NewEvent(10, "ab"), NewEvent(30, "é")], 100) == 2
    empty, full = repo.streams("g")
    assert empty == LogStreamRecord("g", "empty", 3)
    assert (full.first_event_ms, full.last_event_ms, full.last_ingestion_ms, full.stored_bytes) == (10, 30, 100, 2 + 26 + 2 + 26)


def test_a_dedup_key_is_stored_once_per_group(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    assert repo.append_events("g", "s", [NewEvent(1, "a", "id-1"), NewEvent(2, "b", "id-2")], 5) == 2
    assert repo.append_events("g", "s", [NewEvent(1, "a", "id-1"), NewEvent(3, "c", "id-3")], 6) == 1
    assert [e.message for e in repo.events(EventQuery("g"))] == ["a", "b", "c"]


def test_events_are_read_by_time_then_arrival_with_cursors(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    repo.add_stream(LogStreamRecord("g", "t", 2))
    repo.append_events("g", "s", [NewEvent(10, "s10"), NewEvent(20, "s20")], 1)
    repo.append_events("g", "t", [NewEvent(10, "t10"), NewEvent(15, "t15")], 1)
    every = repo.events(EventQuery("g"))
    assert [e.message for e in every] == ["s10", "t10", "t15", "s20"]
    assert [e.message for e in repo.events(EventQuery("g", ["t"]))] == ["t10", "t15"]
    assert [e.message for e in repo.events(EventQuery("g", start_ms=10, end_ms=20))] == ["s10", "t10", "t15"]
    assert [e.message for e in repo.events(EventQuery("g", cursor=every[1].key, limit=1))] == ["t15"]
    assert [e.message for e in repo.events(EventQuery("g", cursor=every[2].key, descending=True))] == ["t10", "s10"]


def test_purge_removes_only_older_events_of_that_group(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    _group_with_stream(repo, "h")
    repo.append_events("g", "s", [NewEvent(1, "old", "k"), NewEvent(5, "new")], 1)
    repo.append_events("h", "s", [NewEvent(1, "other")], 1)
    assert repo.purge_before("g", 5) == 1
    assert [e.message for e in repo.events(EventQuery("g"))] == ["new"]
    assert len(repo.events(EventQuery("h"))) == 1
    assert repo.append_events("g", "s", [NewEvent(6, "again", "k")], 2) == 1  # a purged key is free


def test_metric_filters_are_replaced_by_name_and_go_with_their_group(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    first = MetricFilterRecord("g", "f", "ERROR", [{"metricName": "m"}], False, 1)
    repo.put_filter(first)
    repo.put_filter(MetricFilterRecord("g", "f", "%a%", [{"metricName": "n"}], True, 2))
    assert repo.filters("g") == [MetricFilterRecord("g", "f", "%a%", [{"metricName": "n"}], True, 2)]
    assert repo.remove_filter("g", "f") and not repo.remove_filter("g", "f")
    repo.put_filter(first)
    repo.append_events("g", "s", [NewEvent(1, "x")], 1)
    assert repo.remove_group("g") and not repo.remove_group("g")
    assert (repo.get_group("g"), repo.streams("g"), repo.filters(), repo.events(EventQuery("g"))) == (None, [], [], [])


@pytest.mark.parametrize(("message", "name"), [
    pytest.param('{"eventName": "StopLogging"}', "StopLogging", id="cloudtrail-record"),
    pytest.param(' \n\t{"eventName": "StopLogging"}', "StopLogging", id="json-whitespace-first"),
    pytest.param('{"eventName": "\\u0053topLogging"}', "StopLogging", id="escaped-in-json"),
    pytest.param('{"eventName": 5}', None, id="not-a-string"),
    pytest.param('{"detail": {"eventName": "StopLogging"}}', None, id="not-top-level"),
    pytest.param('["eventName", "StopLogging"]', None, id="an-array"),
    pytest.param("StopLogging by root", None, id="text"),
    pytest.param('{"eventName": "StopLogging"', None, id="truncated-json"),
])
def test_events_are_selected_by_their_event_name(repo: LogGroupRepository, message: str, name: str | None) -> None:
    """The index FilterLogEvents narrows by: a JSON message's top-level eventName string,
    decoded as the filter-pattern evaluator decodes it."""
    _group_with_stream(repo)
    repo.append_events("g", "s", [NewEvent(10, message), NewEvent(11, '{"eventName": "Other"}')], 20)
    selected = repo.events(EventQuery("g", event_names=frozenset({"StopLogging", "Other2"})))
    assert [e.message for e in selected] == ([message] if name == "StopLogging" else [])
    assert len(repo.events(EventQuery("g"))) == 2


# ---- encryption at rest: data keys and sealed events ---------------------------------------------
def _fake_seal(stream: str) -> Sealer:
    """A stand-in cipher: the repository must store whatever the sealer gives, bound to the seq."""
    return Sealer(7, lambda seq, event: f"{stream}|{seq}|{event.message[::-1]}".encode())


def test_a_group_created_with_a_wrapped_key_has_it_as_current_data_key(repo: LogGroupRepository) -> None:
    assert repo.add_group(LogGroupRecord("g", 5, None, "arn:k1"), b"wrapped-1")
    group = repo.get_group("g")
    assert group is not None and group.kms_key_id == "arn:k1" and group.data_key is not None
    [key] = repo.data_keys("g")
    assert (key.id, key.group, key.key_arn, key.wrapped, key.created_ms) == (group.data_key, "g", "arn:k1",
                                                                             b"wrapped-1", 5)
    assert repo.data_key(key.id) == key


def test_data_keys_are_added_cleared_and_go_with_their_group(repo: LogGroupRepository) -> None:
    repo.add_group(LogGroupRecord("g", 1))
    assert repo.add_data_key("missing", "arn:k", b"w", 2) is None
    first = repo.add_data_key("g", "arn:k1", b"w1", 2)
    second = repo.add_data_key("g", "arn:k2", b"w2", 3)
    assert first is not None and second is not None and second > first
    group = repo.get_group("g")
    assert group is not None and (group.kms_key_id, group.data_key) == ("arn:k2", second)
    assert repo.clear_data_key("g") and not repo.clear_data_key("missing")
    cleared = repo.get_group("g")
    assert cleared is not None and (cleared.kms_key_id, cleared.data_key) == (None, None)
    assert [k.id for k in repo.data_keys("g")] == [first, second]  # old events still need them
    repo.remove_group("g")
    assert repo.data_keys("g") == [] and repo.data_key(first) is None
    repo.add_group(LogGroupRecord("g", 4))
    assert repo.add_data_key("g", "arn:k1", b"w1", 5) not in (first, second)  # ids are never reused


def test_sealed_events_keep_no_message_and_no_event_name(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    repo.append_events("g", "s", [NewEvent(10, "clear")], 20)
    message = '{"eventName": "ConsoleLogin"}'
    assert repo.append_events("g", "s", [NewEvent(11, message, "id-1"), NewEvent(12, message, "id-1")], 21,
                              _fake_seal("s")) == 1
    clear, sealed = repo.events(EventQuery("g"))
    assert (clear.message, clear.sealed, clear.data_key) == ("clear", None, None)
    assert (sealed.message, sealed.data_key) == ("", 7)
    assert sealed.sealed == f"s|{sealed.seq}|{message[::-1]}".encode() and sealed.seq > clear.seq
    # The eventName index does not hold a sealed event's name.
    assert repo.events(EventQuery("g", event_names=frozenset({"ConsoleLogin"}))) == []
    [stream] = repo.streams("g")
    seal_overhead = 29  # logcrypto.SEAL_OVERHEAD_BYTES: a sealed event counts its message's bytes
    assert stream.stored_bytes == len("clear") + 26 + len(sealed.sealed) - seal_overhead + 26


def test_sealed_seqs_follow_every_seq_ever_used(repo: LogGroupRepository) -> None:
    _group_with_stream(repo)
    repo.append_events("g", "s", [NewEvent(10, "a"), NewEvent(11, "b")], 20)
    newest = repo.events(EventQuery("g"))[-1].seq
    repo.purge_before("g", 100)  # the newest rows are gone; their seqs must not come back
    repo.append_events("g", "s", [NewEvent(200, "c"), NewEvent(201, "d")], 300, _fake_seal("s"))
    found = repo.events(EventQuery("g"))
    assert [e.seq > newest for e in found] == [True, True] and found[0].seq < found[1].seq
    assert [e.sealed for e in found] == [f"s|{e.seq}|{m}".encode() for e, m in zip(found, "cd", strict=True)]
