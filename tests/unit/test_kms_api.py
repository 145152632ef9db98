"""KMS over JSON 1.1: the handler table, wire shapes checked against botocore's KMS model, a real
botocore KMS client driven in-process through the JSON 1.1 exchange, and what audit records keep."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from botocore.model import Shape

from trailkeeper import audit
from trailkeeper.api import json11
from trailkeeper.api.kms import KMS, KMS_TARGET_PREFIX, audit_resources, redact
from trailkeeper.api.operations import CLOUDTRAIL, IAM
from trailkeeper.api.services import DEFAULT_REGISTRY
from trailkeeper.clock import FrozenClock
from trailkeeper.errors import KmsError
from trailkeeper.identity import PERMISSIONS, Principal, root_arn
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.kms import Kms, SqliteKmsRepository

ACCOUNT, REGION = "123456789012", "us-east-1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KMS_OPERATIONS = KMS.operations
MODEL = botocore.session.get_session().get_service_model("kms")
ROOT = Principal(ACCOUNT, True, None, ACCOUNT, root_arn(ACCOUNT), None, "AKIAROOT", "Active")


# ---- validation of a response against the botocore model ----------------------------------------
def check_shape(shape: Shape, value: Any, path: str) -> None:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), path
        assert set(value) <= set(shape.members), f"{path}: unknown members {set(value) - set(shape.members)}"
        assert set(shape.required_members) <= set(value), f"{path}: missing {shape.required_members}"
        for name, member in value.items():
            check_shape(shape.members[name], member, f"{path}.{name}")
    elif kind == "list":
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            check_shape(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict) and all(isinstance(k, str) for k in value), path
    elif kind == "string":
        assert isinstance(value, str), path
        assert not shape.enum or value in shape.enum, f"{path}: {value} not in {shape.enum}"
        assert shape.metadata.get("min", 0) <= len(value) <= shape.metadata.get("max", 1 << 30), path
    elif kind in ("integer", "long"):
        assert isinstance(value, int) and not isinstance(value, bool), path
    elif kind == "boolean":
        assert isinstance(value, bool), path
    elif kind == "timestamp":
        assert isinstance(value, int | float) and not isinstance(value, bool), f"{path}: epoch seconds"
    elif kind == "blob":
        assert isinstance(value, str) and base64.b64decode(value, validate=True), path
    else:
        raise AssertionError(f"{path}: unexpected shape type {kind}")


def check_output(operation: str, response: dict[str, Any]) -> None:
    output = MODEL.operation_model(operation).output_shape
    if output is None:
        assert response == {}, operation
    else:
        check_shape(output, response, operation)


# ---- fixtures ------------------------------------------------------------------------------------
class Harness:
    def __init__(self, kms: Kms) -> None:
        self.kms = kms
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []

    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """What App._call_operation does for a handler, with every answer checked against the model."""
        try:
            response = KMS_OPERATIONS[operation].handler(self.kms, ROOT, params)
        except KmsError:
            self.calls.append((operation, params, None))
            raise
        check_output(operation, response)
        self.calls.append((operation, params, response))
        return response

    def wire(self, operation: str, **params: Any) -> dict[str, Any]:
        """Call a handler with the parameters exactly as botocore serialises them."""
        from botocore.serialize import create_serializer

        request = create_serializer("json").serialize_to_request(params, MODEL.operation_model(operation))
        assert request["headers"]["X-Amz-Target"] == f"{KMS_TARGET_PREFIX}{operation}"
        return self.call(operation, json.loads(request["body"] or b"{}"))


@pytest.fixture()
def harness(tmp_path: Path) -> Iterator[Harness]:
    kms = Kms(SqliteKmsRepository(tmp_path / "state.db"), MemoryKeyring(), FrozenClock(T0), ACCOUNT, REGION)
    yield Harness(kms)
    kms.close()


class _RawBytes:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@pytest.fixture()
def client(harness: Harness) -> Any:
    def before_send(request: Any, **_: Any) -> AWSResponse:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        status, headers, out = json11.exchange(KMS, request.headers["X-Amz-Target"].decode(), body, harness.call)
        return AWSResponse(request.url, status, dict(headers), _RawBytes(out))

    kms_client = botocore.session.get_session().create_client(
        "kms", region_name=REGION, endpoint_url="http://kms.test",
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x")
    kms_client.meta.events.register("before-send.kms", before_send)
    return kms_client


def error_of(info: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response: Any = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# ---- the table -----------------------------------------------------------------------------------
def test_table_names_exist_in_the_model_and_are_audited_as_kms() -> None:
    for name in KMS_OPERATIONS:
        assert name in MODEL.operation_names
        assert _event_source_for(name) == audit.KMS_SOURCE
    assert not set(KMS_OPERATIONS) & (set(CLOUDTRAIL.operations) | set(IAM.operations))
    assert _event_source_for("CreateTrail") == audit.CLOUDTRAIL_SOURCE
    assert _event_source_for("CreateUser") == audit.IAM_SOURCE


def _event_source_for(name: str) -> str:
    found = DEFAULT_REGISTRY.find(name)
    assert found is not None, name
    return found.service.event_source


def test_permissions() -> None:
    expected = {"Encrypt": "kms:encrypt", "GenerateDataKey": "kms:encrypt", "ReEncrypt": "kms:encrypt",
                "Decrypt": "kms:decrypt", "DescribeKey": "kms:read", "ListKeys": "kms:read",
                "ListAliases": "kms:read", "GetKeyRotationStatus": "kms:read", "ListResourceTags": "kms:read"}
    for name, op in KMS_OPERATIONS.items():
        assert op.permission in PERMISSIONS
        assert op.permission == expected.get(name, "kms:write"), name


@pytest.mark.parametrize(("name", "read_only"), [
    ("Encrypt", True), ("Decrypt", True), ("GenerateDataKey", True), ("ReEncrypt", True),
    ("DescribeKey", True), ("ListKeys", True), ("ListAliases", True), ("GetKeyRotationStatus", True),
    ("CreateKey", False), ("DisableKey", False), ("ScheduleKeyDeletion", False), ("EnableKeyRotation", False),
    ("RotateKeyOnDemand", False), ("CreateAlias", False), ("CancelKeyDeletion", False),
])
def test_read_only_as_cloudtrail_records_it(name: str, read_only: bool) -> None:
    assert KMS_OPERATIONS[name].read_only is read_only


def test_operation_of_target() -> None:
    assert KMS.operation_of_target("TrentService.Encrypt") == "Encrypt"
    assert KMS.operation_of_target("TrentService.Sign") is None
    assert KMS.operation_of_target("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.CreateTrail") is None


# ---- wire shapes, handlers called with botocore-serialised params --------------------------------
def test_every_operation_answers_in_the_model_shape(harness: Harness) -> None:
    meta = harness.wire("CreateKey", Description="logs", Tags=[{"TagKey": "team", "TagValue": "audit"}])["KeyMetadata"]
    assert meta["CreationDate"] == T0.timestamp() and meta["KeyState"] == "Enabled" and meta["Enabled"] is True
    key = meta["KeyId"]
    other = harness.wire("CreateKey")["KeyMetadata"]["Arn"]
    assert harness.wire("DescribeKey", KeyId=key)["KeyMetadata"]["Arn"] == meta["Arn"]
    assert {k["KeyId"] for k in harness.wire("ListKeys")["Keys"]} == {key, other.rpartition("/")[2]}
    assert harness.wire("ListResourceTags", KeyId=key)["Tags"] == [{"TagKey": "team", "TagValue": "audit"}]
    harness.wire("CreateAlias", AliasName="alias/logs", TargetKeyId=key)
    assert harness.wire("ListAliases", KeyId=key)["Aliases"][0]["AliasArn"].endswith(":alias/logs")
    enc = harness.wire("Encrypt", KeyId="alias/logs", Plaintext=b"hi", EncryptionContext={"a": "b"})
    assert enc["KeyId"] == meta["Arn"]
    dec = harness.wire("Decrypt", CiphertextBlob=base64.b64decode(enc["CiphertextBlob"]), EncryptionContext={"a": "b"})
    assert base64.b64decode(dec["Plaintext"]) == b"hi" and dec["KeyMaterialId"] == meta["CurrentKeyMaterialId"]
    dk = harness.wire("GenerateDataKey", KeyId=key, KeySpec="AES_256")
    assert len(base64.b64decode(dk["Plaintext"])) == 32
    re = harness.wire("ReEncrypt", CiphertextBlob=base64.b64decode(dk["CiphertextBlob"]), DestinationKeyId=other)
    assert (re["SourceKeyId"], re["KeyId"]) == (meta["Arn"], other)
    harness.wire("EnableKeyRotation", KeyId=key, RotationPeriodInDays=180)
    status = harness.wire("GetKeyRotationStatus", KeyId=key)
    assert (status["KeyRotationEnabled"], status["RotationPeriodInDays"]) == (True, 180)
    assert status["NextRotationDate"] == (T0 + timedelta(days=180)).timestamp()
    assert harness.wire("RotateKeyOnDemand", KeyId=key)["KeyId"] == meta["Arn"]
    assert harness.wire("DescribeKey", KeyId=key)["KeyMetadata"]["CurrentKeyMaterialId"] != meta["CurrentKeyMaterialId"]
    harness.wire("DisableKeyRotation", KeyId=key)
    harness.wire("DisableKey", KeyId=key)
    harness.wire("EnableKey", KeyId=key)
    harness.wire("DeleteAlias", AliasName="alias/logs")
    scheduled = harness.wire("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=7)
    assert scheduled == {"KeyId": meta["Arn"], "DeletionDate": (T0 + timedelta(days=7)).timestamp(),
                         "KeyState": "PendingDeletion", "PendingWindowInDays": 7}
    pending = harness.wire("DescribeKey", KeyId=key)["KeyMetadata"]
    assert pending["PendingDeletionWindowInDays"] == 7 and pending["Enabled"] is False
    assert harness.wire("CancelKeyDeletion", KeyId=key) == {"KeyId": meta["Arn"]}
    assert {name for name, _, _ in harness.calls} == set(KMS_OPERATIONS)


def test_list_keys_paging_on_the_wire(harness: Harness) -> None:
    for _ in range(3):
        harness.wire("CreateKey")
    first = harness.wire("ListKeys", Limit=2)
    assert first["Truncated"] is True and len(first["Keys"]) == 2
    rest = harness.wire("ListKeys", Limit=2, Marker=first["NextMarker"])
    assert rest["Truncated"] is False and "NextMarker" not in rest and len(rest["Keys"]) == 1


@pytest.mark.parametrize(("operation", "params", "code"), [
    ("CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}, "UnsupportedOperationException"),
    ("CreateKey", {"KeyUsage": "SIGN_VERIFY"}, "ValidationException"),
    ("CreateKey", {"KeyUsage": "BOGUS"}, "ValidationException"),
    ("CreateKey", {"KeySpec": "SYMMETRIC_DEFAULT", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT"}, "ValidationException"),
    ("CreateKey", {"Policy": "{}"}, "UnsupportedOperationException"),
    ("CreateKey", {"Origin": "EXTERNAL"}, "UnsupportedOperationException"),
    ("CreateKey", {"MultiRegion": True}, "UnsupportedOperationException"),
    ("CreateKey", {"Tags": [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}]}, "TagException"),
    ("DescribeKey", {}, "ValidationException"),
    ("DescribeKey", {"KeyId": 5}, "ValidationException"),
    ("ListKeys", {"Limit": "2"}, "ValidationException"),
    ("Encrypt", {"KeyId": "alias/x", "Plaintext": "!!!"}, "SerializationException"),
    ("Decrypt", {"CiphertextBlob": "AAAA", "EncryptionContext": {"a": 1}}, "ValidationException"),
    ("Decrypt", {"CiphertextBlob": "AAAA"}, "InvalidCiphertextException"),
])
def test_request_errors(harness: Harness, operation: str, params: dict[str, Any], code: str) -> None:
    harness.kms.create_alias("alias/x", harness.kms.create_key().key_id)
    with pytest.raises(KmsError) as info:
        harness.call(operation, params)
    assert info.value.code == code, str(info.value)


# ---- a real botocore client in-process ----------------------------------------------------------
def test_botocore_client_round_trip(client: Any) -> None:
    key = client.create_key(Description="d")["KeyMetadata"]
    assert isinstance(key["CreationDate"], datetime) and key["KeySpec"] == "SYMMETRIC_DEFAULT"
    client.create_alias(AliasName="alias/bc", TargetKeyId=key["KeyId"])
    blob = client.encrypt(KeyId="alias/bc", Plaintext=b"\x00\xffdata", EncryptionContext={"k": "v"})["CiphertextBlob"]
    assert isinstance(blob, bytes)
    out = client.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"}, KeyId=key["Arn"])
    assert out["Plaintext"] == b"\x00\xffdata" and out["KeyId"] == key["Arn"]
    dk = client.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=24)
    assert len(dk["Plaintext"]) == 24
    deletion = client.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)["DeletionDate"]
    assert deletion == T0 + timedelta(days=7)
    pages = list(client.get_paginator("list_aliases").paginate())
    assert [a["AliasName"] for p in pages for a in p["Aliases"]] == ["alias/bc"]


def test_botocore_sees_aws_error_codes(client: Any) -> None:
    key = client.create_key()["KeyMetadata"]["KeyId"]
    blob = client.encrypt(KeyId=key, Plaintext=b"x")["CiphertextBlob"]
    cases: list[tuple[Callable[[], Any], str, int]] = [
        (lambda: client.describe_key(KeyId="00000000-0000-4000-8000-000000000000"), "NotFoundException", 400),
        (lambda: client.decrypt(CiphertextBlob=blob[:-1] + bytes([blob[-1] ^ 1])), "InvalidCiphertextException", 400),
        (lambda: client.decrypt(CiphertextBlob=blob, EncryptionContext={"x": "y"}), "InvalidCiphertextException", 400),
        (lambda: client.generate_data_key(KeyId=key), "ValidationException", 400),
        (lambda: client.generate_data_key(KeyId=key, KeySpec="AES_256", NumberOfBytes=32), "ValidationException", 400),
        (lambda: client.encrypt(KeyId=key, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_1"), "InvalidKeyUsageException", 400),
        (lambda: client.encrypt(KeyId=key, Plaintext=b"x", DryRun=True), "DryRunOperationException", 412),
        (lambda: client.schedule_key_deletion(KeyId=key, PendingWindowInDays=5), "ValidationException", 400),
        (lambda: client.create_alias(AliasName="alias/aws/x", TargetKeyId=key), "NotAuthorizedException", 400),
    ]
    for call, code, status in cases:
        with pytest.raises(ClientError) as info:
            call()
        assert error_of(info) == (code, status)
    client.disable_key(KeyId=key)
    with pytest.raises(client.exceptions.DisabledException):
        client.decrypt(CiphertextBlob=blob)
    with pytest.raises(client.exceptions.DisabledException):
        client.encrypt(KeyId=key, Plaintext=b"x", DryRun=True)


def test_unknown_target_and_bad_json(harness: Harness) -> None:
    status, headers, body = json11.exchange(KMS, "TrentService.Sign", b"{}", harness.call)
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"
    assert ("content-type", "application/x-amz-json-1.1") in headers
    status, _, body = json11.exchange(KMS, "TrentService.ListKeys", b"[1]", harness.call)
    assert json.loads(body)["__type"] == "SerializationException"


# ---- audit records -------------------------------------------------------------------------------
def _record(name: str, params: dict[str, Any], response: dict[str, Any] | None, kms: Kms) -> dict[str, Any]:
    """An audit record as App._execute builds it: shaped by redact, recorded as the KMS spec says."""
    ctx = audit.CallContext(ACCOUNT, REGION, "127.0.0.1", "test", T0, "req")
    request, answer = redact(name, params, response)
    return audit.api_call_record(ctx, {"type": "Root"}, name, request, answer,
                                 resources=audit_resources(kms, name, params, response),
                                 event_source=KMS.event_source, read_only=KMS_OPERATIONS[name].read_only)


def test_audit_records_never_hold_plaintext_or_ciphertext(harness: Harness) -> None:
    key = harness.wire("CreateKey")["KeyMetadata"]
    secret = b"top secret payload"
    harness.wire("Encrypt", KeyId=key["KeyId"], Plaintext=secret, EncryptionContext={"a": "b"})
    dk = harness.wire("GenerateDataKey", KeyId=key["KeyId"], NumberOfBytes=16)
    harness.wire("Decrypt", CiphertextBlob=base64.b64decode(dk["CiphertextBlob"]))
    harness.wire("ReEncrypt", CiphertextBlob=base64.b64decode(dk["CiphertextBlob"]), DestinationKeyId=key["Arn"])
    records = [_record(name, params, response, harness.kms) for name, params, response in harness.calls]
    text = json.dumps(records)
    blobs = [v for _, params, response in harness.calls for part in (params, response or {})
             for k, v in part.items() if k in ("Plaintext", "CiphertextBlob")]
    assert len(blobs) == 8 and base64.b64encode(secret).decode() in blobs
    for value in blobs:
        assert value not in text
    for record in records:
        assert record["eventSource"] == "kms.amazonaws.com"
        assert record["resources"] == [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key["Arn"]}]
    encrypt = next(r for r in records if r["eventName"] == "Encrypt")
    assert encrypt["readOnly"] is True and encrypt["responseElements"] is None
    assert encrypt["requestParameters"] == {"KeyId": key["KeyId"], "EncryptionContext": {"a": "b"}}
    create = next(r for r in records if r["eventName"] == "CreateKey")
    assert create["readOnly"] is False and create["responseElements"]["KeyMetadata"]["Arn"] == key["Arn"]


def test_audit_resources_of_management_calls(harness: Harness) -> None:
    a, b = harness.kms.create_key(), harness.kms.create_key()
    harness.wire("DisableKey", KeyId=a.key_id)
    name, params, response = harness.calls[-1]
    assert audit_resources(harness.kms, name, params, response) == [
        {"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": a.arn}]
    blob = harness.kms.encrypt(b.key_id, b"x").blob
    harness.kms.enable_key(a.key_id)
    harness.wire("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=a.key_id)
    name, params, response = harness.calls[-1]
    assert [r["ARN"] for r in audit_resources(harness.kms, name, params, response) or []] == [b.arn, a.arn]
    assert audit_resources(harness.kms, "DescribeKey", {"KeyId": "alias/none"}, None) is None
