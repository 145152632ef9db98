"""Advanced event selectors: validation with named errors, and matching semantics."""

from __future__ import annotations

from typing import Any

import pytest

from trailkeeper.errors import TrailError
from trailkeeper.selectors import selects_advanced, validate_advanced


def _rec(**fields: Any) -> dict[str, Any]:
    return {"eventName": "PutObject", "eventSource": "s3.amazonaws.com", "readOnly": False,
            "eventCategory": "Management", **fields}


@pytest.mark.parametrize("selectors, record, expected", [
    ([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}], _rec(), True),
    ([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}], _rec(), False),
    ([{"FieldSelectors": [{"Field": "readOnly", "Equals": ["true"]}]}], _rec(), False),
    ([{"FieldSelectors": [{"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]}], _rec(), True),
    ([{"FieldSelectors": [{"Field": "eventSource", "NotEquals": ["s3.amazonaws.com"]}]}], _rec(), False),
    ([{"FieldSelectors": [{"Field": "eventName", "StartsWith": ["Put", "Delete"]}]}], _rec(), True),
    ([{"FieldSelectors": [{"Field": "eventName", "NotStartsWith": ["Put"]}]}], _rec(), False),
    ([{"FieldSelectors": [{"Field": "eventName", "EndsWith": ["Object"], "NotEndsWith": ["Object"]}]}], _rec(), False),
    ([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]},
                          {"Field": "readOnly", "Equals": ["true"]}]}], _rec(), False),  # every field selector
    ([{"FieldSelectors": [{"Field": "readOnly", "Equals": ["true"]}]},
      {"FieldSelectors": [{"Field": "eventName", "Equals": ["PutObject"]}]}], _rec(), True),  # any selector
    ([{"FieldSelectors": [{"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::logs/"]}]}],
     _rec(resources=[{"ARN": "arn:aws:s3:::other"}, {"ARN": "arn:aws:s3:::logs/a"}]), True),
    ([{"FieldSelectors": [{"Field": "resources.ARN", "Equals": ["x"]}]}], _rec(), False),
])
def test_matching(selectors: list[dict[str, Any]], record: dict[str, Any], expected: bool) -> None:
    assert selects_advanced(validate_advanced(selectors), record) is expected


@pytest.mark.parametrize("selectors, fragment", [
    ([], "non-empty list"),
    ([{"FieldSelectors": []}], "non-empty FieldSelectors"),
    ([{"FieldSelectors": [{"Field": "bad field!", "Equals": ["x"]}]}], "word characters"),
    ([{"FieldSelectors": [{"Field": "userAgent", "Equals": ["x"]}]}], "not supported"),
    ([{"FieldSelectors": [{"Field": "eventName"}]}], "at least one of"),
    ([{"FieldSelectors": [{"Field": "eventName", "Equals": []}]}], "1-2048-character"),
    ([{"FieldSelectors": [{"Field": "eventName", "Equals": ["x"] * 501}]}], "500 condition values"),
])
def test_invalid_selectors_are_refused_with_a_reason(selectors: list[dict[str, Any]], fragment: str) -> None:
    with pytest.raises(TrailError, match=fragment) as refused:
        validate_advanced(selectors)
    assert refused.value.code == "InvalidEventSelectorsException"
