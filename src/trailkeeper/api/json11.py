"""The AWS JSON 1.1 protocol: `POST /` with `X-Amz-Target: <prefix>.<Operation>` and a JSON body.

CloudTrail and KMS speak it today (CloudWatch Logs and EventBridge next). Errors are bodies
`{"__type": code, "message": ...}`; the status is the error's own, or 400 for every client
error of a service that answers them so (`ServiceSpec.client_errors_as_400`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from trailkeeper.api.registry import Params, ServiceSpec
from trailkeeper.errors import TrailkeeperError

Answer = tuple[int, list[tuple[str, str]], bytes]
Call = Callable[[str, Params], dict[str, Any]]


class JsonProtocolError(TrailkeeperError):
    """The request cannot be read: an unknown target or a body that is not a JSON object."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def json_object(body: bytes) -> Params:
    """The request body as a JSON object (an empty body is `{}`)."""
    try:
        params = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as e:
        raise JsonProtocolError("SerializationException", f"request body is not JSON: {e}") from e
    if not isinstance(params, dict):
        raise JsonProtocolError("SerializationException", "request body must be a JSON object")
    return params


def operation_named(spec: ServiceSpec[Any], target: str) -> str:
    """The operation `target` names; UnknownOperationException if `spec` has none such."""
    operation = spec.operation_of_target(target)
    if operation is None:
        raise JsonProtocolError("UnknownOperationException", f"Unknown {spec.title} operation {target!r}.")
    return operation


def content_type(spec: ServiceSpec[Any]) -> str:
    return f"application/x-amz-json-{spec.json_version}"


def _epoch(value: Any) -> float:
    # AWS JSON protocols send timestamps as epoch seconds; handlers may answer datetimes.
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode(response: dict[str, Any]) -> bytes:
    return orjson.dumps(response, default=_epoch, option=orjson.OPT_PASSTHROUGH_DATETIME)


def success(spec: ServiceSpec[Any], response: dict[str, Any]) -> Answer:
    return 200, [("content-type", content_type(spec))], encode(response)


def failure(spec: ServiceSpec[Any], code: str, message: str, status: int = 400,
            extra: dict[str, Any] | None = None) -> Answer:
    if spec.client_errors_as_400 and status < 500:
        status = 400
    headers = [("content-type", content_type(spec))]
    if spec.query_compatible:
        headers.append(("x-amzn-query-error", f"{code};{'Sender' if status < 500 else 'Receiver'}"))
    return status, headers, orjson.dumps({"__type": code, "message": message, **(extra or {})})


def exchange(spec: ServiceSpec[Any], target: str, body: bytes, call: Call) -> Answer:
    """Answer one request, given a `call(operation, params)` that authorises, runs and audits
    (App._call_operation). Errors carrying an AWS `code` become error bodies; any other
    exception propagates to the app's handler (a 500 that records nothing as a success)."""
    try:
        operation = operation_named(spec, target)
        return success(spec, call(operation, json_object(body)))
    except TrailkeeperError as e:
        code, status = getattr(e, "code", None), getattr(e, "status", 400)
        if not isinstance(code, str):
            raise
        return failure(spec, code, str(e), status if isinstance(status, int) else 400)
