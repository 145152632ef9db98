"""What each role may do, generated from the permission table and the operation registry, so the
documentation (docs/roles.md, `trailkeeper roles`) cannot drift from what the server enforces."""

from __future__ import annotations

from dataclasses import dataclass

from trailkeeper.api.services import DEFAULT_REGISTRY
from trailkeeper.identity import PERMISSIONS, ROLES

# Requests that are not operations of the tables but are authorised by a permission.
_OTHER_REQUESTS: dict[str, tuple[str, ...]] = {
    "events:write": ("PutEvents (POST /v1/events)", "PutAuditEvents (cloudtrail-data)"),
    "events:write-on-behalf": ("records naming another userIdentity; reserved event sources (relayed)",),
    "logs:read": ("S3 gateway: ListBuckets, ListObjects, GetObject, HeadObject",),
    "kms:decrypt": ("S3 gateway: reading encrypted log files",),
    "validate": ("aws cloudtrail validate-logs through the gateway",),
}


@dataclass(frozen=True)
class PermissionRow:
    permission: str
    requests: tuple[str, ...]
    roles: frozenset[str]


def permission_table() -> list[PermissionRow]:
    every = DEFAULT_REGISTRY.operations()
    rows = []
    for permission in sorted(PERMISSIONS):
        named = tuple(sorted({name for (_, name), found in every.items() if found.operation.permission == permission}))
        rows.append(PermissionRow(permission, (*named, *_OTHER_REQUESTS.get(permission, ())),
                                  PERMISSIONS[permission]))
    return rows


def markdown() -> str:
    """docs/roles.md: one row per permission, a column per role (root holds every permission)."""
    lines = ["# What each role may do", "",
             "Generated from `identity.PERMISSIONS` and the operation registry by `trailkeeper roles --markdown`;",
             "a test keeps this file equal to that output. The account root may do everything.", "",
             f"| permission | requests | {' | '.join(ROLES)} |",
             f"|---|---|{'---|' * len(ROLES)}"]
    for row in permission_table():
        marks = " | ".join("yes" if role in row.roles else "" for role in ROLES)
        lines.append(f"| `{row.permission}` | {', '.join(row.requests)} | {marks} |")
    return "\n".join(lines) + "\n"
