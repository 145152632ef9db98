"""Record validation at ingest (pure, no I/O).

A batch is all-or-nothing: every record is checked, every problem is collected, and one
RecordError names them all (its `index`/`path` point at the first). Only a clean batch
yields serialized records.

Rules, beyond JSON types of the known CloudTrail fields (cloudtrail-formats.md §2.1):

* PCI DSS 10.2.2 fields are mandatory: event type (`eventName`, `eventSource`), date/time
  (`eventTime`), outcome (`errorCode` present means failure), origin (`sourceIPAddress`,
  filled from the connection when absent), user (`userIdentity`, filled from the caller) and
  affected resource: a non-empty `resources` list, or the `requestParameters` key (an object,
  or null for an action that takes no parameters: then the service in `eventSource` is the
  affected resource, as CloudTrail itself records it), or a `serviceEventDetails` object.
* `eventTime` is RFC 3339 in UTC (`Z` or `+00:00`, optional fraction); it is stored as
  `YYYY-MM-DDTHH:MM:SSZ` (four year digits) with the fraction truncated. Other offsets, times
  before 1970-01-01 (no consumer keyed on epoch time could place them), times more than five
  minutes after the request was received, and a writer's times more than `max_event_age`
  (7 days by default) before it, are refused. Forwarders relay history, so only the first
  three bounds apply to them.
* Provenance (docs/contracts.md, "Provenance"): the event sources trailkeeper writes itself
  (RESERVED_EVENT_SOURCES) are refused from any caller but a forwarder, so that a record of
  such a source without `additionalEventData.forwardedBy` was written by trailkeeper itself.
  A forwarder's record of a reserved source always carries that mark.
* Every record gets `metadata.ingestionTime`, the second the server received it (where
  CloudTrail Lake keeps it; CloudTrail log consumers ignore the unknown top-level field).
  `metadata` is the server's; a client value is refused.
* `eventID` is always assigned by the server (unique within trailkeeper: lookups, dedup by
  eventID and forwarding rely on it); a forwarded record's own eventID is kept as
  `metadata.originalEventID`. `eventVersion`, `recipientAccountId` and `awsRegion` are assigned
  too, except that a forwarder keeps them as the source account wrote them. Anyone else's
  value is refused rather than silently replaced.
* Only the forwarder role may supply `userIdentity`. A forwarded record keeps it and gains
  `additionalEventData.forwardedBy` (the forwarder's own identity); a client-supplied
  `forwardedBy` is refused. Everyone else gets `userIdentity` = their own identity.
* A forwarder's record may carry `errorMessage` without `errorCode`, as AWS writes a failed
  console sign-in; anyone else's error message must say which error.
* Unknown top-level fields are kept: CloudTrail adds fields over time.
"""

from __future__ import annotations

import ipaddress
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from trailkeeper.clock import iso_seconds
from trailkeeper.errors import RecordError

MAX_BATCH_RECORDS = 100
MAX_REQUEST_BYTES = 1_048_576
MAX_EVENT_BYTES = 262_144
EVENT_VERSION = "1.11"
MAX_FIELD_CHARS = 1024
# CloudTrail cuts error messages near 1 KiB but counts differently from us, and the
# anonymised public samples run a few characters over; 2 KiB still bounds the field.
MAX_ERROR_MESSAGE_CHARS = 2048
MAX_IDENTITY_TYPE_CHARS = 128
MAX_FUTURE_SKEW = timedelta(minutes=5)
DEFAULT_MAX_EVENT_AGE = timedelta(days=7)
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LISTED_PROBLEMS = 20

# Event sources trailkeeper writes itself: every AWS service it implements (or will: logs,
# monitoring, sns, events) and its own. Only trailkeeper, or a forwarder relaying the real
# service's records, may name them.
SERVICE_EVENT_SOURCE = "trailkeeper.amazonaws.com"
RESERVED_EVENT_SOURCES = frozenset(
    f"{name}.amazonaws.com"
    for name in ("cloudtrail", "cloudtrail-data", "iam", "kms", "s3", "signin", "logs", "monitoring", "sns",
                 "events", "trailkeeper")
)

Role = Literal["administrator", "auditor", "writer", "forwarder"]
IdentityType = Literal["Root", "IAMUser"]

SERVER_ASSIGNED = ("eventID", "eventVersion", "recipientAccountId", "awsRegion", "metadata")
# What a forwarder may keep as the source account wrote it (checked for shape, never replaced).
FORWARDER_KEEPS = ("eventVersion", "recipientAccountId", "awsRegion")
_FORWARDER_KEEP_RE = {
    "eventVersion": re.compile(r"\d{1,3}\.\d{1,3}", re.ASCII),
    "recipientAccountId": re.compile(r"\d{12}", re.ASCII),
    "awsRegion": re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII),
}
READ_ONLY_PREFIXES = ("Get", "List", "Describe", "Lookup", "Head")

_STRING_FIELDS = (
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestID",
    "apiVersion",
    "eventType",
    "sharedEventID",
    "vpcEndpointId",
    "eventCategory",
    "sessionCredentialFromConsole",
    "vpcEndpointAccountId",
    "annotation",
)
_OBJECT_FIELDS = (
    "userIdentity",
    "additionalEventData",
    "serviceEventDetails",
    "insightDetails",
    "tlsDetails",
    "addendum",
    "edgeDeviceDetails",
    "eventContext",
)
_OBJECT_OR_NULL_FIELDS = ("requestParameters", "responseElements")
_BOOL_FIELDS = ("readOnly", "managementEvent")

# Emission order of the fields CloudTrail writes; unknown fields follow in client order.
_FIELD_ORDER = (
    "eventVersion",
    "userIdentity",
    "eventTime",
    "eventSource",
    "eventName",
    "awsRegion",
    "sourceIPAddress",
    "userAgent",
    "errorCode",
    "errorMessage",
    "requestParameters",
    "responseElements",
    "additionalEventData",
    "requestID",
    "eventID",
    "readOnly",
    "resources",
    "eventType",
    "apiVersion",
    "managementEvent",
    "recipientAccountId",
    "sharedEventID",
    "vpcEndpointId",
    "vpcEndpointAccountId",
    "serviceEventDetails",
    "eventCategory",
    "insightDetails",
    "tlsDetails",
    "sessionCredentialFromConsole",
    "addendum",
    "edgeDeviceDetails",
    "annotation",
    "eventContext",
    "metadata",
)

_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(Z|\+00:00)", re.ASCII
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
_SERVICE_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})+", re.ASCII)
# CloudTrail writes this placeholder origin for calls AWS makes on a caller's behalf.
_INTERNAL_ORIGINS = frozenset({"AWS Internal"})


@dataclass(frozen=True)
class Caller:
    """The authenticated principal that sent a batch."""

    account_id: str
    identity_type: IdentityType
    user_name: str
    principal_id: str
    arn: str
    access_key_id: str
    role: Role


class _EventIds:
    """Event IDs in the UUID version 7 layout (RFC 9562): 48 bits of Unix milliseconds, then
    random bits. They are valid GUIDs like CloudTrail's, and being time-ordered they append
    to the history's EventId index instead of landing on random pages. Random bits come from
    one urandom call per 256 IDs, per thread: a system call, or a shared lock, per event
    costs more on the ingest hot path than the rest of the work."""

    BATCH = 256

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self) -> str:
        local = self._local
        pool: list[str] | None = getattr(local, "pool", None)
        if not pool:
            pool = local.pool = _random_tails(self.BATCH)
            local.ms = -1
        ms = time.time_ns() // 1_000_000
        if ms != local.ms:  # the formatted millisecond prefix is reused within a millisecond
            h = f"{ms:012x}"
            local.ms, local.prefix = ms, f"{h[:8]}-{h[8:]}-7"
        return str(local.prefix) + pool.pop()


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _random_tails(count: int) -> list[str]:
    """`count` random 'xxx-Vxxx-xxxxxxxxxxxx' tails: 12 + 62 random bits, RFC variant set."""
    h = os.urandom(10 * count).hex()
    return [
        f"{h[i:i + 3]}-{_VARIANT[h[i + 3]]}{h[i + 4:i + 7]}-{h[i + 7:i + 19]}"
        for i in range(0, len(h), 20)
    ]


_new_event_id = _EventIds()


class EventIdLog:
    """An IngestContext.new_event_id that remembers what it issued, so callers get the IDs of
    a batch without parsing the serialised records again."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    def __call__(self) -> str:
        event_id = _new_event_id()
        self.issued.append(event_id)
        return event_id


def new_event_id() -> str:
    """A fresh event ID (time-ordered GUID) for any record trailkeeper writes."""
    return _new_event_id()


@dataclass(frozen=True)
class IngestContext:
    """Everything the server knows about the request that carried a batch."""

    caller: Caller
    region: str
    source_ip: str
    user_agent: str
    received: datetime
    new_event_id: Callable[[], str] = field(default=_new_event_id)
    max_event_age: timedelta = DEFAULT_MAX_EVENT_AGE

    @property
    def forwarder(self) -> bool:
        return self.caller.role == "forwarder"

    @property
    def earliest(self) -> datetime:
        """The oldest eventTime this caller may send."""
        if self.forwarder:
            return EARLIEST_EVENT_TIME
        return max(EARLIEST_EVENT_TIME, self.received - self.max_event_age)


@dataclass(frozen=True)
class _Problem:
    index: int | None
    path: str
    message: str

    def render(self) -> str:
        return str(RecordError(self.message, self.index, self.path))


def caller_identity(caller: Caller) -> dict[str, str]:
    """The CloudTrail `userIdentity` object describing `caller` (formats §2.2)."""
    if caller.identity_type == "Root":
        return {
            "type": "Root",
            "principalId": caller.account_id,
            "arn": f"arn:aws:iam::{caller.account_id}:root",
            "accountId": caller.account_id,
            "accessKeyId": caller.access_key_id,
        }
    return {
        "type": "IAMUser",
        "principalId": caller.principal_id,
        "arn": f"arn:aws:iam::{caller.account_id}:user/{caller.user_name}",
        "accountId": caller.account_id,
        "accessKeyId": caller.access_key_id,
        "userName": caller.user_name,
    }


def parse_batch(body: bytes) -> list[dict[str, Any]]:
    """Decode a request body: `{"Records": [...]}` or a bare JSON array of record objects."""
    if len(body) > MAX_REQUEST_BYTES:
        raise RecordError(
            f"request body is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES} bytes, "
            "split the batch"
        )
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise RecordError(
            f"request body is not valid UTF-8 JSON ({e}); send a JSON document"
        ) from e
    records = _batch_list(doc)
    if not 1 <= len(records) <= MAX_BATCH_RECORDS:
        raise RecordError(
            f"a batch holds 1 to {MAX_BATCH_RECORDS} records, got {len(records)}",
            path="Records",
        )
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RecordError(f"a record must be a JSON object, got {_kind(record)}", index)
    return records


def _batch_list(doc: object) -> list[Any]:
    if isinstance(doc, list):
        return doc
    if not isinstance(doc, dict):
        raise RecordError(
            f'the body must be {{"Records": [...]}} or a JSON array, got {_kind(doc)}'
        )
    extra = sorted(k for k in doc if k != "Records")
    if extra:
        raise RecordError("unexpected top-level key; only Records is allowed", path=extra[0])
    records = doc.get("Records")
    if not isinstance(records, list):
        raise RecordError(f"Records must be a JSON array, got {_kind(records)}", path="Records")
    return records


def normalize_batch(records: list[object], ctx: IngestContext) -> list[bytes]:
    """Validate every record, then return the final CloudTrail records as compact JSON."""
    problems: list[_Problem] = []
    if not 1 <= len(records) <= MAX_BATCH_RECORDS:
        problems.append(
            _Problem(
                None,
                "Records",
                f"a batch holds 1 to {MAX_BATCH_RECORDS} records, got {len(records)}",
            )
        )
    memo = _BatchMemo(ctx)
    for index, record in enumerate(records):
        if not memo.plainly_valid(record):
            problems.extend(_Problem(index, p, m) for p, m in check_record(record, ctx))
    _raise_if_any(problems)
    out: list[bytes] = []
    for index, record in enumerate(records):
        assert isinstance(record, dict)
        try:
            data = orjson.dumps(_finish(record, ctx, memo))
        except orjson.JSONEncodeError as e:
            problems.append(_Problem(index, "(record)", f"cannot be encoded as JSON ({e})"))
            continue
        if len(data) > MAX_EVENT_BYTES:
            problems.append(_Problem(index, "(record)", _too_big(len(data))))
        out.append(data)
    _raise_if_any(problems)
    return out


def _too_big(size: int) -> str:
    return (
        f"{size} bytes, limit {MAX_EVENT_BYTES}; shorten large fields such as "
        "requestParameters or responseElements"
    )


def _raise_if_any(problems: list[_Problem]) -> None:
    if not problems:
        return
    first = problems[0]
    message = first.message
    if len(problems) > 1:
        listed = "; ".join(p.render() for p in problems[1:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f"; and {more} more" if more > 0 else ""
        message = f"{message} (also: {listed}{tail}); nothing in the batch was accepted"
    raise RecordError(message, first.index, first.path)


def check_record(record: object, ctx: IngestContext) -> list[tuple[str, str]]:
    """Every problem of one record as (field path, message); empty when the record is valid."""
    if not isinstance(record, dict):
        return [("", f"a record must be a JSON object, got {_kind(record)}")]
    problems: list[tuple[str, str]] = []
    problems += _check_required(record)
    problems += _check_provenance(record, ctx.forwarder)
    problems += _check_time_field(record, ctx)
    problems += _check_server_assigned(record, ctx.forwarder)
    problems += _check_types(record)
    problems += _check_outcome(record, ctx.forwarder)
    problems += _check_origin(record)
    problems += _check_resources(record)
    problems += _check_affected(record)
    problems += _check_identity(record, ctx.caller.role)
    return problems


def is_reserved_source(source: object) -> bool:
    """An event source only trailkeeper itself (or a forwarder relaying the real service) may name."""
    return isinstance(source, str) and source.lower().rstrip(".") in RESERVED_EVENT_SOURCES


def reserved_sources_named(records: list[object], role: str) -> list[tuple[int, str, str]]:
    """(index, eventSource, eventName) of each record that names a reserved source it may not:
    the refusals worth an audit record of their own (someone tried to speak for trailkeeper)."""
    if role == "forwarder":
        return []
    named = []
    for index, record in enumerate(records):
        if isinstance(record, dict) and is_reserved_source(record.get("eventSource")):
            name = record.get("eventName")
            named.append((index, str(record["eventSource"])[:MAX_FIELD_CHARS],
                          name[:MAX_FIELD_CHARS] if isinstance(name, str) else ""))
    return named


def _check_provenance(record: dict[str, Any], forwarder: bool) -> Iterable[tuple[str, str]]:
    source = record.get("eventSource")
    if not forwarder and is_reserved_source(source):
        yield ("eventSource", f"{source!r} is written by trailkeeper itself; only a forwarder relaying that "
               "service's own records may name it: use your application's own source, e.g. app.example.com")


def _check_server_assigned(record: dict[str, Any], forwarder: bool) -> Iterable[tuple[str, str]]:
    for name in SERVER_ASSIGNED:
        if name not in record:
            continue
        if forwarder and name in FORWARDER_KEEPS:
            value = record[name]
            if not isinstance(value, str) or not _FORWARDER_KEEP_RE[name].fullmatch(value):
                yield name, f"{str(value)[:64]!r} is not a valid {name} (kept as the source account wrote it)"
        elif forwarder and name == "eventID":
            yield from _check_string(record[name], name)  # kept as metadata.originalEventID
        else:
            yield name, "is assigned by the server; remove it from the record"
    extra = record.get("additionalEventData")
    if isinstance(extra, dict) and "forwardedBy" in extra:
        yield "additionalEventData.forwardedBy", "is assigned by the server; remove it"


def _check_types(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for name in _STRING_FIELDS:
        if name in record:
            yield from _check_string(record[name], name, _limit_of(name), name == "errorMessage")
    for name in _OBJECT_FIELDS:
        if name in record and not isinstance(record[name], dict):
            yield name, f"must be a JSON object, got {_kind(record[name])}"
    for name in _OBJECT_OR_NULL_FIELDS:
        value = record.get(name)
        if value is not None and not isinstance(value, dict):
            yield name, f"must be a JSON object or null, got {_kind(value)}"
    for name in _BOOL_FIELDS:
        if name in record and not isinstance(record[name], bool):
            yield name, f"must be a JSON boolean (true or false), got {_kind(record[name])}"


def _limit_of(name: str) -> int:
    return MAX_ERROR_MESSAGE_CHARS if name == "errorMessage" else MAX_FIELD_CHARS


def _check_string(
    value: object, path: str, limit: int = MAX_FIELD_CHARS, allow_empty: bool = False
) -> Iterable[tuple[str, str]]:
    if not isinstance(value, str):
        yield path, f"must be a string, got {_kind(value)}"
    elif not value.strip() and not allow_empty:
        yield path, "must not be empty"
    elif len(value) > limit:
        yield path, f"is {len(value)} characters long; the limit is {limit}"


def _check_required(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    for name in ("eventName", "eventSource"):
        if name not in record:
            yield name, "is required (PCI DSS 10.2.2 event type)"
        else:
            yield from _check_string(record[name], name)
    source = record.get("eventSource")
    if (
        isinstance(source, str)
        and 0 < len(source) <= MAX_FIELD_CHARS
        and not _SERVICE_RE.fullmatch(source)
    ):
        yield "eventSource", f"{source!r} is not a service DNS name such as ec2.amazonaws.com"


def _check_time_field(record: dict[str, Any], ctx: IngestContext) -> Iterable[tuple[str, str]]:
    if "eventTime" not in record:
        yield "eventTime", "is required (PCI DSS 10.2.2 date and time), e.g. 2024-07-31T13:06:24Z"
        return
    try:
        when = parse_event_time(record["eventTime"])
    except ValueError as e:
        yield "eventTime", str(e)
        return
    problem = time_bounds_problem(when, ctx)
    if problem is not None:
        yield "eventTime", problem


def time_bounds_problem(when: datetime, ctx: IngestContext) -> str | None:
    """Why an eventTime is outside what this caller may send, or None."""
    received = ctx.received
    if when > received + MAX_FUTURE_SKEW:
        return (f"{iso_seconds(when)} is more than {MAX_FUTURE_SKEW} after the request was received "
                f"({iso_seconds(received)}); check the sender's clock")
    if when < EARLIEST_EVENT_TIME:
        return (f"{iso_seconds(when)} is before {iso_seconds(EARLIEST_EVENT_TIME)}; times this old cannot "
                "be placed by consumers that count from the Unix epoch: check the sender's clock")
    if when < ctx.earliest:
        return (f"{iso_seconds(when)} is more than {ctx.max_event_age} before the request was received "
                f"({iso_seconds(received)}): a writer records what just happened; relay older records "
                "through a forwarder key")
    return None


def parse_event_time(value: object) -> datetime:
    """An RFC 3339 UTC time (Z or +00:00, optional fraction), truncated to whole seconds."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {_kind(value)}")
    match = _TIME_RE.fullmatch(value)
    if not match:
        raise ValueError(
            f"{value[:64]!r} is not a UTC time like 2024-07-31T13:06:24Z "
            "(a fraction and +00:00 are accepted; other offsets are not: convert to UTC)"
        )
    year, month, day, hour, minute, second = (int(p) for p in match.groups()[:6])
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as e:
        raise ValueError(f"{value!r} is not a valid calendar time ({e})") from e


def _check_outcome(record: dict[str, Any], forwarder: bool) -> Iterable[tuple[str, str]]:
    # AWS itself writes failed console sign-ins with errorMessage and no errorCode.
    if "errorMessage" in record and "errorCode" not in record and not forwarder:
        yield (
            "errorMessage",
            "needs an errorCode: a record with an error message must say which error",
        )


def _check_origin(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    origin = record.get("sourceIPAddress")
    if (
        isinstance(origin, str)
        and origin.strip()
        and len(origin) <= MAX_FIELD_CHARS
        and not is_origin(origin)
    ):
        yield "sourceIPAddress", f"{origin[:64]!r} is neither an IP address nor a DNS name"


def is_origin(text: str) -> bool:
    """An IP address, a DNS name (CloudTrail's anonymised IPs with leading zeros parse as one),
    or CloudTrail's `AWS Internal` placeholder."""
    if text in _INTERNAL_ORIGINS or _DNS_RE.fullmatch(text):
        return True
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _check_resources(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    if "resources" not in record:
        return
    resources = record["resources"]
    if not isinstance(resources, list):
        yield "resources", f"must be a JSON array of objects, got {_kind(resources)}"
        return
    for i, item in enumerate(resources):
        path = f"resources[{i}]"
        if not isinstance(item, dict):
            yield path, f"must be an object like {{ARN, accountId, type}}, got {_kind(item)}"
            continue
        for key in ("ARN", "ARNPrefix", "accountId", "type"):
            if key in item:
                yield from _check_string(item[key], f"{path}.{key}", limit=2048)
        if not any(key in item for key in ("ARN", "ARNPrefix", "type")):
            yield path, "needs ARN, ARNPrefix or type to name the affected resource"


def _check_affected(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    resources = record.get("resources")
    if isinstance(resources, list) and resources:
        return
    if "requestParameters" in record or isinstance(record.get("serviceEventDetails"), dict):
        return
    yield (
        "resources",
        (
            "the affected resource is required (PCI DSS 10.2.2): give a non-empty resources list "
            "or requestParameters (null when the action takes no parameters)"
        ),
    )


def _check_identity(record: dict[str, Any], role: Role) -> Iterable[tuple[str, str]]:
    if "userIdentity" not in record:
        return
    if role != "forwarder":
        yield "userIdentity", "only the forwarder role may set userIdentity; remove it"
        return
    identity = record["userIdentity"]
    if not isinstance(identity, dict):
        return
    if "type" not in identity:
        yield "userIdentity.type", "is required, e.g. IAMUser or AssumedRole"
    else:
        yield from _check_string(identity["type"], "userIdentity.type", MAX_IDENTITY_TYPE_CHARS)
    named = [k for k in ("principalId", "userName", "arn") if k in identity]
    for key in named:
        yield from _check_string(identity[key], f"userIdentity.{key}")
    if not named:
        yield "userIdentity", "needs principalId, userName or arn to say who acted (PCI DSS 10.2.2)"


def _finish(record: dict[str, Any], ctx: IngestContext, memo: _BatchMemo | None = None) -> dict[str, Any]:
    """Fill defaults and server fields into a record that passed check_record."""
    memo = memo or _BatchMemo(ctx)
    # The skeleton holds every known field of the result in CloudTrail's order, with the
    # defaults as values; updating it keeps those positions and appends unknown fields in
    # the client's order, so no per-record sort is needed.
    fields = memo.skeleton(tuple(record)).copy()
    fields.update(record)
    if ctx.forwarder:
        fields.update((k, v) for k, v in memo.assigned.items() if k not in record)
    else:
        fields.update(memo.assigned)
    fields["eventTime"] = memo.normal_time(record["eventTime"])
    fields["eventID"] = ctx.new_event_id()
    fields["metadata"] = memo.metadata
    if "eventID" in record:  # a forwarder's: the source's own ID, kept beside ours
        fields["metadata"] = {**memo.metadata, "originalEventID": record["eventID"]}
    if "readOnly" not in record:
        fields["readOnly"] = record["eventName"].startswith(READ_ONLY_PREFIXES)
    if "managementEvent" not in record:
        fields["managementEvent"] = fields["eventCategory"] == "Management"
    if "userIdentity" in record or (ctx.forwarder and is_reserved_source(record["eventSource"])):
        extra = dict(record.get("additionalEventData") or {})
        extra["forwardedBy"] = memo.identity
        fields["additionalEventData"] = extra
    if "userIdentity" not in record:
        fields["userIdentity"] = memo.identity
    return fields


def username_of(identity: object) -> str | None:
    """The LookupEvents `Username` of a userIdentity, as CloudTrail reports it."""
    if not isinstance(identity, dict):
        return None
    kind = identity.get("type")
    name = identity.get("userName")
    arn = identity.get("arn")
    if kind == "Root":
        return name if isinstance(name, str) and name else "root"
    if kind in ("AssumedRole", "FederatedUser") and isinstance(arn, str) and "/" in arn:
        return arn.rsplit("/", 1)[1] or None
    return name if isinstance(name, str) and name else None


def _kind(value: object) -> str:
    """JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# Fields _finish sets on every record.
_ALWAYS_SET = ("eventTime", "eventID", "readOnly", "managementEvent", "userIdentity", "metadata")


# How the fast path checks each known field (sourceIPAddress and resources have their own checks).
_FIELD_KIND: dict[str, str] = {
    **{n: "str" for n in _STRING_FIELDS if n not in ("errorMessage", "sourceIPAddress")},
    "errorMessage": "message",
    **{n: "object" for n in _OBJECT_FIELDS},
    **{n: "object-or-null" for n in _OBJECT_OR_NULL_FIELDS},
    **{n: "bool" for n in _BOOL_FIELDS},
}


class _BatchMemo:
    """Per-batch memo for the ingest hot path.

    `plainly_valid` recognises the common, clean record quickly. It may answer False for a
    valid record (the full check then runs), but never True for a record check_record would
    refuse: a differential test holds the two together.
    """

    def __init__(self, ctx: IngestContext) -> None:
        self.ctx = ctx
        self.identity = caller_identity(ctx.caller)
        self._times: dict[str, str | None] = {}
        self._origins: dict[str, bool] = {}
        self._sources: dict[str, bool] = {}
        self._skeletons: dict[tuple[str, ...], dict[str, Any]] = {}
        # Defaults a record may override, and fields the server always sets.
        self.defaults: dict[str, Any] = {
            "sourceIPAddress": ctx.source_ip, "userAgent": ctx.user_agent[:MAX_FIELD_CHARS],
            "eventType": "AwsApiCall", "eventCategory": "Management",
        }
        self.assigned: dict[str, Any] = {
            "eventVersion": EVENT_VERSION, "awsRegion": ctx.region, "recipientAccountId": ctx.caller.account_id,
        }
        self.metadata = {"ingestionTime": iso_seconds(ctx.received)}
        self._limit = ctx.received + MAX_FUTURE_SKEW
        self._earliest = ctx.earliest

    def skeleton(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The known fields a record with these client fields ends up with, in CloudTrail's
        order, valued with the defaults. Records of a batch mostly share one shape."""
        found = self._skeletons.get(names)
        if found is None:
            present = {*names, *self.defaults, *self.assigned, *_ALWAYS_SET}
            if "userIdentity" in names:
                present.add("additionalEventData")
            found = {k: self.defaults.get(k) for k in _FIELD_ORDER if k in present}
            self._skeletons[names] = found
        return found

    def normal_time(self, value: str) -> str:
        cached = self._times.get(value)
        return cached if cached is not None else iso_seconds(parse_event_time(value))

    def _time_ok(self, value: object) -> bool:
        if not isinstance(value, str):
            return False
        if value in self._times:
            return self._times[value] is not None
        try:
            when = parse_event_time(value)
        except ValueError:
            self._times[value] = None
            return False
        ok = self._earliest <= when <= self._limit
        self._times[value] = iso_seconds(when) if ok else None
        return ok

    def _source_ok(self, value: object) -> bool:
        if not isinstance(value, str) or not 0 < len(value) <= MAX_FIELD_CHARS:
            return False
        ok = self._sources.get(value)
        if ok is None:
            plain = bool(value.strip()) and bool(_SERVICE_RE.fullmatch(value)) and not is_reserved_source(value)
            ok = self._sources[value] = plain
        return ok

    def _origin_ok(self, value: object) -> bool:
        if not isinstance(value, str) or not 0 < len(value) <= MAX_FIELD_CHARS or not value.strip():
            return False
        ok = self._origins.get(value)
        if ok is None:
            ok = self._origins[value] = is_origin(value)
        return ok

    def plainly_valid(self, record: object) -> bool:
        if type(record) is not dict or "userIdentity" in record:
            return False
        if any(assigned in record for assigned in SERVER_ASSIGNED):
            return False
        name = record.get("eventName")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_FIELD_CHARS or not name.strip():
            return False
        if not self._source_ok(record.get("eventSource")) or not self._time_ok(record.get("eventTime")):
            return False
        if "sourceIPAddress" in record and not self._origin_ok(record["sourceIPAddress"]):
            return False
        return self._fields_ok(record) and _plain_resources(record)

    @staticmethod
    def _fields_ok(record: dict[str, Any]) -> bool:
        for key, value in record.items():
            kind = _FIELD_KIND.get(key)
            if kind is None:
                continue
            if kind == "str":
                if type(value) is not str or not 0 < len(value) <= MAX_FIELD_CHARS or not value.strip():
                    return False
            elif kind == "message":
                if type(value) is not str or len(value) > MAX_ERROR_MESSAGE_CHARS or "errorCode" not in record:
                    return False
            elif kind == "object":
                if type(value) is not dict:
                    return False
            elif kind == "object-or-null":
                if value is not None and type(value) is not dict:
                    return False
            elif kind == "bool" and type(value) is not bool:
                return False
        extra = record.get("additionalEventData")
        return not (isinstance(extra, dict) and "forwardedBy" in extra)


def _plain_resources(record: dict[str, Any]) -> bool:
    resources = record.get("resources")
    if resources is None:
        return "resources" not in record and (
            "requestParameters" in record or type(record.get("serviceEventDetails")) is dict
        )
    if type(resources) is not list or not resources:
        return False
    for item in resources:
        if type(item) is not dict or not ("ARN" in item or "ARNPrefix" in item or "type" in item):
            return False
        for key in ("ARN", "ARNPrefix", "accountId", "type"):
            if key in item:
                value = item[key]
                if not isinstance(value, str) or not 0 < len(value) <= 2048 or not value.strip():
                    return False
    return True
