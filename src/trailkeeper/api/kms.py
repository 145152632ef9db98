"""AWS KMS over JSON 1.1 (`X-Amz-Target: TrentService.<Op>`) onto `trailkeeper.kms`.

Handlers take and return the wire shapes of botocore's KMS model: blobs are base64 strings,
timestamps epoch seconds. The `KMS` spec registers them (api/registry.py); the JSON 1.1
exchange is api/json11.py; `redact` keeps plaintext and
ciphertext out of audit records; `audit_resources` names the keys a call touched.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from trailkeeper import audit
from trailkeeper.api.registry import AuditShape, OperationSpec, ServiceSpec
from trailkeeper.errors import KmsError
from trailkeeper.identity import Principal
from trailkeeper.kms import (
    DEFAULT_LIMIT,
    DEFAULT_PENDING_DAYS,
    DEFAULT_ROTATION_DAYS,
    PENDING_DELETION,
    KeyMetadata,
    Kms,
    material_id,
    unpack_blob,
)

if TYPE_CHECKING:
    from trailkeeper.service import Service

KMS_TARGET_PREFIX = "TrentService."
SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}
KEY_USAGES = ("SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT", "ENCAPSULATE_DECAPSULATE")
ENCRYPTION_ALGORITHMS = ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")
# Request members that carry secrets or data: never in an audit record (CloudTrail omits them).
SECRET_FIELDS = frozenset({"Plaintext", "CiphertextBlob", "CiphertextForRecipient"})

Params = dict[str, Any]


# ---- request parameters ---------------------------------------------------------------------
def _invalid(message: str) -> KmsError:
    return KmsError("ValidationException", message)


def _str(params: Params, name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise _invalid(f"1 validation error detected: Value null at '{name}' failed to satisfy "
                           "constraint: Member must not be null")
        return None
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a string.")
    return value


def _key_id(params: Params, name: str = "KeyId") -> str:
    return cast(str, _str(params, name))


def _int(params: Params, name: str, default: int | None) -> int | None:
    value = params.get(name, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _invalid(f"{name} must be an integer.")
    return value


def _blob(params: Params, name: str, required: bool = True) -> bytes | None:
    text = _str(params, name, required)
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise KmsError("SerializationException", f"{name} is not valid base64: {e}") from e


def _context(params: Params, name: str = "EncryptionContext") -> dict[str, str]:
    value = params.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _invalid(f"{name} must be a map of strings to strings.")
    return value


def _algorithm(params: Params, name: str = "EncryptionAlgorithm") -> None:
    value = _str(params, name, required=False)
    if value is None or value == SYMMETRIC_DEFAULT:
        return
    if value not in ENCRYPTION_ALGORITHMS:
        raise _invalid(f"{name} must be one of {', '.join(ENCRYPTION_ALGORITHMS)}.")
    raise KmsError("InvalidKeyUsageException", f"{name} {value} is not supported by symmetric keys; "
                   f"use {SYMMETRIC_DEFAULT}.")


def _refuse_recipient(params: Params) -> None:
    if params.get("Recipient") is not None:
        raise KmsError("UnsupportedOperationException", "Recipient (Nitro Enclaves attestation) is not "
                       "supported by trailkeeper's KMS; omit it.")


def _dry_run(params: Params, check: Callable[[], str]) -> None:
    """DryRun: the call was authorised and `check` found its keys usable, so it would have
    succeeded; `check` runs only for a dry run so real calls keep their own error order."""
    if params.get("DryRun") is True:
        arn = check()
        raise KmsError("DryRunOperationException",
                       f"The request would have succeeded with key {arn}, but DryRun was set.", 412)


# ---- response shapes ------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def key_metadata_shape(meta: KeyMetadata) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "AWSAccountId": meta.account_id,
        "KeyId": meta.key_id,
        "Arn": meta.arn,
        "CreationDate": meta.created.timestamp(),
        "Enabled": meta.enabled,
        "Description": meta.description,
        "KeyUsage": ENCRYPT_DECRYPT,
        "KeyState": meta.state,
        "Origin": "AWS_KMS",
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": SYMMETRIC_DEFAULT,
        "KeySpec": SYMMETRIC_DEFAULT,
        "EncryptionAlgorithms": [SYMMETRIC_DEFAULT],
        "MultiRegion": False,
        "CurrentKeyMaterialId": meta.current_material_id,
    }
    if meta.deletion_date is not None:
        shape["DeletionDate"] = meta.deletion_date.timestamp()
        shape["PendingDeletionWindowInDays"] = meta.pending_window_days
    return shape


def _page(items_name: str, items: list[dict[str, Any]], next_marker: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {items_name: items, "Truncated": next_marker is not None}
    if next_marker is not None:
        out["NextMarker"] = next_marker
    return out


# ---- key management -------------------------------------------------------------------------
_UNSUPPORTED_CREATE = {
    "Policy": "key policies (trailkeeper authorises KMS calls by role)",
    "CustomKeyStoreId": "custom key stores",
    "XksKeyId": "external key stores",
}


def _create_key(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    for name, what in _UNSUPPORTED_CREATE.items():
        if params.get(name) is not None:
            raise KmsError("UnsupportedOperationException", f"{name}: {what} are not supported; omit it.")
    if params.get("MultiRegion") is True or params.get("Origin", "AWS_KMS") != "AWS_KMS":
        raise KmsError("UnsupportedOperationException", "Only single-Region keys with Origin AWS_KMS are supported.")
    _check_usage_and_spec(params)
    tags = params.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise _invalid("Tags must be a list of {TagKey, TagValue}.")
    tag_map = {t.get("TagKey"): t.get("TagValue") for t in tags}
    if len(tag_map) != len(tags):
        raise KmsError("TagException", "Tags must not repeat a TagKey.")
    meta = kms.create_key(_str(params, "Description", required=False) or "", tag_map)
    return {"KeyMetadata": key_metadata_shape(meta)}


def _check_usage_and_spec(params: Params) -> None:
    usage = _str(params, "KeyUsage", required=False) or ENCRYPT_DECRYPT
    spec = _str(params, "KeySpec", required=False)
    legacy = _str(params, "CustomerMasterKeySpec", required=False)
    if spec is not None and legacy is not None:
        raise _invalid("Give KeySpec or the deprecated CustomerMasterKeySpec, not both.")
    spec = spec or legacy or SYMMETRIC_DEFAULT
    if usage not in KEY_USAGES:
        raise _invalid(f"KeyUsage must be one of {', '.join(KEY_USAGES)}.")
    if spec == SYMMETRIC_DEFAULT and usage != ENCRYPT_DECRYPT:
        raise _invalid(f"KeyUsage {usage} is not compatible with KeySpec {SYMMETRIC_DEFAULT}.")
    if spec != SYMMETRIC_DEFAULT or usage != ENCRYPT_DECRYPT:
        raise KmsError("UnsupportedOperationException", f"KeySpec {spec} with KeyUsage {usage} is not "
                       f"supported; trailkeeper's KMS makes {SYMMETRIC_DEFAULT} {ENCRYPT_DECRYPT} keys.")


def _describe_key(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    return {"KeyMetadata": key_metadata_shape(kms.describe_key(_key_id(params)))}


def _list_keys(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    page = kms.list_keys(cast(int, _int(params, "Limit", DEFAULT_LIMIT)),
                                   _str(params, "Marker", required=False))
    return _page("Keys", [{"KeyId": k.key_id, "KeyArn": k.arn} for k in page.items], page.next_marker)


def _list_resource_tags(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    tags = kms.list_resource_tags(_key_id(params))
    return {"Tags": [{"TagKey": k, "TagValue": v} for k, v in tags.items()], "Truncated": False}


def _enable_key(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    kms.enable_key(_key_id(params))
    return {}


def _disable_key(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    kms.disable_key(_key_id(params))
    return {}


def _schedule_key_deletion(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    days = cast(int, _int(params, "PendingWindowInDays", DEFAULT_PENDING_DAYS))
    meta = kms.schedule_key_deletion(_key_id(params), days)
    assert meta.deletion_date is not None  # set by scheduling
    return {"KeyId": meta.arn, "DeletionDate": meta.deletion_date.timestamp(), "KeyState": PENDING_DELETION,
            "PendingWindowInDays": days}


def _cancel_key_deletion(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    return {"KeyId": kms.cancel_key_deletion(_key_id(params)).arn}


# ---- aliases ----------------------------------------------------------------------------------
def _create_alias(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    kms.create_alias(cast(str, _str(params, "AliasName")), _key_id(params, "TargetKeyId"))
    return {}


def _delete_alias(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    kms.delete_alias(cast(str, _str(params, "AliasName")))
    return {}


def _list_aliases(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    page = kms.list_aliases(_str(params, "KeyId", required=False),
                                      cast(int, _int(params, "Limit", DEFAULT_LIMIT)),
                                      _str(params, "Marker", required=False))
    aliases = [{"AliasName": a.name, "AliasArn": a.arn, "TargetKeyId": a.target_key_id,
                "CreationDate": a.created.timestamp(), "LastUpdatedDate": a.updated.timestamp()}
               for a in page.items]
    return _page("Aliases", aliases, page.next_marker)


# ---- rotation ---------------------------------------------------------------------------------
def _enable_key_rotation(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    period = cast(int, _int(params, "RotationPeriodInDays", DEFAULT_ROTATION_DAYS))
    kms.enable_key_rotation(_key_id(params), period)
    return {}


def _disable_key_rotation(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    kms.disable_key_rotation(_key_id(params))
    return {}


def _get_key_rotation_status(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    status = kms.get_key_rotation_status(_key_id(params))
    out: dict[str, Any] = {"KeyRotationEnabled": status.enabled, "KeyId": status.key_arn}
    if status.period_days is not None:
        out["RotationPeriodInDays"] = status.period_days
    if status.next_rotation is not None:
        out["NextRotationDate"] = status.next_rotation.timestamp()
    return out


def _rotate_key_on_demand(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    key_ref = _key_id(params)
    kms.rotate_key_on_demand(key_ref)
    return {"KeyId": kms.resolve(key_ref)}


# ---- cryptographic operations -----------------------------------------------------------------
def _encrypt(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    key_ref = _key_id(params)
    plaintext, context = cast(bytes, _blob(params, "Plaintext")), _context(params)
    _algorithm(params)
    _dry_run(params, lambda: kms.check_usable(key_ref))
    out = kms.encrypt(key_ref, plaintext, context)
    return {"CiphertextBlob": _b64(out.blob), "KeyId": out.key_arn, "EncryptionAlgorithm": SYMMETRIC_DEFAULT}


def _decrypt(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    blob, key_ref = cast(bytes, _blob(params, "CiphertextBlob")), _str(params, "KeyId", required=False)
    _algorithm(params)
    _refuse_recipient(params)
    _dry_run(params, lambda: kms.check_usable(key_ref or unpack_blob(blob).key_id))
    out = kms.decrypt(blob, _context(params), key_ref)
    return {"KeyId": out.key_arn, "Plaintext": _b64(out.plaintext), "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "KeyMaterialId": material_id(_key_uuid(out.key_arn), out.key_version)}


def _generate_data_key(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    key_ref = _key_id(params)
    spec, count = _str(params, "KeySpec", required=False), _int(params, "NumberOfBytes", None)
    if (spec is None) == (count is None):
        raise _invalid("Please specify either number of bytes or key spec (not both).")
    if spec is not None and spec not in DATA_KEY_BYTES:
        raise _invalid(f"KeySpec must be one of {', '.join(DATA_KEY_BYTES)}.")
    _refuse_recipient(params)
    _dry_run(params, lambda: kms.check_usable(key_ref))
    out = kms.generate_data_key(key_ref, _context(params), DATA_KEY_BYTES[spec] if spec else cast(int, count))
    return {"CiphertextBlob": _b64(out.blob), "Plaintext": _b64(out.plaintext), "KeyId": out.key_arn,
            "KeyMaterialId": material_id(_key_uuid(out.key_arn), out.key_version)}


def _re_encrypt(kms: Kms, principal: Principal, params: Params) -> dict[str, Any]:
    blob, destination = cast(bytes, _blob(params, "CiphertextBlob")), _key_id(params, "DestinationKeyId")
    source = _str(params, "SourceKeyId", required=False)
    _algorithm(params, "SourceEncryptionAlgorithm")
    _algorithm(params, "DestinationEncryptionAlgorithm")
    _dry_run(params, lambda: kms.check_usable(source or unpack_blob(blob).key_id)
             and kms.check_usable(destination))
    out = kms.re_encrypt(blob, destination, _context(params, "SourceEncryptionContext"),
                         _context(params, "DestinationEncryptionContext"), source)
    return {"CiphertextBlob": _b64(out.blob), "SourceKeyId": out.source_key_arn, "KeyId": out.key_arn,
            "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT, "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "SourceKeyMaterialId": material_id(_key_uuid(out.source_key_arn), out.source_key_version),
            "DestinationKeyMaterialId": material_id(_key_uuid(out.key_arn), out.key_version)}


def _key_uuid(arn: str) -> str:
    return arn.rpartition("/")[2]


# ---- auditing ---------------------------------------------------------------------------------
def audit_shape(kms: Kms, name: str, params: Mapping[str, Any],
                response: dict[str, Any] | None) -> AuditShape:
    """The `OperationSpec.auditor` of every KMS operation: no plaintext or ciphertext, key resources."""
    request, kept = redact(name, params, response)
    resources = audit_resources(kms, name, params, response) if response is not None else None
    return request, kept, resources


def redact(name: str, params: Mapping[str, Any], response: Mapping[str, Any] | None
           ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(requestParameters, responseElements) for the audit record of a KMS call: no plaintext
    or ciphertext; like CloudTrail, no response for read-only calls (crypto ones included)."""
    request = {k: v for k, v in params.items() if k not in SECRET_FIELDS}
    if response is None or _read_only(name):
        return request, None
    return request, {k: v for k, v in response.items() if k not in SECRET_FIELDS}


def _read_only(name: str) -> bool:
    op = KMS.operations.get(name)
    return op is not None and op.read_only


def audit_resources(kms: Kms, name: str, params: Mapping[str, Any], response: Mapping[str, Any] | None
                    ) -> list[dict[str, str]] | None:
    """CloudTrail `resources` of a KMS call: every key it used, as AWS::KMS::Key entries."""
    arns: list[str] = []
    answer = response or {}
    for value in (answer.get("KeyMetadata", {}).get("Arn"), answer.get("SourceKeyId"), answer.get("KeyId")):
        if isinstance(value, str) and value.startswith("arn:") and value not in arns:
            arns.append(value)
    if not arns:
        for field_name in ("KeyId", "TargetKeyId", "DestinationKeyId", "SourceKeyId"):
            ref = params.get(field_name)
            if isinstance(ref, str):
                try:
                    arns.append(kms.resolve(ref))
                except KmsError:
                    continue
    return [{"accountId": arn.split(":")[4], "type": "AWS::KMS::Key", "ARN": arn} for arn in arns] or None


def _op(handler: Callable[[Kms, Principal, Params], dict[str, Any]], permission: str,
        read_only: bool = False) -> OperationSpec[Kms]:
    return OperationSpec(handler, permission, read_only, audit_shape)


def _kms_of(service: Service) -> Kms:
    return service.kms


KMS: ServiceSpec[Kms] = ServiceSpec(
    name="kms", title="KMS", signing_name="kms", protocol="json", event_source=audit.KMS_SOURCE,
    api_version="2014-11-01", target_prefix=KMS_TARGET_PREFIX.rstrip("."), context=_kms_of,
    operations={
        "CreateKey": _op(_create_key, "kms:write"),
        "DescribeKey": _op(_describe_key, "kms:read", read_only=True),
        "ListKeys": _op(_list_keys, "kms:read", read_only=True),
        "ListResourceTags": _op(_list_resource_tags, "kms:read", read_only=True),
        "CreateAlias": _op(_create_alias, "kms:write"),
        "ListAliases": _op(_list_aliases, "kms:read", read_only=True),
        "DeleteAlias": _op(_delete_alias, "kms:write"),
        "EnableKey": _op(_enable_key, "kms:write"),
        "DisableKey": _op(_disable_key, "kms:write"),
        "ScheduleKeyDeletion": _op(_schedule_key_deletion, "kms:write"),
        "CancelKeyDeletion": _op(_cancel_key_deletion, "kms:write"),
        "EnableKeyRotation": _op(_enable_key_rotation, "kms:write"),
        "DisableKeyRotation": _op(_disable_key_rotation, "kms:write"),
        "GetKeyRotationStatus": _op(_get_key_rotation_status, "kms:read", read_only=True),
        "RotateKeyOnDemand": _op(_rotate_key_on_demand, "kms:write"),
        # CloudTrail records cryptographic operations as read-only: they change no resource.
        "Encrypt": _op(_encrypt, "kms:encrypt", read_only=True),
        "Decrypt": _op(_decrypt, "kms:decrypt", read_only=True),
        "GenerateDataKey": _op(_generate_data_key, "kms:encrypt", read_only=True),
        "ReEncrypt": _op(_re_encrypt, "kms:encrypt", read_only=True),
    })
