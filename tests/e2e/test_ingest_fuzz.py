"""Hypothesis over HTTP: random and mutated batches never cause a 5xx and never store part of a batch."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.e2e.harness import Server, signed_post

from trailkeeper.client import ApiError, Client

json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
FIELDS = ["eventName", "eventSource", "eventTime", "sourceIPAddress", "requestParameters", "resources",
          "userIdentity", "errorCode", "readOnly", "eventID", "eventVersion", "awsRegion", "userAgent"]


def _valid() -> dict[str, Any]:
    return {"eventName": "Fuzz", "eventSource": "fuzz.example.com",
            "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sourceIPAddress": "192.0.2.77", "requestParameters": {"k": "v"}}


mutated = st.builds(lambda base, field, value, drop: ({k: v for k, v in base.items() if k != field} if drop
                                                      else {**base, field: value}),
                    st.builds(_valid), st.sampled_from(FIELDS), json_values, st.booleans())
batches = st.lists(mutated | json_values | st.builds(_valid), min_size=0, max_size=5)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Client]]:
    server = Server(tmp_path_factory.mktemp("fuzz") / "data")
    server.init()
    server.start()
    client = server.client()
    yield server, client
    client.close()
    assert server.terminate() == 0


def _next_seq(client: Client) -> int:
    return int(client.call("GetServerStatus")["Spool"]["next_seq"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
def test_random_batches_never_5xx_nor_partial(fuzz_server: tuple[Server, Client], batch: list[Any]) -> None:
    _, client = fuzz_server
    before = _next_seq(client)
    try:
        ids = client.put_events(batch)
    except ApiError as e:
        assert 400 <= e.status < 500, f"server error {e.status}: {e}"
        # Only the status call's own audit record may have been appended since.
        assert _next_seq(client) == before + 1, "a refused batch left records behind"
        return
    assert len(ids) == len(batch)
    assert _next_seq(client) == before + 1 + len(batch)


@pytest.mark.parametrize("body", [b"", b"nope", b"[]", b"{}", b'{"Records": 5}', b"\xff\xfe", b'{"Records": [{}]}',
                                  b'{"Records": [' + b'{"a":1},' * 101 + b'{"a":1}]}'])
def test_signed_garbage_gets_a_named_4xx(fuzz_server: tuple[Server, Client], body: bytes) -> None:
    server, client = fuzz_server
    before = _next_seq(client)
    response = signed_post(server, "/v1/events", body)
    assert 400 <= response.status_code < 500
    answer = response.json()
    assert answer["__type"] and answer["message"]
    assert _next_seq(client) == before + 1
