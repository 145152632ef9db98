"""IAM over the Query protocol: parsing, parameter mapping, XML rendering, and a real botocore
IAM client driven in-process against the real identity store and native operations."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from tests.unit.test_roles import POLICY, TRUST

from trailkeeper.api.iam_query import (
    IAM_NAMESPACE,
    QueryError,
    error_xml,
    handle_iam,
    parse_query,
    success_xml,
    to_native,
)
from trailkeeper.api.operations import IAM, IamDomain
from trailkeeper.clock import SystemClock
from trailkeeper.errors import AuthError, IdentityError, StorageError
from trailkeeper.identity import IdentityStore, Principal, root_arn
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.roles import Roles
from trailkeeper.state.identities import SqliteIdentityRepository
from trailkeeper.state.roles import MemoryRoleRepository

NS = {"i": IAM_NAMESPACE}
ACTIONS = frozenset(IAM.operations)
OPERATIONS = IAM.operations
V = "Version=2010-05-08"
SECRET_RE = re.compile(r"[A-Za-z0-9+/]{40}")


# ---- parse_query ----
def test_parse_query_reads_body_and_query_string() -> None:
    action, params = parse_query(b"Action=CreateUser&UserName=al%2Bice&" + V.encode(), "Path=%2F")
    assert action == "CreateUser"
    assert params == {"UserName": "al+ice", "Path": "/"}


def test_parse_query_keeps_blank_values() -> None:
    assert parse_query(f"Action=ListUsers&{V}&PathPrefix=".encode(), "")[1] == {"PathPrefix": ""}


@pytest.mark.parametrize(("body", "code"), [
    (b"Action=ListUsers&Version=2012-01-01", "InvalidParameterValue"),
    (b"Action=ListUsers", "MissingParameter"),
    (b"Version=2010-05-08", "MissingParameter"),
    (b"Action=ListUsers&Version=2010-05-08&UserName=a&UserName=b", "InvalidParameterValue"),
    (b"Action=ListUsers&Version=2010-05-08&UserName=\xff", "MalformedQueryString"),
])
def test_parse_query_refuses(body: bytes, code: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(body, "")
    assert info.value.code == code
    assert info.value.status == 400


# ---- to_native ----
def test_actions_are_the_operations_of_the_iam_spec() -> None:
    expected = {"CreateUser", "ListUsers", "DeleteUser", "CreateAccessKey", "ListAccessKeys", "UpdateAccessKey",
                "DeleteAccessKey", "CreateRole", "GetRole", "ListRoles", "DeleteRole", "PutRolePolicy",
                "GetRolePolicy", "DeleteRolePolicy", "ListRolePolicies"}
    assert expected == ACTIONS


def test_create_user_role_defaults_to_writer() -> None:
    assert to_native("CreateUser", {"UserName": "bob", "Path": "/"}, ACTIONS) == {"UserName": "bob", "Role": "writer"}


def test_create_user_role_from_tag() -> None:
    params = {"UserName": "aud", "Tags.member.1.Key": "trailkeeper:role", "Tags.member.1.Value": "auditor"}
    assert to_native("CreateUser", params, ACTIONS) == {"UserName": "aud", "Role": "auditor"}


@pytest.mark.parametrize(("action", "params", "code"), [
    ("GetUser", {}, "InvalidAction"),
    ("CreateUser", {}, "MissingParameter"),
    ("DeleteUser", {"UserName": ""}, "MissingParameter"),
    ("UpdateAccessKey", {"AccessKeyId": "AKIAX"}, "MissingParameter"),
    ("CreateUser", {"UserName": "a", "Path": "/ops/"}, "InvalidParameterValue"),
    ("CreateUser", {"UserName": "a", "PermissionsBoundary": "arn"}, "InvalidParameterValue"),
    ("CreateUser", {"UserName": "a", "Tags.member.1.Key": "team", "Tags.member.1.Value": "x"},
     "InvalidParameterValue"),
    ("CreateUser", {"UserName": "a", "Tags.member.1.Key": "trailkeeper:role"}, "MissingParameter"),
    ("ListUsers", {"Tags.member.1.Key": "trailkeeper:role"}, "InvalidParameterValue"),
])
def test_to_native_refuses(action: str, params: dict[str, str], code: str) -> None:
    with pytest.raises(QueryError) as info:
        to_native(action, params, ACTIONS)
    assert info.value.code == code


def test_key_actions_pass_user_name_and_drop_paging() -> None:
    assert to_native("ListAccessKeys", {"UserName": "u", "MaxItems": "5"}, ACTIONS) == {"UserName": "u"}
    assert to_native("UpdateAccessKey", {"AccessKeyId": "K", "Status": "Inactive"}, ACTIONS) == {
        "AccessKeyId": "K", "Status": "Inactive"}


# ---- rendering (known answers) ----
USER = {"UserName": "alice", "UserId": "AIDAEXAMPLE", "Arn": "arn:aws:iam::123456789012:user/alice",
        "Role": "auditor", "CreateDate": 1795773600.0, "Path": "/"}


def test_create_user_xml_known_answer() -> None:
    assert success_xml("CreateUser", {"User": USER}, "rid-1").decode() == (
        f'<CreateUserResponse xmlns="{IAM_NAMESPACE}"><CreateUserResult><User><Path>/</Path>'
        "<UserName>alice</UserName><UserId>AIDAEXAMPLE</UserId>"
        "<Arn>arn:aws:iam::123456789012:user/alice</Arn><CreateDate>2026-11-27T10:00:00Z</CreateDate>"
        "<Tags><member><Key>trailkeeper:role</Key><Value>auditor</Value></member></Tags></User>"
        "</CreateUserResult><ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata>"
        "</CreateUserResponse>")


def test_no_result_actions_have_only_metadata() -> None:
    assert success_xml("DeleteUser", {}, "r").decode() == (
        f'<DeleteUserResponse xmlns="{IAM_NAMESPACE}"><ResponseMetadata><RequestId>r</RequestId>'
        "</ResponseMetadata></DeleteUserResponse>")


def test_list_users_xml_has_members_and_is_truncated() -> None:
    root = ET.fromstring(success_xml("ListUsers", {"Users": [USER, {**USER, "UserName": "b"}]}, "r"))
    names = [e.text for e in root.findall("i:ListUsersResult/i:Users/i:member/i:UserName", NS)]
    assert names == ["alice", "b"]
    assert root.findtext("i:ListUsersResult/i:IsTruncated", namespaces=NS) == "false"


def test_error_xml_known_answer_escapes_message() -> None:
    assert error_xml("NoSuchEntity", "user <x> & co", "r9").decode() == (
        f'<ErrorResponse xmlns="{IAM_NAMESPACE}"><Error><Type>Sender</Type><Code>NoSuchEntity</Code>'
        "<Message>user &lt;x&gt; &amp; co</Message></Error><RequestId>r9</RequestId></ErrorResponse>")
    assert b"<Type>Receiver</Type>" in error_xml("ServiceFailure", "m", "r", sender=False)


# ---- handle_iam with a scripted call ----
def test_handle_iam_renders_errors_with_their_status() -> None:
    def call(op: str, params: dict[str, Any]) -> dict[str, Any]:
        raise AuthError("AccessDenied", "not allowed", 403)

    status, headers, body = handle_iam(f"Action=ListUsers&{V}".encode(), "", call, "r", ACTIONS)
    assert status == 403
    assert ("Content-Type", "text/xml") in headers
    assert ET.fromstring(body).findtext("i:Error/i:Code", namespaces=NS) == "AccessDenied"


def test_handle_iam_unknown_action_never_calls() -> None:
    def call(op: str, params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("must not be called")

    status, _, body = handle_iam(f"Action=GetUser&{V}".encode(), "", call, "r", ACTIONS)
    assert status == 400
    assert ET.fromstring(body).findtext("i:Error/i:Code", namespaces=NS) == "InvalidAction"
    status, _, body = handle_iam(f"Action=ListUsers&{V}&MaxItems=0".encode(), "", call, "r", ACTIONS)
    assert (status, ET.fromstring(body).findtext("i:Error/i:Code", namespaces=NS)) == (400, "ValidationError")


def test_handle_iam_lets_codeless_errors_propagate() -> None:
    def call(op: str, params: dict[str, Any]) -> dict[str, Any]:
        raise StorageError("disk full")

    with pytest.raises(StorageError):
        handle_iam(f"Action=ListUsers&{V}".encode(), "", call, "r", ACTIONS)


def test_handle_iam_pages_lists() -> None:
    users = [{**USER, "UserName": f"u{i}"} for i in range(5)]

    def call(op: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"Users": users}

    def page(extra: str) -> tuple[list[str | None], str | None, str | None]:
        _, _, body = handle_iam(f"Action=ListUsers&{V}&MaxItems=2{extra}".encode(), "", call, "r", ACTIONS)
        result = ET.fromstring(body).find("i:ListUsersResult", NS)
        assert result is not None
        names = [e.text for e in result.findall("i:Users/i:member/i:UserName", NS)]
        return names, result.findtext("i:IsTruncated", namespaces=NS), result.findtext("i:Marker", namespaces=NS)

    assert page("") == (["u0", "u1"], "true", "2")
    assert page("&Marker=4") == (["u4"], "false", None)
    assert page("&PathPrefix=%2Fops%2F") == ([], "false", None)


# ---- a real botocore IAM client against the real store and operations ----
class _RawBytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@pytest.fixture()
def iam(tmp_path: Path) -> Iterator[Any]:
    store = IdentityStore(SqliteIdentityRepository(tmp_path / "identity.db"), MemoryKeyring(), SystemClock())
    creds = store.init_account("us-east-1")
    root = Principal(creds.account_id, True, None, creds.account_id, root_arn(creds.account_id), None,
                     creds.access_key_id, "Active")
    domain = IamDomain(store, Roles(MemoryRoleRepository(), SystemClock(), creds.account_id))

    def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return OPERATIONS[operation].handler(domain, root, params)

    def before_send(request: Any, **_: Any) -> AWSResponse:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        status, headers, out = handle_iam(body, urlsplit(request.url).query, call, "req-1", ACTIONS)
        return AWSResponse(request.url, status, dict(headers), _RawBytes(out))

    client = botocore.session.get_session().create_client(
        "iam", region_name="us-east-1", endpoint_url="http://iam.test",
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    client.meta.events.register("before-send.iam", before_send)
    yield client
    store.close()


def _error(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response: Any = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_botocore_user_and_key_lifecycle(iam: Any) -> None:
    user = iam.create_user(UserName="alice", Tags=[{"Key": "trailkeeper:role", "Value": "auditor"}])["User"]
    assert user["UserName"] == "alice"
    assert user["Arn"].endswith(":user/alice")
    assert user["Tags"] == [{"Key": "trailkeeper:role", "Value": "auditor"}]
    assert user["CreateDate"].tzinfo is not None
    iam.create_user(UserName="bob")
    users = iam.list_users()
    assert users["IsTruncated"] is False
    assert [(u["UserName"], u["Tags"][0]["Value"]) for u in users["Users"]] == [
        ("alice", "auditor"), ("bob", "writer")]

    key = iam.create_access_key(UserName="alice")["AccessKey"]
    assert SECRET_RE.fullmatch(key["SecretAccessKey"])
    assert (key["UserName"], key["Status"]) == ("alice", "Active")
    listed = iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
    assert [(k["AccessKeyId"], k["Status"]) for k in listed] == [(key["AccessKeyId"], "Active")]
    assert "SecretAccessKey" not in listed[0]

    iam.update_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    assert iam.list_access_keys(UserName="alice")["AccessKeyMetadata"][0]["Status"] == "Inactive"
    with pytest.raises(ClientError) as conflict:
        iam.delete_user(UserName="alice")
    assert _error(conflict) == ("DeleteConflict", 409)

    iam.delete_access_key(UserName="alice", AccessKeyId=key["AccessKeyId"])
    assert iam.list_access_keys(UserName="alice")["AccessKeyMetadata"] == []
    iam.delete_user(UserName="alice")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["bob"]


def test_botocore_errors(iam: Any) -> None:
    iam.create_user(UserName="carol")
    with pytest.raises(ClientError) as exists:
        iam.create_user(UserName="carol")
    assert _error(exists) == ("EntityAlreadyExists", 409)
    with pytest.raises(ClientError) as missing:
        iam.delete_user(UserName="nobody")
    assert _error(missing) == ("NoSuchEntity", 404)
    with pytest.raises(ClientError) as no_key:
        iam.delete_access_key(AccessKeyId="AKIAAAAAAAAAAAAAAAAA")
    assert _error(no_key) == ("NoSuchEntity", 404)
    with pytest.raises(ClientError) as bad_role:
        iam.create_user(UserName="dave", Tags=[{"Key": "trailkeeper:role", "Value": "king"}])
    assert _error(bad_role)[0] == "ValidationError"
    with pytest.raises(ClientError) as unsupported:
        iam.get_user(UserName="carol")
    assert _error(unsupported) == ("InvalidAction", 400)


def test_botocore_paginator_walks_marker(iam: Any) -> None:
    for i in range(3):
        iam.create_user(UserName=f"user{i}")
    pages = list(iam.get_paginator("list_users").paginate(PaginationConfig={"PageSize": 2}))
    assert [[u["UserName"] for u in p["Users"]] for p in pages] == [["user0", "user1"], ["user2"]]


def test_identity_errors_keep_native_status() -> None:
    def call(op: str, params: dict[str, Any]) -> dict[str, Any]:
        raise IdentityError("LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2", 409)

    status, _, body = handle_iam(f"Action=CreateAccessKey&{V}&UserName=a".encode(), "", call, "r", ACTIONS)
    assert status == 409
    assert ET.fromstring(body).findtext("i:Error/i:Message", namespaces=NS) == (
        "Cannot exceed quota for AccessKeysPerUser: 2")


# ---- roles through botocore ----
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
