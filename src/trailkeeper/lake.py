"""CloudTrail Lake ingestion for non-AWS sources: channels and `PutAuditEvents` (formats §7).

A channel is the door an integration writes through; `PutAuditEvents` turns each audit event
of the request into one CloudTrail record (category ActivityAuditLog) and appends it to the
spool. Unlike `Service.record`, a request is not all-or-nothing: every event is judged on its
own and the answer lists the `successful` and `failed` ones, as CloudTrail Lake does.

Choices where AWS documents nothing precise:

* Request-shape problems (body not JSON, 0 or more than 100 events, body over 1 MB, an entry
  without `id`/`eventData`, a bad `externalId`) answer 400 `ValidationException`.
* `eventData` over 256 KiB, or a finished record over trailkeeper's per-record limit, fails
  the event with `FieldTooLong`; unknown `eventData` fields fail it with `InvalidData`.
* An `eventSource` that is not a dotted DNS name fails with `InvalidEventSource` (the record
  could not be delivered or indexed otherwise); a `recipientAccountId` other than ours with
  `InvalidRecipient`.
* Idempotency: the spool key is `lake:{channel ARN}:{id}` and the request hash is SHA-256 of
  `eventData`. A retry with the same id and data answers the first eventID and stores
  nothing; the same id with different data (within the spool's idempotency window) fails
  that event with `DuplicatedAuditEventId`. The same id twice in one request is a 400
  `DuplicatedAuditEventId`.
* The source's own event ID is kept as the top-level field `UID`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from trailkeeper import records
from trailkeeper.clock import Clock, iso_seconds
from trailkeeper.errors import SpoolError, TrailError
from trailkeeper.records import Caller

if TYPE_CHECKING:
    from trailkeeper.ingest import Ingest
    from trailkeeper.spool import Spool

MAX_EVENTS = 100
MAX_REQUEST_BYTES = 1_048_576
MAX_EVENT_DATA_BYTES = 262_144
MAX_VERSION_CHARS = 256
MAX_TYPE_CHARS = 128
MAX_TEXT_CHARS = 1024
MAX_DESTINATIONS = 200
MAX_TAGS = 200
MAX_LIST_RESULTS = 1000
SOURCE_CUSTOM = "Custom"
EVENT_CATEGORY = "ActivityAuditLog"
# CloudTrail Lake's per-event code for a source it refuses; here: a source trailkeeper writes itself.
RESERVED_SOURCE_CODE = "InvalidEventSource"
EVENT_TYPE = "ActivityLog"
DESTINATION_TYPES = ("EVENT_DATA_STORE", "AWS_SERVICE")

_NAME_RE = re.compile(r"[a-zA-Z0-9._-]{3,128}", re.ASCII)
_SOURCE_RE = re.compile(r"[a-zA-Z0-9._/-]{1,256}", re.ASCII)
_LOCATION_RE = re.compile(r"[a-zA-Z0-9._/\-:*]{3,1024}", re.ASCII)
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ARN_RE = re.compile(rf"arn:aws:cloudtrail:[a-z0-9-]+:\d{{12}}:channel/({_UUID})", re.ASCII)
_ID_RE = re.compile(_UUID, re.ASCII)
_EVENT_ID_RE = re.compile(r"[-_A-Za-z0-9]{1,128}", re.ASCII)
_EXTERNAL_ID_RE = re.compile(r"[\w+=,.@:/-]{2,1224}")
_ACCOUNT_RE = re.compile(r"\d{12}", re.ASCII)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EVENT_SOURCE_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+", re.ASCII)

_REQUIRED = ("version", "userIdentity", "eventSource", "eventName", "eventTime", "UID")
_OPTIONAL = ("userAgent", "requestParameters", "responseElements", "additionalEventData", "errorCode",
             "errorMessage", "sourceIPAddress", "recipientAccountId")
_TEXT_LIMITS = {"version": MAX_VERSION_CHARS, "eventSource": MAX_TEXT_CHARS, "eventName": MAX_TEXT_CHARS,
                "eventTime": MAX_TEXT_CHARS, "UID": MAX_TEXT_CHARS, "userAgent": MAX_TEXT_CHARS,
                "errorCode": MAX_TEXT_CHARS, "errorMessage": MAX_TEXT_CHARS, "sourceIPAddress": MAX_TEXT_CHARS,
                "recipientAccountId": MAX_TEXT_CHARS}
_OBJECT_OR_NULL = ("requestParameters", "responseElements", "additionalEventData")
_DUPLICATE_MARK = "reused with a different request"



# ---- channels ---------------------------------------------------------------

@dataclass(frozen=True)
class Channel:
    arn: str
    name: str
    source: str
    destinations: list[dict[str, str]]
    tags: list[dict[str, str]] = field(default_factory=list)
    created: float = 0.0

    @property
    def account_id(self) -> str:
        return self.arn.split(":")[4]


class ChannelRepository(Protocol):
    """Where channels are kept. Each write is one transaction; a missing or taken row is None or
    False, ChannelStore turns that into CloudTrail's errors.
    Implementations: state.channels.SqliteChannelRepository, MemoryChannelRepository."""

    def add(self, channel: Channel) -> bool:
        """False (nothing written) when the ARN or the name is taken."""
        ...

    def get(self, channel_id: str) -> Channel | None:
        """The channel whose ARN ends in `channel/{channel_id}`."""
        ...

    def all(self) -> list[Channel]:
        """Every channel, by ARN."""
        ...

    def remove(self, arn: str) -> bool:
        """False when there was no such channel."""
        ...


class ChannelStore:
    """The channels of an installation, kept in a ChannelRepository; names are unique per account."""

    def __init__(self, repository: ChannelRepository) -> None:
        self.repository = repository

    def create(self, name: str, source: str, destinations: list[dict[str, str]], account: str, region: str,
               tags: list[dict[str, str]] | None = None, now: datetime | None = None) -> Channel:
        check_channel_name(name)
        check_source(source)
        check_destinations(destinations)
        arn = f"arn:aws:cloudtrail:{region}:{account}:channel/{uuid.uuid4()}"
        created = now.timestamp() if now else 0.0
        channel = Channel(arn, name, source, destinations, list(tags or []), created)
        if not self.repository.add(channel):
            raise TrailError("ChannelAlreadyExistsException",
                             f"Channel {name!r} already exists; choose another name or delete it first.")
        return channel

    def get(self, arn_or_id: str) -> Channel:
        """The channel by ARN or by its ID (the UUID after `channel/`)."""
        found = self.repository.get(channel_id(arn_or_id))
        if found is None or (arn_or_id.startswith("arn:") and found.arn != arn_or_id):
            raise TrailError("ChannelNotFoundException", f"Channel {arn_or_id!r} does not exist; "
                             "list channels with ListChannels.")
        return found

    def list(self) -> list[Channel]:
        return self.repository.all()

    def delete(self, arn_or_id: str) -> Channel:
        channel = self.get(arn_or_id)
        self.repository.remove(channel.arn)
        return channel


class _Account(Protocol):
    @property
    def account_id(self) -> str: ...

    @property
    def region(self) -> str: ...


class LakeService(Protocol):
    """What the channel operations and PutAuditEvents use of the service."""

    @property
    def channels(self) -> ChannelStore: ...

    @property
    def account(self) -> _Account: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def ingest(self) -> Ingest: ...

    @property
    def spool(self) -> Spool: ...

    def emit(self, record: dict[str, Any]) -> None: ...


def channel_id(arn_or_id: str) -> str:
    """The channel UUID of an ARN or bare ID; ChannelARNInvalidException when it is neither."""
    match = _ARN_RE.fullmatch(arn_or_id) or _ID_RE.fullmatch(arn_or_id)
    if not match:
        raise TrailError("ChannelARNInvalidException",
                         f"{arn_or_id[:300]!r} is not a channel ARN "
                         "(arn:aws:cloudtrail:REGION:ACCOUNT:channel/UUID) or channel ID (UUID).")
    return match.group(1) if match.re is _ARN_RE else match.group(0)


def check_channel_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise TrailError("InvalidParameterException",
                         "Name must be 3 to 128 characters of letters, digits, '.', '_' and '-'.")
    return name


def check_source(source: object) -> str:
    if not isinstance(source, str) or not (source == SOURCE_CUSTOM or _SOURCE_RE.fullmatch(source)):
        raise TrailError("InvalidSourceException",
                         "Source must be 'Custom' or a partner source name of letters, digits and ._/-.")
    return source


def check_destinations(destinations: object) -> list[dict[str, str]]:
    if not isinstance(destinations, list) or not 1 <= len(destinations) <= MAX_DESTINATIONS:
        raise TrailError("InvalidParameterException",
                         f"Destinations must be a list of 1 to {MAX_DESTINATIONS} {{Type, Location}} objects.")
    for item in destinations:
        if not isinstance(item, dict) or set(item) != {"Type", "Location"}:
            raise TrailError("InvalidParameterException", "Each destination needs exactly Type and Location.")
        if item["Type"] not in DESTINATION_TYPES:
            raise TrailError("InvalidParameterException",
                             f"Destination Type must be one of {', '.join(DESTINATION_TYPES)}.")
        if not isinstance(item["Location"], str) or not _LOCATION_RE.fullmatch(item["Location"]):
            raise TrailError("InvalidParameterException",
                             "Destination Location must be 3 to 1024 characters of letters, digits and ._/-:*.")
    return destinations


def _check_tags(tags: object) -> list[dict[str, str]]:
    if tags is None:
        return []
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise TrailError("InvalidTagParameterException", f"Tags must be a list of at most {MAX_TAGS} tags.")
    for tag in tags:
        if (not isinstance(tag, dict) or not isinstance(tag.get("Key"), str) or not 1 <= len(tag["Key"]) <= 128
                or not isinstance(tag.get("Value", ""), str) or len(tag.get("Value", "")) > 256
                or not set(tag) <= {"Key", "Value"}):
            raise TrailError("InvalidTagParameterException",
                             "Each tag needs a Key of 1 to 128 characters and an optional Value of at most 256.")
    return tags


# ---- channel operations (CloudTrail control plane, AWS JSON shapes) --------

def _channel_param(params: dict[str, Any]) -> str:
    value = params.get("Channel")
    if not isinstance(value, str) or not value:
        raise TrailError("ChannelARNInvalidException", "Channel (an ARN or channel ID) is required.")
    return value


def create_channel(service: LakeService, principal: Any, params: dict[str, Any]) -> dict[str, Any]:
    tags = _check_tags(params.get("Tags"))
    name = check_channel_name(params.get("Name"))
    source = check_source(params.get("Source", SOURCE_CUSTOM))
    destinations = check_destinations(params.get("Destinations"))
    channel = service.channels.create(name, source, destinations, service.account.account_id, service.account.region, tags,
                                       service.clock.now())
    return {"ChannelArn": channel.arn, "Name": channel.name, "Source": channel.source,
            "Destinations": channel.destinations, "Tags": channel.tags}


def get_channel(service: LakeService, principal: Any, params: dict[str, Any]) -> dict[str, Any]:
    channel = service.channels.get(_channel_param(params))
    return {"ChannelArn": channel.arn, "Name": channel.name, "Source": channel.source,
            "SourceConfig": {"ApplyToAllRegions": False, "AdvancedEventSelectors": []},
            "Destinations": channel.destinations, "IngestionStatus": {}}


def list_channels(service: LakeService, principal: Any, params: dict[str, Any]) -> dict[str, Any]:
    limit = params.get("MaxResults", MAX_LIST_RESULTS)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_RESULTS:
        raise TrailError("InvalidParameterException", f"MaxResults must be between 1 and {MAX_LIST_RESULTS}.")
    token = params.get("NextToken")
    if token is not None and not isinstance(token, str):
        raise TrailError("InvalidNextTokenException", "NextToken must be the string a previous call returned.")
    listed = [c for c in service.channels.list() if token is None or c.arn > token]
    page = listed[:limit]
    response: dict[str, Any] = {"Channels": [{"ChannelArn": c.arn, "Name": c.name} for c in page]}
    if len(listed) > limit:
        response["NextToken"] = page[-1].arn
    return response


def delete_channel(service: LakeService, principal: Any, params: dict[str, Any]) -> dict[str, Any]:
    service.channels.delete(_channel_param(params))
    return {}


# ---- PutAuditEvents (cloudtrail-data) ---------------------------------------

@dataclass(frozen=True)
class AuditEvent:
    id: str
    data: str
    checksum: str | None


class EventRefused(Exception):
    """One audit event cannot be ingested; `code` is the per-event CloudTrail Lake error code."""

    def __init__(self, code: str, message: str, forged: bool = False) -> None:
        self.code = code
        self.forged = forged  # it named a source only trailkeeper writes: worth a record of its own
        super().__init__(message)


def put_audit_events(service: LakeService, caller: Caller, channel_arn: str, external_id: str | None, body: bytes,
                     source_ip: str, user_agent: str) -> tuple[int, dict[str, Any]]:
    """Ingest one PutAuditEvents request; returns (HTTP status, response body)."""
    channel = _ingest_channel(service, caller, channel_arn)
    _check_external_id(external_id)
    events = parse_audit_events(body)
    ctx = service.ingest.context(caller, source_ip, user_agent)
    failed: list[dict[str, str]] = []
    pending: list[tuple[AuditEvent, Future[Any], str]] = []
    for event in events:
        try:
            record = build_record(event, channel.arn, ctx)
        except EventRefused as e:
            failed.append(_failure(event.id, e.code, str(e)))
            if e.forged:
                _record_forged_source(service, ctx, channel.arn, event.id, str(e))
            continue
        future = service.ingest.submit([record], idem_key=f"lake:{channel.arn}:{event.id}",
                                       idem_hash=hashlib.sha256(event.data.encode("utf-8")).digest())
        pending.append((event, future, orjson.loads(record)["eventID"]))
    successful = []
    for event, future, event_id in pending:
        try:
            result = future.result()
        except SpoolError as e:
            code = "DuplicatedAuditEventId" if _DUPLICATE_MARK in str(e) else "InternalFailure"
            failed.append(_failure(event.id, code, _spool_message(event.id, code, e)))
            continue
        if result.duplicate:
            event_id = _stored_event_id(service, result.first_seq) or event_id
        successful.append({"id": event.id, "eventID": event_id})
    return 200, {"successful": successful, "failed": failed}


def _record_forged_source(service: LakeService, ctx: records.IngestContext, channel_arn: str, event_id: str,
                          message: str) -> None:
    """Someone tried to write in trailkeeper's own name through a channel: recorded."""
    from trailkeeper import audit

    call = audit.CallContext(ctx.caller.account_id, ctx.region, ctx.source_ip, ctx.user_agent[:MAX_TEXT_CHARS],
                             ctx.received, str(uuid.uuid4()))
    service.emit(audit.api_call_record(call, records.caller_identity(ctx.caller), "PutAuditEvents",
                                       {"channelArn": channel_arn, "id": event_id}, None,
                                       RESERVED_SOURCE_CODE, message, event_source=audit.CLOUDTRAIL_DATA_SOURCE))


def _ingest_channel(service: LakeService, caller: Caller, channel_arn: str) -> Channel:
    if not channel_arn:
        raise TrailError("InvalidChannelARN", "channelArn is required: pass the channel ARN or ID.")
    try:
        channel = service.channels.get(channel_arn)
    except TrailError as e:
        code = "InvalidChannelARN" if e.code == "ChannelARNInvalidException" else "ChannelNotFound"
        raise TrailError(code, str(e)) from e
    if channel.account_id != caller.account_id:
        raise TrailError("ChannelInsufficientPermission",
                         f"Channel {channel.arn} belongs to account {channel.account_id}, not the caller's.")
    return channel


def _check_external_id(external_id: str | None) -> None:
    if external_id is not None and not _EXTERNAL_ID_RE.fullmatch(external_id):
        raise TrailError("ValidationException",
                         "externalId must be 2 to 1224 characters of letters, digits and +=,.@:/_-.")


def _failure(event_id: str, code: str, message: str) -> dict[str, str]:
    return {"id": event_id, "errorCode": code, "errorMessage": message[:MAX_TEXT_CHARS]}


def _spool_message(event_id: str, code: str, error: SpoolError) -> str:
    if code == "DuplicatedAuditEventId":
        return (f"Audit event id {event_id!r} was already ingested on this channel with different "
                "eventData; give a changed event a new id.")
    return f"The event could not be stored ({error}); retry the request."


def _stored_event_id(service: LakeService, seq: int) -> str | None:
    """The eventID a retried event got the first time (the spool keeps it within the window)."""
    stored = service.spool.read(seq, 1, MAX_EVENT_DATA_BYTES * 2)
    if not stored or stored[0][0] != seq:
        return None
    event_id = orjson.loads(stored[0][1]).get("eventID")
    return event_id if isinstance(event_id, str) else None


def parse_audit_events(body: bytes) -> list[AuditEvent]:
    """The request's audit events; TrailError (400) when the request itself is malformed."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _invalid(f"the request body is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES}, "
                       "split the events over several requests")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise _invalid(f"the request body is not JSON ({e})") from e
    items = doc.get("auditEvents") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENTS:
        count = len(items) if isinstance(items, list) else 0
        raise _invalid(f"auditEvents must be a list of 1 to {MAX_EVENTS} events, got {count}")
    events = [_audit_event(i, item) for i, item in enumerate(items)]
    seen: set[str] = set()
    for event in events:
        if event.id in seen:
            raise TrailError("DuplicatedAuditEventId",
                             f"Two or more audit events in the request have id {event.id!r}; ids must be unique.")
        seen.add(event.id)
    return events


def _audit_event(index: int, item: object) -> AuditEvent:
    if not isinstance(item, dict):
        raise _invalid(f"auditEvents[{index}] must be an object with id and eventData")
    event_id, data, checksum = item.get("id"), item.get("eventData"), item.get("eventDataChecksum")
    if not isinstance(event_id, str) or not _EVENT_ID_RE.fullmatch(event_id):
        raise _invalid(f"auditEvents[{index}].id must be 1 to 128 characters of letters, digits, '-' and '_'")
    if not isinstance(data, str):
        raise _invalid(f"auditEvents[{index}].eventData must be a string holding a JSON object")
    if checksum is not None and not isinstance(checksum, str):
        raise _invalid(f"auditEvents[{index}].eventDataChecksum must be a string")
    return AuditEvent(event_id, data, checksum)


def _invalid(message: str) -> TrailError:
    return TrailError("ValidationException", message[0].upper() + message[1:] + ".")


def event_checksum(event_data: str) -> str:
    """`eventDataChecksum`: base64 of SHA-256 over the UTF-8 bytes of eventData."""
    return base64.b64encode(hashlib.sha256(event_data.encode("utf-8")).digest()).decode("ascii")


def build_record(event: AuditEvent, channel_arn: str, ctx: records.IngestContext) -> bytes:
    """The CloudTrail record (compact JSON) for one audit event, or EventRefused."""
    size = len(event.data.encode("utf-8"))
    if size > MAX_EVENT_DATA_BYTES:
        raise EventRefused("FieldTooLong", f"eventData is {size} bytes; the limit is {MAX_EVENT_DATA_BYTES}.")
    if event.checksum is not None and event.checksum != event_checksum(event.data):
        raise EventRefused("InvalidChecksum", "eventDataChecksum is not the base64 SHA-256 of eventData; "
                           "recompute it over the exact eventData string (UTF-8).")
    try:
        data = orjson.loads(event.data)
    except orjson.JSONDecodeError as e:
        raise EventRefused("InvalidData", f"eventData is not JSON ({e}).") from e
    if not isinstance(data, dict):
        raise EventRefused("InvalidData", "eventData must hold a JSON object.")
    for code, message in check_event_data(data, ctx):
        raise EventRefused(code, message, forged=not ctx.forwarder and records.is_reserved_source(data.get("eventSource")))
    record = _record_of(data, channel_arn, ctx)
    encoded = orjson.dumps(record)
    if len(encoded) > records.MAX_EVENT_BYTES:
        raise EventRefused("FieldTooLong", f"the finished record is {len(encoded)} bytes; the limit is "
                           f"{records.MAX_EVENT_BYTES}: shorten requestParameters or responseElements.")
    return encoded


def check_event_data(data: dict[str, Any], ctx: records.IngestContext) -> Iterable[tuple[str, str]]:
    """Every problem of one eventData object as (error code, message), most basic first."""
    for name in _REQUIRED:
        if name not in data:
            yield "FieldNotFound", f"eventData.{name} is required."
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        yield "InvalidData", f"eventData.{unknown[0]} is not a field of the integration event schema; remove it."
    yield from _check_identity(data.get("userIdentity"))
    for name, limit in _TEXT_LIMITS.items():
        if name in data:
            yield from _check_text(data[name], f"eventData.{name}", limit)
    for name in _OBJECT_OR_NULL:
        if data.get(name) is not None and not isinstance(data[name], dict):
            yield "InvalidData", f"eventData.{name} must be a JSON object or null."
    yield from _check_semantics(data, ctx)


def _check_identity(identity: object) -> Iterable[tuple[str, str]]:
    if identity is None:
        return
    if not isinstance(identity, dict):
        yield "InvalidData", "eventData.userIdentity must be an object with type and principalId."
        return
    for name, limit in (("type", MAX_TYPE_CHARS), ("principalId", MAX_TEXT_CHARS)):
        if name not in identity:
            yield "FieldNotFound", f"eventData.userIdentity.{name} is required."
        else:
            yield from _check_text(identity[name], f"eventData.userIdentity.{name}", limit)


def _check_text(value: object, path: str, limit: int) -> Iterable[tuple[str, str]]:
    if not isinstance(value, str) or not value.strip():
        yield "InvalidData", f"{path} must be a non-empty string."
    elif len(value) > limit:
        yield "FieldTooLong", f"{path} is {len(value)} characters; the limit is {limit}."


def _check_semantics(data: dict[str, Any], ctx: records.IngestContext) -> Iterable[tuple[str, str]]:
    account = ctx.caller.account_id
    source = data.get("eventSource")
    if isinstance(source, str) and not _EVENT_SOURCE_RE.fullmatch(source):
        yield "InvalidEventSource", f"eventSource {source[:64]!r} must be a DNS name such as app.example.com."
    elif not ctx.forwarder and records.is_reserved_source(source):
        yield RESERVED_SOURCE_CODE, (f"eventSource {source!r} is written by trailkeeper itself; only a forwarder "
                                     "may relay that service's records. Use the application's own source.")
    when = data.get("eventTime")
    if isinstance(when, str):
        try:
            parsed = records.parse_event_time(when)
        except ValueError as e:
            yield "InvalidData", f"eventData.eventTime {e}."
        else:
            problem = records.time_bounds_problem(parsed, ctx)
            if problem is not None:
                yield "InvalidData", f"eventData.eventTime {problem}."
    origin = data.get("sourceIPAddress")
    if isinstance(origin, str) and origin.strip() and not records.is_origin(origin):
        yield "InvalidData", f"eventData.sourceIPAddress {origin[:64]!r} is neither an IP address nor a DNS name."
    recipient = data.get("recipientAccountId")
    if isinstance(recipient, str) and (not _ACCOUNT_RE.fullmatch(recipient) or recipient != account):
        yield "InvalidRecipient", f"eventData.recipientAccountId must be this account, {account}."
    if "errorMessage" in data and "errorCode" not in data:
        yield "InvalidData", "eventData.errorMessage needs an errorCode saying which error."


def _record_of(data: dict[str, Any], channel_arn: str, ctx: records.IngestContext) -> dict[str, Any]:
    account, region, now = ctx.caller.account_id, ctx.region, ctx.received
    source_ip, user_agent = ctx.source_ip, ctx.user_agent
    record: dict[str, Any] = {
        "eventVersion": data["version"],
        "userIdentity": data["userIdentity"],
        "eventTime": iso_seconds(records.parse_event_time(data["eventTime"])),
        "eventSource": data["eventSource"],
        "eventName": data["eventName"],
        "awsRegion": region,
        "sourceIPAddress": data.get("sourceIPAddress") or source_ip,
        "userAgent": data.get("userAgent") or user_agent,
    }
    for name in ("errorCode", "errorMessage"):
        if name in data:
            record[name] = data[name]
    record["requestParameters"] = data.get("requestParameters")
    record["responseElements"] = data.get("responseElements")
    if data.get("additionalEventData") is not None:
        record["additionalEventData"] = data["additionalEventData"]
    record.update({
        "eventID": records.new_event_id(),
        "readOnly": data["eventName"].startswith(records.READ_ONLY_PREFIXES),
        "eventType": EVENT_TYPE,
        "managementEvent": False,
        "recipientAccountId": account,
        "eventCategory": EVENT_CATEGORY,
        "UID": data["UID"],
        "metadata": {"ingestionTime": iso_seconds(now), "channelARN": channel_arn},
    })
    return record
