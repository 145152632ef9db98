"""IAM roles: the domain on both repositories, and the Query adapter through botocore's own client
(policy documents URL-encoded on the wire, decoded by botocore)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trailkeeper._internal.sqlite import Database
from trailkeeper.clock import SystemClock
from trailkeeper.errors import IdentityError
from trailkeeper.roles import RoleRepository, Roles
from trailkeeper.state.roles import MemoryRoleRepository, SqliteRoleRepository

ACCOUNT = "123456789012"
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
     "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:ct:log-stream:*"}]})

REPOSITORIES: dict[str, Callable[[Path], RoleRepository]] = {
    "memory": lambda _: MemoryRoleRepository(),
    "sqlite": lambda tmp: SqliteRoleRepository(Database(tmp / "state.db")),
}


@pytest.fixture(params=list(REPOSITORIES))
def roles(request: pytest.FixtureRequest, tmp_path: Path) -> Roles:
    return Roles(REPOSITORIES[request.param](tmp_path), SystemClock(), ACCOUNT)


def _code(info: pytest.ExceptionInfo[IdentityError]) -> tuple[str, int]:
    return info.value.code, info.value.status


def test_a_role_is_created_with_its_arn_and_kept_as_given(roles: Roles) -> None:
    role = roles.create_role("CloudTrailRoleForCloudWatchLogs_main", TRUST, "/service/", "forwarding")
    assert role.arn == f"arn:aws:iam::{ACCOUNT}:role/service/CloudTrailRoleForCloudWatchLogs_main"
    assert role.role_id.startswith("AROA") and len(role.role_id) == 21
    assert (role.assume_role_policy, role.description) == (TRUST, "forwarding")  # byte for byte
    assert roles.get_role("cloudtrailroleforcloudwatchlogs_MAIN") == role  # names ignore case, as in IAM
    assert [r.name for r in roles.list_roles()] == ["CloudTrailRoleForCloudWatchLogs_main"]
    assert roles.role_of_arn(role.arn) == role
    assert roles.role_of_arn(f"arn:aws:iam::{ACCOUNT}:role/CloudTrailRoleForCloudWatchLogs_main") is None  # other path


def test_inline_policies_are_put_replaced_listed_and_deleted(roles: Roles) -> None:
    roles.create_role("r", TRUST)
    roles.put_role_policy("r", "logs", POLICY)
    roles.put_role_policy("r", "extra", TRUST)
    roles.put_role_policy("R", "LOGS", POLICY)  # the same policy, in other spellings: replaced
    assert roles.list_role_policies("r") == ["extra", "LOGS"]
    found = roles.get_role_policy("r", "logs")
    assert (found.role_name, found.policy_name, found.document) == ("r", "LOGS", POLICY)
    assert roles.policy_documents(roles.get_role("r"))[1] == json.loads(POLICY)
    roles.delete_role_policy("r", "extra")
    assert roles.list_role_policies("r") == ["LOGS"]


@pytest.mark.parametrize(("case", "call", "expected"), [
    ("name taken, other case", lambda r: r.create_role("EXISTING", TRUST), ("EntityAlreadyExists", 409)),
    ("bad role name", lambda r: r.create_role("no spaces", TRUST), ("ValidationError", 400)),
    ("bad path", lambda r: r.create_role("p", TRUST, "service"), ("ValidationError", 400)),
    ("trust policy not JSON", lambda r: r.create_role("t", "{"), ("MalformedPolicyDocument", 400)),
    ("trust policy without Statement", lambda r: r.create_role("t", "{}"), ("MalformedPolicyDocument", 400)),
    ("statement without Effect", lambda r: r.put_role_policy("existing", "p", '{"Statement": {"Action": "*"}}'),
     ("MalformedPolicyDocument", 400)),
    ("policy on a missing role", lambda r: r.put_role_policy("ghost", "p", POLICY), ("NoSuchEntity", 404)),
    ("missing role", lambda r: r.get_role("ghost"), ("NoSuchEntity", 404)),
    ("missing policy", lambda r: r.get_role_policy("existing", "ghost"), ("NoSuchEntity", 404)),
    ("delete a missing policy", lambda r: r.delete_role_policy("existing", "ghost"), ("NoSuchEntity", 404)),
    ("delete a role that has a policy", lambda r: r.delete_role("existing"), ("DeleteConflict", 409)),
    ("delete a missing role", lambda r: r.delete_role("ghost"), ("NoSuchEntity", 404)),
])
def test_refusals(roles: Roles, case: str, call: Callable[[Roles], Any], expected: tuple[str, int]) -> None:
    roles.create_role("existing", TRUST)
    roles.put_role_policy("existing", "logs", POLICY)
    with pytest.raises(IdentityError) as refused:
        call(roles)
    assert _code(refused) == expected, case


def test_a_role_is_deleted_once_its_policies_are(roles: Roles) -> None:
    roles.create_role("r", TRUST)
    roles.put_role_policy("r", "logs", POLICY)
    with pytest.raises(IdentityError, match="must delete policies first"):
        roles.delete_role("r")
    roles.delete_role_policy("r", "logs")
    roles.delete_role("r")
    assert roles.list_roles() == []
