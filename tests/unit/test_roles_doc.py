"""docs/roles.md is generated from the permission table: it cannot drift from what is enforced."""

from __future__ import annotations

from pathlib import Path

from trailkeeper.api import roles
from trailkeeper.identity import PERMISSIONS, allowed

DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def test_docs_roles_md_is_the_generated_table() -> None:
    assert DOC.read_text() == roles.markdown(), "run: trailkeeper roles --markdown > docs/roles.md"


def test_every_permission_and_operation_appears_with_the_roles_that_hold_it() -> None:
    rows = {row.permission: row for row in roles.permission_table()}
    assert set(rows) == set(PERMISSIONS)
    for permission, row in rows.items():
        assert row.requests, f"{permission} authorises nothing listed"
        assert {r for r in ("administrator", "auditor", "writer", "forwarder", "log-reader")
                if allowed(r, permission)} == set(row.roles)
    assert "StopLogging" in rows["trails:write"].requests and "LookupEvents" in rows["events:read"].requests
