"""SqliteHistory: lookups by every attribute, paging, tokens, purge and collision safety."""

from __future__ import annotations

import base64
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from trailkeeper.clock import iso_seconds
from trailkeeper.errors import HistoryError
from trailkeeper.history import sqlite as history_sqlite
from trailkeeper.history.base import (
    LOOKUP_ATTRIBUTES,
    HistoryStore,
    LookupPage,
    LookupQuery,
    LookupRequestError,
)
from trailkeeper.history.sqlite import SqliteHistory

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
WIDE = (T0 - timedelta(days=1), T0 + timedelta(days=1))


def event(
    n: int,
    *,
    at: datetime | None = None,
    name: str = "PutThing",
    user: str = "alice",
    source: str = "things.example.com",
    resources: list[dict[str, str]] | None = None,
    read_only: bool = False,
    key: str = "AKIAALICE",
    event_id: str | None = None,
) -> bytes:
    record: dict[str, Any] = {
        "eventVersion": "1.11",
        "userIdentity": {"type": "IAMUser", "userName": user, "accessKeyId": key},
        "eventTime": iso_seconds(at or T0 + timedelta(seconds=n)),
        "eventSource": source,
        "eventName": name,
        "eventID": event_id or f"id-{n:04d}",
        "readOnly": read_only,
        "requestParameters": None,
    }
    if resources is not None:
        record["resources"] = resources
    return orjson.dumps(record)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteHistory]:
    history = SqliteHistory(tmp_path / "history.db")
    yield history
    history.close()


def ids(page: LookupPage) -> list[str]:
    return [orjson.loads(body)["eventID"] for body in page.events]


def find(
    store: HistoryStore,
    key: str | None,
    value: str | None,
    start: datetime = WIDE[0],
    end: datetime = WIDE[1],
    max_results: int = 50,
    token: str | None = None,
) -> LookupPage:
    return store.lookup(LookupQuery(key, value, start, end, max_results, token))


def test_satisfies_protocol(store: SqliteHistory) -> None:
    history: HistoryStore = store
    assert history.count() == 0
    assert history.last_indexed_seq() == -1


def test_every_attribute_finds_its_event(store: SqliteHistory) -> None:
    target = event(
        1,
        name="GetSecret",
        user="bob",
        source="secrets.example.com",
        key="AKIABOB",
        read_only=True,
        resources=[{"ARN": "arn:x:secret/s1", "type": "X::Secret"}],
    )
    store.index([(0, event(0)), (1, target), (2, event(2))])
    expected = {
        "EventId": "id-0001",
        "EventName": "GetSecret",
        "ReadOnly": "true",
        "Username": "bob",
        "ResourceType": "X::Secret",
        "ResourceName": "arn:x:secret/s1",
        "EventSource": "secrets.example.com",
        "AccessKeyId": "AKIABOB",
    }
    assert set(expected) == set(LOOKUP_ATTRIBUTES)
    for key, value in expected.items():
        assert ids(find(store, key, value)) == ["id-0001"], key
        other = "false" if key == "ReadOnly" else value + "x"
        assert "id-0001" not in ids(find(store, key, other)), key


def test_record_bytes_are_returned_unchanged(store: SqliteHistory) -> None:
    body = event(5)
    store.index([(9, body)])
    assert find(store, "EventId", "id-0005").events == [body]


def test_multi_valued_resources(store: SqliteHistory) -> None:
    two = [{"ARN": "arn:r1", "type": "T::A"}, {"ARN": "arn:r2", "type": "T::B"}]
    store.index([(0, event(0, resources=two)), (1, event(1, resources=[two[1]]))])
    assert ids(find(store, "ResourceName", "arn:r1")) == ["id-0000"]
    assert ids(find(store, "ResourceName", "arn:r2")) == ["id-0001", "id-0000"]
    assert ids(find(store, "ResourceType", "T::A")) == ["id-0000"]
    assert ids(find(store, "ResourceType", "T::B")) == ["id-0001", "id-0000"]


def test_time_range_is_inclusive_and_newest_first(store: SqliteHistory) -> None:
    store.index([(n, event(n)) for n in range(10)])
    start, end = T0 + timedelta(seconds=3), T0 + timedelta(seconds=6)
    expected = ["id-0006", "id-0005", "id-0004", "id-0003"]
    assert ids(find(store, None, None, start, end)) == expected
    assert ids(find(store, "Username", "alice", start, end)) == expected
    fractional = find(store, None, None, start + timedelta(milliseconds=1), end)
    assert ids(fractional) == expected[:3]


def test_order_is_by_event_time_not_seq(store: SqliteHistory) -> None:
    store.index(
        [
            (0, event(0, at=T0 + timedelta(seconds=5))),
            (1, event(1, at=T0)),
            (2, event(2, at=T0 + timedelta(seconds=5))),
            (3, event(3, at=T0 + timedelta(seconds=9))),
        ]
    )
    assert ids(find(store, None, None)) == ["id-0003", "id-0002", "id-0000", "id-0001"]


def test_paging_130_events_has_no_duplicate_and_no_gap(store: SqliteHistory) -> None:
    # Ten events share each second so page breaks fall inside runs of equal times.
    store.index([(n, event(n, at=T0 + timedelta(seconds=n // 10))) for n in range(130)])
    seen: list[str] = []
    pages: list[int] = []
    token = None
    while True:
        page = find(store, "EventSource", "things.example.com", max_results=50, token=token)
        seen += ids(page)
        pages.append(len(page.events))
        token = page.next_token
        if token is None:
            break
    assert pages == [50, 50, 30]
    assert len(seen) == len(set(seen)) == 130
    times = [
        orjson.loads(event(int(i[3:]), at=T0 + timedelta(seconds=int(i[3:]) // 10)))["eventTime"]
        for i in seen
    ]
    assert times == sorted(times, reverse=True)


def test_exact_page_has_no_token(store: SqliteHistory) -> None:
    store.index([(n, event(n)) for n in range(50)])
    assert find(store, None, None).next_token is None
    assert find(store, None, None, max_results=49).next_token is not None


def test_token_is_bound_to_the_query(store: SqliteHistory) -> None:
    store.index([(n, event(n)) for n in range(5)])
    token = find(store, "Username", "alice", max_results=2).next_token
    assert token is not None
    assert len(find(store, "Username", "alice", max_results=2, token=token).events) == 2
    others: list[tuple[str | None, str | None, datetime, datetime]] = [
        ("Username", "bob", *WIDE),
        ("EventName", "alice", *WIDE),
        (None, None, *WIDE),
        ("Username", "alice", WIDE[0] + timedelta(seconds=1), WIDE[1]),
        ("Username", "alice", WIDE[0], WIDE[1] - timedelta(seconds=1)),
    ]
    for key, value, start, end in others:
        with pytest.raises(LookupRequestError) as info:
            find(store, key, value, start, end, token=token)
        assert info.value.code == "InvalidNextTokenException"


def test_tampered_or_foreign_tokens_are_refused(store: SqliteHistory, tmp_path: Path) -> None:
    store.index([(n, event(n)) for n in range(5)])
    token = find(store, None, None, max_results=1).next_token
    assert token is not None
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[20] ^= 1
    flipped = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    other = SqliteHistory(tmp_path / "other.db")
    other.index([(n, event(n)) for n in range(5)])
    foreign = find(other, None, None, max_results=1).next_token
    other.close()
    for bad in [flipped, token[:-2], token + "AA", "", "!!!", foreign]:
        with pytest.raises(LookupRequestError) as info:
            find(store, None, None, max_results=1, token=bad)
        assert info.value.code == "InvalidNextTokenException", bad


@pytest.mark.parametrize("max_results", [0, 51, -1])
def test_bad_max_results(store: SqliteHistory, max_results: int) -> None:
    with pytest.raises(LookupRequestError) as info:
        find(store, None, None, max_results=max_results)
    assert info.value.code == "InvalidMaxResultsException"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0 + timedelta(seconds=1), T0),
        (datetime(2025, 3, 1), T0),
    ],
)
def test_bad_time_range(store: SqliteHistory, start: datetime, end: datetime) -> None:
    with pytest.raises(LookupRequestError) as info:
        find(store, None, None, start, end)
    assert info.value.code == "InvalidTimeRangeException"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("Nope", "x"),
        ("Username", None),
        (None, "x"),
        ("Username", ""),
        ("Username", "x" * 2001),
        ("ReadOnly", "yes"),
    ],
)
def test_bad_lookup_attributes(store: SqliteHistory, key: str | None, value: str | None) -> None:
    with pytest.raises(LookupRequestError) as info:
        find(store, key, value)
    assert info.value.code == "InvalidLookupAttributesException"
    assert isinstance(info.value, HistoryError)


def test_start_equal_end_is_allowed(store: SqliteHistory) -> None:
    store.index([(0, event(0))])
    assert ids(find(store, None, None, T0, T0)) == ["id-0000"]


def test_reindex_is_a_noop_and_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistory(path)
    store.index([(n, event(n)) for n in range(3)])
    store.index([(1, event(1)), (2, event(2))])
    store.index([(2, event(2)), (3, event(3))])
    assert (store.count(), store.last_indexed_seq()) == (4, 3)
    assert ids(find(store, "Username", "alice")) == ["id-0003", "id-0002", "id-0001", "id-0000"]
    token = find(store, None, None, max_results=1).next_token
    store.close()
    reopened = SqliteHistory(path)
    assert (reopened.count(), reopened.last_indexed_seq()) == (4, 3)
    assert ids(find(reopened, None, None, max_results=1, token=token)) == ["id-0002"]
    reopened.close()


def test_index_sorts_entries_by_seq(store: SqliteHistory) -> None:
    store.index([(5, event(5)), (4, event(4))])
    assert store.last_indexed_seq() == 5
    assert store.count() == 2


def test_damaged_record_is_refused_and_nothing_is_indexed(store: SqliteHistory) -> None:
    for bad in [b"not json", b"[1]", orjson.dumps({"eventTime": "yesterday"})]:
        with pytest.raises(HistoryError, match="spooled record 1"):
            store.index([(0, event(0)), (1, bad)])
        assert (store.count(), store.last_indexed_seq()) == (0, -1)


def test_purge_removes_old_events_and_their_index_rows(
    store: SqliteHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_sqlite, "PURGE_BATCH", 7)
    store.index([(n, event(n, resources=[{"ARN": f"arn:{n % 2}"}])) for n in range(40)])
    assert store.purge(T0 + timedelta(seconds=25)) == 25
    assert store.count() == 15
    assert ids(find(store, "ResourceName", "arn:0"))[-1] == "id-0026"
    assert find(store, "EventId", "id-0024").events == []
    assert len(find(store, "Username", "alice").events) == 15
    rows = store._reader().execute(
        "SELECT count(*) FROM attrs WHERE t < ?", (int((T0 + timedelta(seconds=25)).timestamp()),)
    )
    assert rows.fetchone()[0] == 0
    assert store.purge(T0 + timedelta(seconds=25)) == 0


def test_hash_collisions_do_not_leak_results(
    store: SqliteHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_sqlite, "_hash64", lambda data: 7)
    store.index(
        [(n, event(n, user=f"u{n % 3}", name=f"N{n % 4}", key=f"K{n % 5}")) for n in range(60)]
    )
    assert ids(find(store, "Username", "u1")) == [
        f"id-{n:04d}" for n in range(58, -1, -1) if n % 3 == 1
    ]
    assert ids(find(store, "EventId", "id-0042")) == ["id-0042"]
    assert find(store, "Username", "nobody").events == []
    assert len(find(store, None, None, max_results=50).events) == 50
    seen: list[str] = []
    token = None
    while True:
        page = find(store, "EventName", "N2", max_results=4, token=token)
        seen += ids(page)
        token = page.next_token
        if token is None:
            break
    assert seen == [f"id-{n:04d}" for n in range(59, -1, -1) if n % 4 == 2]


def test_event_id_lookup_is_one_probe_and_respects_the_time_range(store: SqliteHistory) -> None:
    store.index([(n, event(n, at=T0 + timedelta(hours=n))) for n in range(20)])
    for n in (0, 7, 19):
        assert ids(find(store, "EventId", f"id-{n:04d}", T0, T0 + timedelta(days=1))) == [
            f"id-{n:04d}"
        ]
    outside = (T0 + timedelta(hours=8), T0 + timedelta(hours=12))
    assert find(store, "EventId", "id-0007", *outside).events == []
    assert find(store, "EventId", "id-0013", *outside).events == []
    assert ids(find(store, "EventId", "id-0010", *outside)) == ["id-0010"]


def test_uuid_event_ids_share_keys_safely(store: SqliteHistory) -> None:
    """Time-ordered IDs of one millisecond can share their first 64 bits; the record decides."""
    same_head = ["0190a1b2-c3d4-7e5f-8000-00000000000" + str(i) for i in range(3)]
    assert len({history_sqlite.event_id_key(i) for i in same_head}) == 1
    store.index([(n, event(n, event_id=same_head[n])) for n in range(3)])
    for i in same_head:
        assert ids(find(store, "EventId", i)) == [i]


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "h.db")
    find(store, None, None)
    store.close()
    with pytest.raises(HistoryError, match="lookup failed"):
        find(store, None, None)
    with pytest.raises(HistoryError, match="write failed"):
        store.index([(0, event(0))])


def test_new_thread_after_close_is_refused(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "h.db")
    store.close()
    errors: list[BaseException] = []
    worker = threading.Thread(target=lambda: _capture(errors, lambda: find(store, None, None)))
    worker.start()
    worker.join()
    assert len(errors) == 1 and "closed" in str(errors[0])


def _capture(errors: list[BaseException], action: Callable[[], object]) -> None:
    try:
        action()
    except HistoryError as e:
        errors.append(e)


def test_lookups_from_other_threads_see_indexed_events(store: SqliteHistory) -> None:
    store.index([(0, event(0))])
    seen: list[list[str]] = []
    worker = threading.Thread(target=lambda: seen.append(ids(find(store, None, None))))
    worker.start()
    worker.join()
    assert seen == [["id-0000"]]


@pytest.mark.parametrize("seq", [history_sqlite.MAX_SEQ + 1, 2**63 - 1])
def test_seq_out_of_range_is_refused(store: SqliteHistory, seq: int) -> None:
    with pytest.raises(HistoryError, match="spool seqs"):
        store.index([(seq, event(0))])


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    SqliteHistory(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    conn.close()
    with pytest.raises(HistoryError, match="format '99'"):
        SqliteHistory(path)


def test_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryError, match="cannot"):
        SqliteHistory(path)
