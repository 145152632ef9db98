"""The Smithy RPC v2 CBOR protocol: `POST /service/{service}/operation/{Operation}`, CBOR bodies.

CloudWatch's model lists `smithy-rpc-v2-cbor` before `json` and `query`; SDKs that follow the
model's order speak CBOR to it, while botocore ranks JSON first (so the AWS CLI and boto3 speak
AWS JSON 1.0, answered by `api/json11.py` from the same registry). Requests carry `smithy-protocol: rpc-v2-cbor` and `application/cbor`;
`{service}` is the model's `targetPrefix` (CloudWatch: `GraniteServiceVersion20100801`).
Timestamps travel as CBOR tag 1 (epoch seconds); a body may be empty (no input, or no output).
Errors are bodies `{"__type": code, "message": ...}` with the error's HTTP status; services that
were once Query services (`awsQueryCompatible`) also name the Query code and fault in the
`x-amzn-query-error` header, which botocore prefers when present.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import cbor2

from trailkeeper.api.registry import Params, ServiceSpec
from trailkeeper.errors import TrailkeeperError

CONTENT_TYPE = "application/cbor"
PROTOCOL_HEADER = ("smithy-protocol", "rpc-v2-cbor")
Answer = tuple[int, list[tuple[str, str]], bytes]
Call = Callable[[str, Params], dict[str, Any]]


class CborProtocolError(TrailkeeperError):
    """The request cannot be read: a path naming no operation, or a body that is not a CBOR map."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def operation_path(spec: ServiceSpec[Any], path: str) -> str:
    """The operation `path` names; UnknownOperationException if it is not one of `spec`'s."""
    prefix = f"/service/{spec.target_prefix}/operation/"
    name = path[len(prefix):] if path.startswith(prefix) else ""
    if not name or name not in spec.operations:
        raise CborProtocolError(
            "UnknownOperationException",
            f"No {spec.title} operation at {path!r}; requests go to POST {prefix}<Operation>.", 404)
    return name


def decode(body: bytes) -> Params:
    """The request body as a map (an empty body is `{}`); tag-1 timestamps become aware datetimes."""
    if not body:
        return {}
    try:
        value = cbor2.loads(body)
    except (cbor2.CBORDecodeError, ValueError) as e:
        raise CborProtocolError("SerializationException", f"request body is not CBOR: {e}") from e
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise CborProtocolError("SerializationException", "request body must be a CBOR map with text keys")
    params: Params = _aware(value)
    return params


def _aware(value: Any) -> Any:
    # cbor2 gives tag-1 timestamps as UTC datetimes already; naive ones (from other tags) are UTC
    # by the protocol, so handlers can compare every datetime they get.
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, dict):
        return {k: _aware(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_aware(v) for v in value]
    return value


def encode(value: dict[str, Any]) -> bytes:
    """An answer body: datetimes as tag 1 (botocore reads no other tag); None members left out."""
    return bytes(cbor2.dumps(_without_none(value), datetime_as_timestamp=True, timezone=UTC))


def _without_none(value: Any) -> Any:
    # An absent member and a null differ in CBOR; AWS leaves absent members out, and botocore
    # would hand a null to callers as None where they expect the key to be missing.
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_none(v) for v in value]
    return value


def headers(body: bytes) -> list[tuple[str, str]]:
    return [PROTOCOL_HEADER, ("content-type", CONTENT_TYPE)] if body else [PROTOCOL_HEADER]


def success(response: dict[str, Any]) -> Answer:
    body = encode(response)
    return 200, headers(body), body


def failure(code: str, message: str, status: int = 400) -> Answer:
    body = encode({"__type": code, "message": message})
    fault = "Sender" if status < 500 else "Receiver"
    return status, [*headers(body), ("x-amzn-query-error", f"{code};{fault}")], body


def exchange(spec: ServiceSpec[Any], path: str, body: bytes, call: Call) -> Answer:
    """Answer one request, given a `call(operation, params)` that authorises, runs and audits
    (App._call_operation). Errors carrying an AWS `code` become error bodies; any other
    exception propagates to the app's handler (a 500 that records nothing as a success)."""
    try:
        operation = operation_path(spec, path)
        return success(call(operation, decode(body)))
    except TrailkeeperError as e:
        code, status = getattr(e, "code", None), getattr(e, "status", 400)
        if not isinstance(code, str):
            raise
        return failure(code, str(e), status if isinstance(status, int) else 400)
