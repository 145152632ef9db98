"""The eight LookupEvents attributes of a record (what the history indexes and matches).

CloudTrail's LookupEvents filters on EventId, EventName, ReadOnly, Username, ResourceType,
ResourceName, EventSource and AccessKeyId; these functions say which values a record holds.
"""

from __future__ import annotations

from typing import Any

from trailkeeper.records import READ_ONLY_PREFIXES, username_of


def lookup_values(record: dict[str, Any]) -> dict[str, list[str]]:
    """Values of the eight LookupEvents attributes; missing ones are absent, lists deduplicated."""
    values: dict[str, list[str]] = {}
    for attribute, value in lookup_pairs(record):
        values.setdefault(attribute, []).append(value)
    return values


def lookup_has(record: dict[str, Any], attribute: str, value: str) -> bool:
    """Does the record hold this LookupEvents attribute value? (Checks one attribute only:
    the history calls it for every candidate row of a lookup page.)"""
    if attribute == "EventName":
        return record.get("eventName") == value
    if attribute == "EventSource":
        return record.get("eventSource") == value
    if attribute == "EventId":
        return record.get("eventID") == value
    return (attribute, value) in lookup_pairs(record)


def lookup_pairs(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(attribute, value) for each of the eight LookupEvents attributes a record has, without
    duplicates. Written flat: the history indexer calls it for every event it ingests."""
    pairs: list[tuple[str, str]] = []
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        identity = {}
    name = record.get("eventName")
    for key, value in (
        ("EventId", record.get("eventID")),
        ("EventName", name),
        ("Username", username_of(identity)),
        ("EventSource", record.get("eventSource")),
        ("AccessKeyId", identity.get("accessKeyId")),
    ):
        if isinstance(value, str) and value:
            pairs.append((key, value))
    read_only = record.get("readOnly")
    if not isinstance(read_only, bool):
        read_only = isinstance(name, str) and name.startswith(READ_ONLY_PREFIXES)
    pairs.append(("ReadOnly", "true" if read_only else "false"))
    resources = record.get("resources")
    if isinstance(resources, list) and resources:
        _resource_pairs(resources, pairs)
    return pairs


def _resource_pairs(resources: list[Any], pairs: list[tuple[str, str]]) -> None:
    types: list[str] = []
    names: list[str] = []
    for item in resources:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if isinstance(kind, str) and kind and kind not in types:
            types.append(kind)
        name = item.get("ARN", item.get("ARNPrefix"))
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    pairs.extend(("ResourceType", kind) for kind in types)
    pairs.extend(("ResourceName", name) for name in names)
