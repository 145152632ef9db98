"""The HTTP surface: a raw ASGI app (uvicorn) that authenticates, authorises, audits and routes."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypedDict
from xml.sax.saxutils import escape as xml_escape

import orjson

from trailkeeper import audit, lake, records
from trailkeeper._internal.text import bounded
from trailkeeper.api import cbor, iam_query, json11, operations, sns
from trailkeeper.api.protocol import HEALTH_PATH
from trailkeeper.api.refusals import RefusalLimiter
from trailkeeper.api.registry import AuditShape, Found, Registry, ServiceSpec
from trailkeeper.api.s3 import S3Request, handle_s3
from trailkeeper.api.s3 import error_response as s3_error_response
from trailkeeper.api.services import DEFAULT_REGISTRY
from trailkeeper.api.sigv4 import SignedRequest, verify
from trailkeeper.errors import (
    AuthError,
    BacklogFullError,
    HistoryError,
    IdentityError,
    KmsError,
    RecordError,
    SpoolError,
    TrailError,
    TrailkeeperError,
)
from trailkeeper.identity import Principal, allowed
from trailkeeper.notify.topics import CERTIFICATE_PREFIX
from trailkeeper.service import Service

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# The native API's signing name: requests signed for it (or unsigned) use trailkeeper's own JSON API.
SIGNING_SERVICE = "trailkeeper"
JSON_TYPE = "application/json"
S3_DATA_OPERATIONS = frozenset({"GetObject", "HeadObject", "ListObjects", "ListObjectsV2"})
MAX_BODY_BYTES = 2 * 1024 * 1024  # ingest allows 1 MB; the rest is headroom for a clear 4xx
INGEST_PATH = "/v1/events"
OPS_PREFIX = "/v1/ops/"
INGEST_OPERATION = "PutEvents"
BACKPRESSURE_MAX_WAIT_S = 5.0
BACKPRESSURE_POLL_S = 0.01
MAX_KEY_ID_CHARS = 128  # an access key id claimed by an unsigned request, as kept in its record
FLOOD_TARPIT_S = 0.05  # how late a flooding source's refusals are answered
# The services spoken in the Query protocol, by service name: how each differs (api/iam_query.py).
QUERY_DIALECTS: dict[str, iam_query.QueryDialect] = {"iam": iam_query.IAM_DIALECT, "sns": sns.SNS_DIALECT}
# S3 names an unknown access key differently from the other services.
_S3_AUTH_CODES = {"InvalidClientTokenId": "InvalidAccessKeyId", "MissingAuthenticationToken": "AccessDenied"}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra or {}
        self.close = False  # end the connection after this answer (a flooding source)


def error_body(code: str, message: str, extra: dict[str, Any] | None = None) -> bytes:
    return orjson.dumps({"__type": code, "message": message, **(extra or {})})


def _error_answer(error: HttpError, scope: Scope, spec: ServiceSpec[Any] | None) -> tuple[int, bytes, list[tuple[str, str]]]:
    """An error in the protocol the client speaks: XML for Query (IAM) and REST-XML (S3), JSON
    otherwise, so that botocore reads the real code (SignatureDoesNotMatch, not a parse error)."""
    protocol = spec.protocol if spec is not None else "native"
    if protocol == "query":
        request_id = str(uuid.uuid4())
        namespace = QUERY_DIALECTS.get(spec.name if spec is not None else "iam", iam_query.IAM_DIALECT).namespace
        body = iam_query.error_xml(error.code, str(error), request_id, sender=error.status < 500, namespace=namespace)
        return error.status, body, [("content-type", iam_query.CONTENT_TYPE), ("x-amzn-requestid", request_id)]
    if protocol == "rest-xml":
        code = _S3_AUTH_CODES.get(error.code, error.code)
        answer = s3_error_response(error.status, code, str(error), scope["method"])
        return answer.status, answer.body, answer.headers
    if protocol == "smithy-rpc-v2-cbor" and _header(scope, b"x-amz-target") is None:
        status, headers, body = cbor.failure(error.code, str(error), error.status)
        return status, body, headers
    if spec is not None and protocol in ("json", "smithy-rpc-v2-cbor"):
        status, headers, body = json11.failure(spec, error.code, str(error), error.status, error.extra)
        return status, body, headers
    content_type = JSON_TYPE
    return error.status, error_body(error.code, str(error), error.extra), [("content-type", content_type)]


class App:
    def __init__(self, service: Service, workers: int = 8, registry: Registry = DEFAULT_REGISTRY) -> None:
        """`registry` holds every service and operation answered (tests add test-only ones)."""
        self.service = service
        self.registry = registry
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="api")
        self.refusals = RefusalLimiter()
        self._domains: dict[str, Any] = {}
        service.add_periodic(self.report_suppressed)

    def _domain_of(self, spec: ServiceSpec[Any]) -> Any:
        """The domain a spec's handlers receive, built once: the components it names live as
        long as the service."""
        domain = self._domains.get(spec.name)
        if domain is None:
            domain = self._domains[spec.name] = spec.context(self.service)
        return domain

    def report_suppressed(self) -> None:
        """Once per interval: how many unauthenticated refusals went unrecorded, from where."""
        dropped = self.refusals.summary_due()
        if dropped is not None:
            self.service.emit_service("UnauthenticatedRequestsSuppressed", dropped.details())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers: list[tuple[str, str]] = [("content-type", JSON_TYPE)]
        try:
            status, body, headers = await self._handle(scope, receive)
        except HttpError as e:
            status, body, headers = _error_answer(e, scope, self.registry.service(_signing_service(scope)))
            if e.close:
                headers = [*headers, ("connection", "close")]
        except Exception:
            log.exception("internal error")
            status, body = 500, error_body("InternalFailure", "internal error; the request was not recorded, retry it")
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if not any(k == "content-length" for k, _ in headers):
            raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[str, str]]]:
        path: str = scope["path"]
        method: str = scope["method"]
        json_headers = [("content-type", JSON_TYPE)]
        if path == HEALTH_PATH and method == "GET":
            return 200, orjson.dumps({"status": "ok", "region": self.service.account.region}), json_headers
        if method == "GET" and path.startswith(CERTIFICATE_PREFIX):
            # SigningCertURL: unauthenticated, as on AWS (receivers fetch it to verify messages).
            pem: bytes | None = await self._run(self.service.runtime.notifications.certificate, path)
            if pem is None:
                raise HttpError(404, "NotFound", f"No certificate at {path}; take the SigningCertURL of a message.")
            return 200, pem, [("content-type", "application/x-x509-ca-cert")]
        try:
            body = await _read_body(receive, MAX_BODY_BYTES, self.service.config.body_timeout.total_seconds())
        except HttpError as e:  # too large to read, so never authenticated: a bounded refusal
            recorded = await self._refuse_unauthenticated(scope, "", None, e.code, str(e))
            e.close = e.close or not recorded
            raise
        request = _signed_request(scope, body)
        if sns.is_link(method, path, request.query, request.headers):
            status, answer, headers = await self._run(self._sns_link, request.query, scope)
            return int(status), bytes(answer), list(headers)
        # Requests are routed by the service named in the SigV4 credential scope, as AWS does,
        # to the adapter of the protocol that service speaks.
        spec = self.registry.service(_signing_service(scope))
        if spec is not None and spec.protocol == "json":
            return await self._json(spec, request, scope)
        if spec is not None and spec.protocol == "rest-xml":
            return await self._s3(spec, request, scope)
        if spec is not None and spec.protocol == "query":
            return await self._query(spec, request, scope)
        if spec is not None and spec.protocol == "rest-json":
            return await self._put_audit_events(request, scope)
        if spec is not None and spec.protocol == "smithy-rpc-v2-cbor":
            # The same operations in AWS JSON 1.0 for clients whose botocore predates CBOR.
            if "x-amz-target" in request.headers:
                return await self._json(spec, request, scope)
            return await self._cbor(spec, request, scope)
        operation = INGEST_OPERATION if path == INGEST_PATH else path[len(OPS_PREFIX):] if path.startswith(OPS_PREFIX) else ""
        principal = await self._authenticate(request, operation, scope)
        if path == INGEST_PATH and method == "POST":
            status, response = await self._ingest(principal, request, scope)
            return status, response, json_headers
        if path.startswith(OPS_PREFIX) and method == "POST":
            status, response = await self._run(self._operation, principal, operation, body, scope)
            return int(status), bytes(response), json_headers
        raise HttpError(404, "UnknownOperationException", f"No operation at {method} {path}; use POST /v1/events or POST /v1/ops/{{Operation}} (docs/contracts.md)")

    async def _json(self, spec: ServiceSpec[Any], request: SignedRequest, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]]:
        """AWS JSON (1.1, or the spec's version): X-Amz-Target `<spec.target_prefix>.<Operation>`; every call is audited."""
        target = request.headers.get("x-amz-target", "")
        named = spec.operation_of_target(target)
        principal = await self._authenticate(request, named or target.rpartition(".")[2] or "Unknown", scope)
        found = self.registry.find(named, spec.name) if named is not None else None
        if found is not None and found.operation.inline:
            try:
                response = await self._operation_inline(principal, named or "", json11.json_object(request.body), scope,
                                                        spec.name)
            except HttpError as e:
                status, headers, body = json11.failure(spec, e.code, str(e), e.status, e.extra)
                return status, body, headers
            except json11.JsonProtocolError as e:
                status, headers, body = json11.failure(spec, e.code, str(e), e.status)
                return status, body, headers
            status, headers, body = json11.success(spec, response)
            return status, body, headers

        def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
            try:
                return self._call_operation(principal, operation, params, scope, spec.name)
            except HttpError as e:
                raise json11.JsonProtocolError(e.code, str(e), e.status) from e

        status, headers, body = await self._run(json11.exchange, spec, target, request.body, call)
        return status, body, headers

    async def _cbor(self, spec: ServiceSpec[Any], request: SignedRequest, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]]:
        """Smithy RPC v2 CBOR: POST /service/<spec.target_prefix>/operation/<Operation>; every call is audited."""
        named = scope["path"].rpartition("/")[2]
        principal = await self._authenticate(request, named if named in spec.operations else "Unknown", scope)

        def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
            try:
                return self._call_operation(principal, operation, params, scope, spec.name)
            except HttpError as e:
                raise cbor.CborProtocolError(e.code, str(e), e.status) from e

        status, headers, body = await self._run(cbor.exchange, spec, scope["path"], request.body, call)
        return status, body, headers

    async def _put_audit_events(self, request: SignedRequest, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]]:
        """cloudtrail-data PutAuditEvents (rest-json): events from non-AWS sources via a channel."""
        principal = await self._authenticate(request, "PutAuditEvents", scope)
        if scope["method"] != "POST" or scope["path"] != "/PutAuditEvents":
            raise HttpError(404, "UnknownOperationException", "cloudtrail-data answers POST /PutAuditEvents only.")
        if not allowed(principal.role, "events:write"):
            await self._run(self._record_denied, principal, "PutAuditEvents", scope)
            raise HttpError(403, "ChannelInsufficientPermission", f"User {principal.arn} may not write events.")
        try:
            self.service.ingest.admit()
        except BacklogFullError as e:
            body = orjson.dumps({"message": f"events were not stored: {e}"})
            return 503, body, [("content-type", JSON_TYPE), ("x-amzn-errortype", "ServiceUnavailableException")]
        query = urllib.parse.parse_qs(request.query)
        channel = query.get("channelArn", [""])[0]
        external_id = query.get("externalId", [None])[0]
        try:
            status, response = await self._run(
                lake.put_audit_events, self.service, caller_of(principal), channel, external_id, request.body,
                _client_ip(scope), request.headers.get("user-agent", "unknown"))
        except TrailError as e:
            body = orjson.dumps({"message": str(e)})
            return e.status, body, [("content-type", JSON_TYPE), ("x-amzn-errortype", e.code)]
        return status, orjson.dumps(response), [("content-type", JSON_TYPE)]

    async def _query(self, spec: ServiceSpec[Any], request: SignedRequest, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]]:
        """A service over the Query protocol (IAM, SNS: XML answers), by its dialect."""
        dialect = QUERY_DIALECTS.get(spec.name, iam_query.IAM_DIALECT)
        try:
            action, _ = iam_query.parse_query(request.body, request.query, dialect.api_version)
        except iam_query.QueryError:
            action = "Unknown"
        principal = await self._authenticate(request, action, scope)

        def call(operation: str, params: dict[str, Any]) -> dict[str, Any]:
            try:
                return self._call_operation(principal, operation, params, scope, spec.name)
            except HttpError as e:
                code = dialect.access_denied if e.code == "AccessDeniedException" else e.code  # the service's spelling
                raise iam_query.QueryError(code, str(e), e.status) from e

        def refused(action: str, params: dict[str, Any], code: str, message: str) -> None:
            self.service.emit(audit.api_call_record(
                self._call_context(scope), principal_identity(principal), bounded(action, 128),
                {bounded(k, 128): bounded(v) for k, v in list(params.items())[:50]}, None, code, bounded(message),
                event_source=spec.event_source))

        status, headers, body = await self._run(dialect.exchange, request.body, request.query, call,
                                                str(uuid.uuid4()), frozenset(spec.operations), refused)
        return status, body, headers

    def _sns_link(self, query: str, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]]:
        """An SNS SubscribeURL or UnsubscribeURL, fetched without a signature: answered, and
        recorded (before the answer) as a call by an unknown caller. Refused links count against
        the unauthenticated refusals' budget, so guessing tokens cannot flood the trail."""
        request_id = str(uuid.uuid4())
        done = sns.link_call(self.service.runtime.notifications, query, request_id)
        if done.error_code is not None and not self.refusals.admit(_client_ip(scope), done.error_code):
            return done.status, done.body, [("content-type", sns.CONTENT_TYPE), ("connection", "close")]
        identity = audit.anonymous_identity(None, self.service.account.account_id)
        self.service.emit(audit.api_call_record(
            self._call_context(scope), identity, done.action, done.request, done.response, done.error_code,
            done.error_message, event_source=sns.SNS.event_source))
        return done.status, done.body, [("content-type", sns.CONTENT_TYPE), ("x-amzn-requestid", request_id)]

    async def _s3(self, spec: ServiceSpec[Any], request: SignedRequest, scope: Scope) -> tuple[int, bytes, list[tuple[str, str]]]:
        """The read-only S3 gateway over trail destinations; reads of audit logs are audited."""
        operation = _s3_operation(scope["method"], request.path)
        principal = await self._authenticate(request, operation, scope)
        s3_request = S3Request(scope["method"], request.path, request.query, request.headers,
                               can_decrypt=allowed(principal.role, "kms:decrypt"))
        if scope["method"] in ("GET", "HEAD") and not allowed(principal.role, "logs:read"):
            await self._run(self._record_denied, principal, operation, scope)
            return _s3_denied(f"User {principal.arn} may not read audit logs (role {principal.role}).")
        ctx = self._call_context(scope)
        identity = principal_identity(principal)

        def record(op: str, params: dict[str, Any] | None, error_code: str | None, error_message: str | None,
                   resources: list[dict[str, str]] | None) -> None:
            entry = audit.api_call_record(ctx, identity, op, params, None, error_code, error_message, resources,
                                          event_source=spec.event_source)
            if op in S3_DATA_OPERATIONS:
                entry.update(eventCategory="Data", managementEvent=False, readOnly=True)
            self.service.emit(entry)

        response = await self._run(handle_s3, self.service, s3_request, record)
        return response.status, response.body, response.headers

    # ---- authentication (every refusal is recorded: PCI DSS 10.2.1.4) ----
    async def _authenticate(self, request: SignedRequest, operation: str, scope: Scope) -> Principal:
        svc = self.service
        owner: list[Principal] = []

        def lookup_secret(key_id: str) -> str | None:
            # One key lookup per request: the owner found here is the authenticated principal.
            found = svc.identity.active_key(key_id)
            if found is None:
                return None
            owner.append(found[0])
            return found[1]

        try:
            verify(request, lookup_secret, svc.clock.now(), svc.account.region,
                   self.registry.signing_names | {SIGNING_SERVICE}, svc.config.max_clock_skew)
            return owner[0]
        except AuthError as e:
            recorded = await self._refuse_unauthenticated(scope, operation, _claimed_key(request), e.code, str(e))
            error = HttpError(e.status, e.code, str(e))
            error.close = not recorded
            raise error from e

    async def _refuse_unauthenticated(self, scope: Scope, operation: str, key_id: str | None, code: str,
                                      message: str) -> bool:
        """Record a refusal of a request nobody signed for, unless its source is flooding: then
        it is counted in the next UnauthenticatedRequestsSuppressed record, and answered late on
        a connection that is then closed, so that a flood costs its sender more than this server
        (a pipelined flood loses every request queued behind it). True if recorded."""
        if self.refusals.admit(_client_ip(scope), code):
            await self._run(self._record_refusal, operation or scope["path"], key_id, code, message, scope)
            return True
        # Jittered, so that a flood's connections do not all come back in one burst.
        await asyncio.sleep(FLOOD_TARPIT_S * (0.5 + random.random()))
        return False

    def _record_refusal(self, operation: str, key_id: str | None, code: str, message: str, scope: Scope) -> None:
        svc = self.service
        key_id = bounded(key_id, MAX_KEY_ID_CHARS) if key_id else None
        identity = audit.anonymous_identity(key_id, svc.account.account_id)
        resolved = svc.identity.resolve(key_id) if key_id else None
        if resolved is not None:
            identity = principal_identity(resolved[0])
        found = self.registry.find(operation)
        record = audit.api_call_record(self._call_context(scope), identity, bounded(operation) or "Unknown", None, None,
                                       code, bounded(message), **_recorded_as(found))
        svc.emit(record)

    def _call_context(self, scope: Scope) -> audit.CallContext:
        svc = self.service
        agent = bounded(_header(scope, b"user-agent") or "") or "unknown"
        return audit.CallContext(svc.account.account_id, svc.account.region, _client_ip(scope), agent,
                                 svc.clock.now(), str(uuid.uuid4()))

    # ---- ingest ----
    async def _ingest(self, principal: Principal, request: SignedRequest, scope: Scope) -> tuple[int, bytes]:
        svc = self.service
        if not allowed(principal.role, "events:write"):
            await self._run(self._record_denied, principal, INGEST_OPERATION, scope)
            raise HttpError(403, "AccessDenied", f"User {principal.arn} is not authorized to write events (role {principal.role}).")
        self._admit()
        await self._wait_for_indexer()
        issued = records.EventIdLog()
        caller = caller_of(principal)
        ctx = svc.ingest.context(caller, _client_ip(scope), bounded(request.headers.get("user-agent", "")) or "unknown",
                                 issued)
        batch: list[Any] = []
        try:
            batch = records.parse_batch(request.body)
            bodies = svc.ingest.normalise(batch, ctx)
        except RecordError as e:
            extra: dict[str, Any] = {}
            if e.index is not None:
                extra["index"] = e.index
            if e.path:
                extra["path"] = e.path
            forged = records.reserved_sources_named(batch, caller.role)
            if forged:
                await self._run(self._record_forged_source, principal, forged, str(e), scope)
            raise HttpError(400, "InvalidRecord", str(e), extra) from e
        idem_key = request.headers.get("idempotency-key")
        idem_hash = hashlib.sha256(request.body).digest() if idem_key else None
        try:
            result = await asyncio.wrap_future(svc.ingest.submit(bodies, idem_key=idem_key, idem_hash=idem_hash))
        except SpoolError as e:
            if "idempotency" in str(e):
                raise HttpError(409, "IdempotencyConflict", str(e)) from e
            raise HttpError(503, "ServiceUnavailable", f"events were not stored: {e}; retry later") from e
        ids = await self._run(svc.ingest.acknowledged_ids, result, issued.issued) if result.duplicate else issued.issued
        return 200, orjson.dumps({"EventIds": ids, "Duplicate": result.duplicate})

    def _admit(self) -> None:
        try:
            self.service.ingest.admit()
        except BacklogFullError as e:
            raise HttpError(503, "ServiceUnavailable", f"events were not stored: {e}") from e

    async def _wait_for_indexer(self) -> None:
        """Back-pressure: an acknowledged event must be searchable within about a second, so
        while the history indexer is too far behind, new batches wait (bounded) before they
        are accepted. Nothing is refused; producers just see slower acknowledgements."""
        svc = self.service
        deadline = asyncio.get_running_loop().time() + BACKPRESSURE_MAX_WAIT_S
        while svc.index_lag() > svc.config.max_index_lag_events:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(BACKPRESSURE_POLL_S)

    def _record_forged_source(self, principal: Principal, forged: list[tuple[int, str, str]], message: str,
                              scope: Scope) -> None:
        """A caller tried to write records in trailkeeper's own name: refused, and recorded."""
        named = [{"index": i, "eventSource": source, "eventName": name} for i, source, name in forged]
        record = audit.api_call_record(self._call_context(scope), principal_identity(principal), INGEST_OPERATION,
                                       {"reservedEventSources": named}, None, "InvalidRecord",
                                       message[:records.MAX_ERROR_MESSAGE_CHARS])
        self.service.emit(record)

    def _record_denied(self, principal: Principal, operation: str, scope: Scope, event_source: str = audit.CLOUDTRAIL_SOURCE) -> None:
        record = audit.api_call_record(self._call_context(scope), principal_identity(principal), operation, None, None,
                                       "AccessDenied", f"role {principal.role} may not call {operation}",
                                       event_source=event_source)
        self.service.emit(record)

    # ---- operations ----
    def _operation(self, principal: Principal, name: str, body: bytes, scope: Scope) -> tuple[int, bytes]:
        """Blocking (runs on the pool): run, audit durably, answer."""
        outcome = self._execute(principal, name, self._params_of(name, body), scope)
        self.service.emit(outcome.record)
        return 200, orjson.dumps(outcome.result())

    async def _operation_inline(self, principal: Principal, name: str, params: dict[str, Any],
                                scope: Scope, service: str | None = None) -> dict[str, Any]:
        """Run a short, bounded operation on the event loop; only the wait for its audit
        record's group commit is asynchronous. Skipping the pool saves two thread hand-offs
        per request, and with them most of the GIL contention of a busy server."""
        outcome = self._execute(principal, name, params, scope, service)
        await asyncio.wrap_future(self.service.submit(outcome.record))
        return outcome.result()

    def _call_operation(self, principal: Principal, name: str, params: dict[str, Any], scope: Scope,
                        service: str | None = None) -> dict[str, Any]:
        """Authorise, run and audit one operation; every protocol adapter ends here."""
        outcome = self._execute(principal, name, params, scope, service)
        self.service.emit(outcome.record)
        return outcome.result()

    def _execute(self, principal: Principal, name: str, params: dict[str, Any], scope: Scope,
                 service: str | None = None) -> _Outcome:
        """Authorise and run one operation; the caller makes the audit record durable before
        it answers (an answer, or an error, is never sent for an unrecorded call)."""
        found = self.registry.find(name, service)
        if found is None:
            raise HttpError(400, "UnknownOperationException", f"Unknown operation {name}.")
        op, recorded_as = found.operation, _recorded_as(found)
        # The handler gets the one domain its spec names, not the whole runtime.
        domain = self._domain_of(found.service)
        ctx = self._call_context(scope)
        identity = principal_identity(principal)
        # Secrets never reach the audit record: each operation says what its record keeps.
        shape = op.auditor or _default_audit(self.service, found.service)
        request_params = shape(domain, name, params, None)[0]
        if not allowed(principal.role, op.permission):
            message = f"User: {principal.arn} is not authorized to perform: {name}"
            record = audit.api_call_record(ctx, identity, name, request_params, None, "AccessDenied", message,
                                           **recorded_as)
            return _Outcome(record, error=HttpError(403, "AccessDeniedException", message))
        try:
            response = op.handler(domain, principal, params)
        except (TrailError, IdentityError, KmsError) as e:
            return _failed(audit.api_call_record(ctx, identity, name, request_params, None, e.code, str(e),
                                                 **recorded_as),
                           HttpError(e.status, e.code, str(e)), e)
        except (HistoryError, TrailkeeperError) as e:
            code = getattr(e, "code", "InvalidParameterException")
            status = getattr(e, "status", 400)  # a ResourceNotFound is a 404 where the service says so
            return _failed(audit.api_call_record(ctx, identity, name, request_params, None, code, str(e),
                                                 **recorded_as),
                           HttpError(status if isinstance(status, int) else 400, code, str(e)), e)
        request_params, kept, resources = shape(domain, name, params, response)
        # Like CloudTrail, the record of a read-only call keeps no response.
        record = audit.api_call_record(ctx, identity, name, request_params, None if op.read_only else kept,
                                       resources=resources, **recorded_as)
        return _Outcome(record, response=response)

    def _params_of(self, name: str, body: bytes) -> dict[str, Any]:
        if self.registry.find(name) is None:
            raise HttpError(400, "UnknownOperationException", f"Unknown operation {name}.")
        try:
            return json11.json_object(body)
        except json11.JsonProtocolError as e:
            raise HttpError(e.status, e.code, str(e)) from e


@dataclass(frozen=True)
class _Outcome:
    """One operation's answer (or error) and the audit record to make durable before it."""

    record: dict[str, Any]
    response: dict[str, Any] | None = None
    error: HttpError | None = None

    def result(self) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return self.response if self.response is not None else {}


def _failed(record: dict[str, Any], error: HttpError, cause: Exception) -> _Outcome:
    error.__cause__ = cause
    return _Outcome(record, error=error)


class _RecordedAs(TypedDict):
    event_source: str
    read_only: bool | None


def _recorded_as(found: Found | None) -> _RecordedAs:
    """The event source and read-only flag of a call's audit record, from its spec."""
    if found is None:
        return {"event_source": audit.CLOUDTRAIL_SOURCE, "read_only": None}
    return {"event_source": found.service.event_source, "read_only": found.operation.read_only}


def _default_audit(service: Service, spec: ServiceSpec[Any]) -> Callable[[object, str, dict[str, Any], dict[str, Any] | None], AuditShape]:
    """What a CloudTrail, IAM or native operation's audit record keeps: no secret access key,
    no bulky read results, the trail or user it acted on."""
    def shape(_: object, name: str, params: dict[str, Any], response: dict[str, Any] | None) -> AuditShape:
        request = {k: v for k, v in params.items() if k != "SecretAccessKey"}
        if response is None:
            return request, None, None
        return request, operations.redact_response(response), _resources_for(service, spec, params)
    return shape


def _resources_for(service: Service, spec: ServiceSpec[Any], params: dict[str, Any]) -> list[dict[str, str]] | None:
    trail = params.get("Name") or params.get("TrailName")
    if spec.event_source == audit.CLOUDTRAIL_SOURCE and isinstance(trail, str):
        arn = trail if trail.startswith("arn:") else service.trail_arn(trail)
        return [{"ARN": arn, "accountId": service.account.account_id, "type": "AWS::CloudTrail::Trail"}]
    user = params.get("UserName")
    if spec.event_source == audit.IAM_SOURCE and isinstance(user, str):
        return [{"ARN": f"arn:aws:iam::{service.account.account_id}:user/{user}",
                 "accountId": service.account.account_id, "type": "AWS::IAM::User"}]
    return None


def caller_of(principal: Principal) -> records.Caller:
    role = principal.role or "administrator"
    return records.Caller(
        account_id=principal.account_id,
        identity_type="Root" if principal.is_root else "IAMUser",
        user_name=principal.user_name or "root",
        principal_id=principal.user_id or principal.account_id,
        arn=principal.arn,
        access_key_id=principal.access_key_id,
        role=role,  # type: ignore[arg-type]
    )


def principal_identity(principal: Principal) -> dict[str, Any]:
    return records.caller_identity(caller_of(principal))


async def _read_body(receive: Receive, limit: int, timeout_s: float) -> bytes:
    """The request body, within `limit` bytes and `timeout_s` (a body trickling in a byte at a
    time would otherwise hold its connection and its task for as long as the sender likes)."""
    try:
        async with asyncio.timeout(timeout_s):  # no extra task per request, unlike wait_for
            return await _read_chunks(receive, limit)
    except TimeoutError as e:
        error = HttpError(408, "RequestTimeout", f"the request body did not arrive within {timeout_s:g} s; "
                          "send it at once")
        error.close = True
        raise error from e


async def _read_chunks(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(413, "RequestEntityTooLarge", f"request body exceeds {limit} bytes; send at most 1 MB per batch")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _signed_request(scope: Scope, body: bytes) -> SignedRequest:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return SignedRequest(scope["method"], raw_path.decode("latin-1"), scope.get("query_string", b"").decode("latin-1"),
                         headers, body)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "127.0.0.1"


def _claimed_key(request: SignedRequest) -> str | None:
    auth = request.headers.get("authorization", "")
    marker = "Credential="
    if marker in auth:
        return auth.split(marker, 1)[1].split("/", 1)[0] or None
    return None


def _signing_service(scope: Scope) -> str:
    """The service of the SigV4 credential scope (header or presigned query), '' if none."""
    auth = _header(scope, b"authorization") or ""
    credential = ""
    if "Credential=" in auth:
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0]
    else:
        query = scope.get("query_string", b"").decode("latin-1")
        for part in query.split("&"):
            if part.startswith("X-Amz-Credential="):
                credential = urllib.parse.unquote(part.split("=", 1)[1])
    fields = credential.split("/")
    return fields[3] if len(fields) == 5 else ""


def _s3_operation(method: str, raw_path: str) -> str:
    has_key = "/" in raw_path.lstrip("/")
    if method == "GET":
        return "GetObject" if has_key else "ListObjects" if raw_path.strip("/") else "ListBuckets"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    return {"PUT": "PutObject", "DELETE": "DeleteObject", "POST": "PostObject"}.get(method, method)


def _s3_denied(message: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
            f"<Message>{xml_escape(message)}</Message></Error>").encode()
    return 403, body, [("content-type", "application/xml")]
