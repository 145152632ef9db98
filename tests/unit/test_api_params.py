"""Typed reads of request members: each read returns the value or raises the service's error naming the member."""

from __future__ import annotations

from typing import Any

import pytest

from trailkeeper.api.params import Reader


class Refused(Exception):
    pass


def _read(**params: Any) -> Reader:
    return Reader(params, Refused)


@pytest.mark.parametrize(("method", "value", "expected"), [
    ("string", "x", "x"),
    ("opt_string", None, None),
    ("opt_int", 7, 7),
    ("opt_int", None, None),
    ("opt_bool", False, False),
    ("strings", ["a", "b"], ["a", "b"]),
    ("opt_strings", None, None),
    ("opt_strings", ["a"], ["a"]),
    ("str_map", None, None),
    ("str_map", {"k": "v"}, {"k": "v"}),
    ("objects", [{"a": 1}], [{"a": 1}]),
    ("tags", [{"Key": "k", "Value": "v"}], {"k": "v"}),
    ("tags", None, {}),
])
def test_a_well_typed_member_is_returned(method: str, value: Any, expected: Any) -> None:
    assert getattr(_read(M=value), method)("M") == expected


@pytest.mark.parametrize(("method", "value"), [
    ("string", None),
    ("string", 3),
    ("opt_string", ["x"]),
    ("opt_int", "7"),
    ("opt_int", True),  # JSON true is not the integer 1
    ("opt_bool", "true"),
    ("strings", None),
    ("strings", ["a", 1]),
    ("opt_strings", "a"),
    ("str_map", {"k": 1}),
    ("str_map", ["k"]),
    ("objects", ["a"]),
    ("tags", [{"Key": "k"}]),
])
def test_a_wrong_or_missing_member_is_refused_by_name(method: str, value: Any) -> None:
    with pytest.raises(Refused, match=r"^M\b"):
        getattr(_read(M=value), method)("M")


def test_int_or_gives_the_default_only_when_the_member_is_absent() -> None:
    assert _read().int_or("limit", 50) == 50
    assert _read(limit=0).int_or("limit", 50) == 0
    with pytest.raises(Refused, match="limit"):
        _read(limit=1.5).int_or("limit", 50)
