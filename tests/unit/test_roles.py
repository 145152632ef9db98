"""IAM roles: the domain on both repositories, and the Query adapter through botocore's own client
(policy documents URL-encoded on the wire, decoded by botocore)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from trailkeeper._internal.sqlite import Database
from trailkeeper.api.iam_query import handle_iam
from trailkeeper.api.operations import IAM, IamDomain
from trailkeeper.clock import SystemClock
from trailkeeper.errors import IdentityError
from trailkeeper.identity import IdentityStore, Principal, root_arn
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.roles import RoleRepository, Roles
from trailkeeper.state.identities import SqliteIdentityRepository
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


# ---- the Query adapter, through botocore ----
class _RawBytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@pytest.fixture()
def iam(tmp_path: Path) -> Iterator[Any]:
    store = IdentityStore(SqliteIdentityRepository(tmp_path / "identity.db"), MemoryKeyring(), SystemClock())
    creds = store.init_account("us-east-1")
    domain = IamDomain(store, Roles(MemoryRoleRepository(), SystemClock(), creds.account_id))
    root = Principal(creds.account_id, True, None, creds.account_id, root_arn(creds.account_id), None,
                     creds.access_key_id, "Active")

    def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return IAM.operations[operation].handler(domain, root, params)

    def before_send(request: Any, **_: Any) -> AWSResponse:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        status, headers, out = handle_iam(body, urlsplit(request.url).query, call, "req-1", frozenset(IAM.operations))
        return AWSResponse(request.url, status, dict(headers), _RawBytes(out))

    client = botocore.session.get_session().create_client(
        "iam", region_name="us-east-1", endpoint_url="http://iam.test",
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    client.meta.events.register("before-send.iam", before_send)
    yield client
    store.close()


def test_botocore_role_lifecycle_with_url_encoded_policies(iam: Any) -> None:
    created = iam.create_role(RoleName="fwd", AssumeRolePolicyDocument=TRUST, Path="/ct/", Description="d")["Role"]
    assert created["Arn"].endswith(":role/ct/fwd") and created["Path"] == "/ct/"
    # IAM answers policy documents URL-encoded; botocore decodes them back into the document.
    assert created["AssumeRolePolicyDocument"] == json.loads(TRUST)
    assert iam.get_role(RoleName="fwd")["Role"]["RoleId"] == created["RoleId"]
    iam.put_role_policy(RoleName="fwd", PolicyName="logs", PolicyDocument=POLICY)
    got = iam.get_role_policy(RoleName="fwd", PolicyName="logs")
    assert (got["RoleName"], got["PolicyName"], got["PolicyDocument"]) == ("fwd", "logs", json.loads(POLICY))
    assert iam.list_role_policies(RoleName="fwd")["PolicyNames"] == ["logs"]
    iam.create_role(RoleName="other", AssumeRolePolicyDocument=TRUST)
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix="/ct/")["Roles"]] == ["fwd"]
    pages = list(iam.get_paginator("list_roles").paginate(PaginationConfig={"PageSize": 1}))
    assert [[r["RoleName"] for r in p["Roles"]] for p in pages] == [["fwd"], ["other"]]
    with pytest.raises(ClientError) as conflict:
        iam.delete_role(RoleName="fwd")
    assert conflict.value.response["Error"]["Code"] == "DeleteConflict"
    iam.delete_role_policy(RoleName="fwd", PolicyName="logs")
    iam.delete_role(RoleName="fwd")
    with pytest.raises(ClientError) as gone:
        iam.get_role(RoleName="fwd")
    assert (gone.value.response["Error"]["Code"], gone.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "NoSuchEntity", 404)


def test_role_parameters_iam_has_but_trailkeeper_does_not_are_refused(iam: Any) -> None:
    with pytest.raises(ClientError) as refused:
        iam.create_role(RoleName="r", AssumeRolePolicyDocument=TRUST, MaxSessionDuration=7200)
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "MaxSessionDuration" in refused.value.response["Error"]["Message"]
