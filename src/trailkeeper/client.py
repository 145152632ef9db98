"""Python client for the trailkeeper native HTTP API (see docs/contracts.md, "Native HTTP API").

Every request except `GET /health` is signed with botocore's `SigV4Auth` (service name
`trailkeeper`, the account's region). When no region is given, the client asks the
server once: `GET /health` answers `{"status": "ok", "region": "<account region>"}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx
import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from trailkeeper.errors import ConfigError, TrailkeeperError

SERVICE_NAME = "trailkeeper"
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_BATCH_RECORDS = 100

_CREDENTIALS_HINT = (
    "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: `trailkeeper init` prints the root key, "
    "`trailkeeper key create` makes new ones"
)
_HINTS: dict[str, str] = {
    "InvalidClientTokenId": _CREDENTIALS_HINT,
    "UnrecognizedClientException": _CREDENTIALS_HINT,
    "MissingAuthenticationToken": _CREDENTIALS_HINT,
    "IncompleteSignature": _CREDENTIALS_HINT,
    "SignatureDoesNotMatch": (
        "check AWS_SECRET_ACCESS_KEY, and that the region you sign for is the server's "
        "(leave --region unset to ask the server)"
    ),
    "RequestExpired": "check the system clock: signed requests are accepted for 5 minutes",
    "InvalidSignatureException": "check the system clock and AWS_SECRET_ACCESS_KEY",
    "AccessDenied": "the caller's role does not allow this; use a key of a user with a wider role",
    "AccessDeniedException": "the caller's role does not allow this; use a key of a user with a wider role",
    "IdempotencyConflict": "this Idempotency-Key was used for a different body; use a fresh key",
    "TrailNotFoundException": "list the trails with `trailkeeper trail list`",
    "TrailAlreadyExistsException": "pick another name, or change it with `trailkeeper trail update`",
    "NoSuchEntity": "list users with `trailkeeper user list` and keys with `trailkeeper key list`",
    "EntityAlreadyExists": "pick another name; `trailkeeper user list` shows the existing ones",
    "LimitExceeded": "delete an unused access key first (`trailkeeper key delete KEYID`)",
    "ThrottlingException": "the server is overloaded; retry with back-off",
}


class ApiError(TrailkeeperError):
    """The trailkeeper server answered with an error, or could not be reached.

    `code` is the AWS-style error code (`__type`), `status` the HTTP status (0 when no
    answer arrived), `index`/`path` locate the offending record of a PutEvents batch.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        index: int | None = None,
        path: str | None = None,
        hint: str = "",
    ) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.index = index
        self.path = path
        super().__init__(
            _describe(code, message, status, index, path), hint or _hint_for(code, status)
        )


class EndpointConnectionError(ApiError):
    """No HTTP answer: the server is down, the address is wrong, or the request timed out."""


def _describe(code: str, message: str, status: int, index: int | None, path: str | None) -> str:
    where = []
    if index is not None:
        where.append(f"record {index}")
    if path:
        where.append(f"field {path}")
    place = ", ".join(where)
    # The server's message often names the record already; say it once.
    location = f" ({place})" if place and place not in message else ""
    answer = f" [HTTP {status}]" if status else ""
    return f"{code}: {message}{location}{answer}"


def _hint_for(code: str, status: int) -> str:
    if code in _HINTS:
        return _HINTS[code]
    if status >= 500:
        return "the server failed while handling the request; check the server's log"
    return ""


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ApiError:
    """Map an HTTP error answer (`{"__type", "message", "index"?, "path"?}`) to an ApiError."""
    try:
        document = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    raw_code = document.get("__type") or headers.get("x-amzn-errortype") or f"HTTP{status}"
    code = str(raw_code).split("#")[-1].split(":")[0]
    message = document.get("message") or document.get("Message")
    if not message:
        message = body.decode("utf-8", "replace").strip()[:300] or "no error message in the answer"
    index = document.get("index")
    path = document.get("path")
    return ApiError(
        code,
        str(message),
        status,
        index=index if isinstance(index, int) else None,
        path=str(path) if path else None,
    )


def _epoch(when: datetime) -> float | int:
    """JSON 1.1 timestamps are epoch seconds; whole seconds stay integers."""
    seconds = when.timestamp()
    return int(seconds) if seconds.is_integer() else seconds


def _compact(params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop unset optional parameters so the server applies its own defaults."""
    return {key: value for key, value in params.items() if value is not None}


def _trail_settings(
    destination: str | None,
    s3_key_prefix: str | None,
    enable_log_file_validation: bool | None,
    flush_interval_seconds: int | None,
    digest_interval_seconds: int | None,
    kms_key_id: str | None = None,
    object_lock_days: int | None = None,
) -> dict[str, Any]:
    return _compact(
        {
            "Destination": destination,
            "S3KeyPrefix": s3_key_prefix,
            "EnableLogFileValidation": enable_log_file_validation,
            "FlushIntervalSeconds": flush_interval_seconds,
            "DigestIntervalSeconds": digest_interval_seconds,
            "KmsKeyId": kms_key_id,
            "ObjectLockRetentionDays": object_lock_days,
        }
    )


class Client:
    """Synchronous, SigV4-signing client of one trailkeeper server."""

    def __init__(
        self,
        endpoint: str,
        access_key_id: str,
        secret_access_key: str,
        region: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"endpoint {endpoint!r} is not an http(s) URL",
                hint="use a URL such as http://127.0.0.1:8790",
            )
        if not access_key_id or not secret_access_key:
            raise ConfigError(
                "missing credentials: an access key id and a secret access key are needed",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            )
        self.endpoint = endpoint.rstrip("/")
        self._credentials = Credentials(access_key_id, secret_access_key)
        self._region = region
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport -------------------------------------------------------------------

    @property
    def region(self) -> str:
        """The region requests are signed for; asked from `GET /health` once if not given."""
        if self._region is None:
            self._region = self._discover_region()
        return self._region

    def health(self) -> dict[str, Any]:
        """Unauthenticated liveness answer of the server."""
        response = self._send("GET", "/health", None, {})
        return self._decode(response)

    def _discover_region(self) -> str:
        region = self.health().get("region")
        if not isinstance(region, str) or not region:
            raise ConfigError(
                f"the server at {self.endpoint} did not say which region it serves",
                hint="pass the account region explicitly (--region or TRAILKEEPER_REGION)",
            )
        return region

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
        sign: bool = False,
    ) -> httpx.Response:
        url = self.endpoint + path
        request_headers = dict(headers)
        if sign:
            request_headers = self._signed_headers(method, url, body, request_headers)
        try:
            response = self._http.request(method, url, content=body, headers=request_headers)
        except httpx.TimeoutException as e:
            raise EndpointConnectionError(
                "Timeout",
                f"no answer from {self.endpoint} within the timeout: {e}",
                0,
                hint="the server may be overloaded; retry, or raise the client timeout",
            ) from e
        except httpx.HTTPError as e:
            raise EndpointConnectionError(
                "EndpointConnectionError",
                f"could not reach {url}: {e}",
                0,
                hint=(
                    f"is the server running at {self.endpoint}? start it with `trailkeeper server`, "
                    "or point --endpoint-url / TRAILKEEPER_ENDPOINT at it"
                ),
            ) from e
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content, response.headers)
        return response

    def _signed_headers(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(self._credentials, SERVICE_NAME, self.region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}

    def _decode(self, response: httpx.Response) -> dict[str, Any]:
        try:
            document = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError as e:
            raise ApiError(
                "InvalidResponse",
                f"the answer from {response.request.url} is not JSON: {e}",
                response.status_code,
                hint="is --endpoint-url pointing at a trailkeeper server?",
            ) from e
        if not isinstance(document, dict):
            raise ApiError(
                "InvalidResponse",
                f"the answer from {response.request.url} is not a JSON object",
                response.status_code,
                hint="is --endpoint-url pointing at a trailkeeper server?",
            )
        return document

    def _post(
        self, path: str, payload: object, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = orjson.dumps(payload)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        return self._decode(self._send("POST", path, body, all_headers, sign=True))

    # -- events ----------------------------------------------------------------------

    def put_events(
        self, records: Sequence[Mapping[str, Any]], idempotency_key: str | None = None
    ) -> list[str]:
        """Send one batch (1-100 records) as one request; returns the assigned event ids."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        answer = self._post("/v1/events", {"Records": list(records)}, headers)
        return [str(event_id) for event_id in answer.get("EventIds", [])]

    def put_events_batched(
        self,
        records: Sequence[Mapping[str, Any]],
        batch_size: int = MAX_BATCH_RECORDS,
        idempotency_key_prefix: str | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Send `records` in batches of `batch_size`; returns every event id, in order.

        Batch i carries Idempotency-Key `{prefix}-{i}`, so re-running the same upload with
        the same prefix and batch size stores nothing twice. `on_batch(n)` is called after
        each batch with the number of records it carried.
        """
        if not 1 <= batch_size <= MAX_BATCH_RECORDS:
            raise ConfigError(
                f"batch size {batch_size} is out of range",
                hint=f"use a batch size between 1 and {MAX_BATCH_RECORDS}",
            )
        event_ids: list[str] = []
        for number, start in enumerate(range(0, len(records), batch_size)):
            batch = records[start : start + batch_size]
            key = f"{idempotency_key_prefix}-{number}" if idempotency_key_prefix else None
            event_ids.extend(self.put_events(batch, idempotency_key=key))
            if on_batch is not None:
                on_batch(len(batch))
        return event_ids

    # -- operations ------------------------------------------------------------------

    def call(self, operation: str, **params: Any) -> dict[str, Any]:
        """Invoke `POST /v1/ops/{operation}` with AWS-shaped parameters; returns the answer."""
        if not operation.isalnum():
            raise ConfigError(
                f"operation name {operation!r} is not an AWS operation name",
                hint="use names such as CreateTrail or LookupEvents",
            )
        return self._post(f"/v1/ops/{operation}", params)

    def get_server_status(self) -> dict[str, Any]:
        return self.call("GetServerStatus")

    def create_trail(
        self,
        name: str,
        destination: str | None = None,
        s3_key_prefix: str | None = None,
        enable_log_file_validation: bool | None = None,
        flush_interval_seconds: int | None = None,
        digest_interval_seconds: int | None = None,
        kms_key_id: str | None = None,
        object_lock_days: int | None = None,
    ) -> dict[str, Any]:
        settings = _trail_settings(
            destination,
            s3_key_prefix,
            enable_log_file_validation,
            flush_interval_seconds,
            digest_interval_seconds,
            kms_key_id,
            object_lock_days,
        )
        return self.call("CreateTrail", Name=name, **settings)

    def update_trail(
        self,
        name: str,
        destination: str | None = None,
        s3_key_prefix: str | None = None,
        enable_log_file_validation: bool | None = None,
        flush_interval_seconds: int | None = None,
        digest_interval_seconds: int | None = None,
        kms_key_id: str | None = None,
        object_lock_days: int | None = None,
    ) -> dict[str, Any]:
        settings = _trail_settings(
            destination,
            s3_key_prefix,
            enable_log_file_validation,
            flush_interval_seconds,
            digest_interval_seconds,
            kms_key_id,
            object_lock_days,
        )
        return self.call("UpdateTrail", Name=name, **settings)

    def delete_trail(self, name: str) -> None:
        self.call("DeleteTrail", Name=name)

    def start_logging(self, name: str) -> None:
        self.call("StartLogging", Name=name)

    def stop_logging(self, name: str) -> None:
        self.call("StopLogging", Name=name)

    def put_event_selectors(self, name: str, read_write_type: str) -> dict[str, Any]:
        selector = {"ReadWriteType": read_write_type, "IncludeManagementEvents": True}
        return self.call("PutEventSelectors", TrailName=name, EventSelectors=[selector])

    def describe_trails(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        params = {"trailNameList": list(names)} if names else {}
        return list(self.call("DescribeTrails", **params).get("trailList", []))

    def list_trails(self) -> list[dict[str, Any]]:
        return list(self.call("ListTrails").get("Trails", []))

    def get_trail_status(self, name: str) -> dict[str, Any]:
        return self.call("GetTrailStatus", Name=name)

    def lookup_events(
        self,
        lookup_attributes: Sequence[tuple[str, str]] = (),
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """One LookupEvents page: `{"Events": [...], "NextToken": ...}`."""
        params = _compact(
            {
                "LookupAttributes": [
                    {"AttributeKey": key, "AttributeValue": value}
                    for key, value in lookup_attributes
                ]
                or None,
                "StartTime": _epoch(start_time) if start_time else None,
                "EndTime": _epoch(end_time) if end_time else None,
                "MaxResults": max_results,
                "NextToken": next_token,
            }
        )
        return self.call("LookupEvents", **params)

    def iter_lookup_events(
        self,
        lookup_attributes: Sequence[tuple[str, str]] = (),
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every matching event, following NextToken until the server has no more pages."""
        token: str | None = None
        while True:
            page = self.lookup_events(lookup_attributes, start_time, end_time, page_size, token)
            yield from page.get("Events", [])
            token = page.get("NextToken")
            if not token:
                return

    def list_public_keys(
        self, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> list[dict[str, Any]]:
        params = _compact(
            {
                "StartTime": _epoch(start_time) if start_time else None,
                "EndTime": _epoch(end_time) if end_time else None,
            }
        )
        return list(self.call("ListPublicKeys", **params).get("PublicKeyList", []))

    # -- users and access keys -------------------------------------------------------

    def create_user(self, name: str, role: str) -> dict[str, Any]:
        return dict(self.call("CreateUser", UserName=name, Role=role).get("User", {}))

    def list_users(self) -> list[dict[str, Any]]:
        return list(self.call("ListUsers").get("Users", []))

    def delete_user(self, name: str) -> None:
        self.call("DeleteUser", UserName=name)

    def create_access_key(self, user_name: str | None = None) -> dict[str, Any]:
        """A new key pair; the secret is in this answer only. No user = the caller's own."""
        answer = self.call("CreateAccessKey", **_compact({"UserName": user_name}))
        return dict(answer.get("AccessKey", {}))

    def list_access_keys(self, user_name: str | None = None) -> list[dict[str, Any]]:
        answer = self.call("ListAccessKeys", **_compact({"UserName": user_name}))
        return list(answer.get("AccessKeyMetadata", []))

    def update_access_key(
        self, access_key_id: str, status: str, user_name: str | None = None
    ) -> None:
        params = _compact({"UserName": user_name, "AccessKeyId": access_key_id, "Status": status})
        self.call("UpdateAccessKey", **params)

    def delete_access_key(self, access_key_id: str, user_name: str | None = None) -> None:
        params = _compact({"UserName": user_name, "AccessKeyId": access_key_id})
        self.call("DeleteAccessKey", **params)
