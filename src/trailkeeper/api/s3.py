"""A read-only S3 gateway over trail destinations, enough for `aws cloudtrail validate-logs`.

Path-style addressing only (botocore uses it for `http://host:port` endpoints). Answers
ListBuckets, HeadBucket, GetBucketLocation, ListObjects (v1 and v2), GetObject and
HeadObject with the stored bytes and metadata unchanged; every write is refused with
403 AccessDenied, because delivered audit logs must never change.

Auditing: each GetObject/HeadObject of an object and each refused write is passed to the
caller's `record` callback, which appends an S3 data event to the spool. That cannot feed
itself: trail delivery writes its folders directly and nothing in trailkeeper reads a
trail's files back through this gateway, so recording a read never causes another read.

Encrypted log files (trails with a KmsKeyId) are served decrypted, as S3 serves SSE-KMS
objects: only to callers who may also decrypt with the key (kms:Decrypt), with the
`x-amz-server-side-encryption` headers naming the key; others get 403 AccessDenied, recorded.

Encoding: when a listing asks for `encoding-type=url`, exactly the fields that botocore
URL-decodes (`botocore.handlers.decode_list_object[_v2]`) are percent-encoded, so a
botocore client sees every key exactly as stored, '+' and spaces included.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Protocol

from trailkeeper import envelope, layout
from trailkeeper._internal.text import bounded, xml_safe
from trailkeeper.errors import EnvelopeError, ObjectNotFoundError, StorageError
from trailkeeper.service import Account
from trailkeeper.storage.base import ObjectInfo, ObjectStore
from trailkeeper.storage.folder import validate_key
from trailkeeper.trails import Location, TrailStore

log = logging.getLogger(__name__)

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
XML_TYPE = "application/xml"
OBJECT_TYPE = "application/octet-stream"
MAX_KEYS = 1000
# S3's wording when an SSE-KMS object's key may not be used by the caller.
KMS_DENIED_MESSAGE = ("The ciphertext refers to a customer master key that does not exist, does not exist in "
                      "this region, or you are not allowed to access.")
READ_ONLY_MESSAGE = "trailkeeper's S3 gateway is read-only: audit logs cannot be changed through it"
# us-east-1 is the one region S3 reports as an empty LocationConstraint.
DEFAULT_S3_REGION = "us-east-1"
# Sorts after every other code point, so "<prefix><LAST_CHAR>" is past every key under <prefix>.
LAST_CHAR = "\U0010ffff"
_LISTING_PARAMS = frozenset({"prefix", "marker", "max-keys", "delimiter", "encoding-type", "list-type",
                             "continuation-token", "start-after", "fetch-owner", "x-id"})
_ETAG_CACHE_SIZE = 4096

Recorder = Callable[[str, dict[str, object] | None, str | None, str | None, list[dict[str, str]] | None], None]


class BucketSource(Protocol):
    """What the read-only S3 gateway uses: the places trails deliver (or delivered) to, their
    stores, and the KMS that opens encrypted log files."""

    @property
    def account(self) -> Account: ...

    @property
    def trails(self) -> TrailStore: ...

    @property
    def kms(self) -> envelope.DataKeys: ...

    def open_location(self, place: Location, object_lock_days: int = 0) -> ObjectStore: ...


@dataclass(frozen=True)
class S3Request:
    method: str
    raw_path: str  # percent-encoded, path-style: "/bucket/key..."
    query: str  # raw query string, without '?'
    headers: Mapping[str, str]  # lowercase names
    request_id: str = field(default="")  # reused in x-amz-request-id and error bodies when given
    can_decrypt: bool = False  # the caller holds kms:Decrypt (needed for encrypted log files)


@dataclass(frozen=True)
class S3Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class _S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.extra = extra


# ---- public entry points ----

@dataclass(frozen=True)
class Bucket:
    """A trail destination as the gateway serves it: its store, and the (trail name, key prefix)
    of the trails whose objects it may serve from it, now or in the past (deleted trails and
    earlier locations included): nothing else in the folder or bucket is served or listed."""

    store: ObjectStore
    trails: tuple[tuple[str, str], ...]
    account: str
    region: str

    def serves(self, key: str) -> bool:
        """Is `key` a log or digest key, in canonical CloudTrail layout, of one of the trails?"""
        for parse in (layout.parse_log_key, layout.parse_digest_key):
            try:
                parsed = parse(key)
            except ValueError:
                continue
            return any(self._owns(parsed, t) for t in self.trails)
        return False

    def _owns(self, parsed: layout.LogKey | layout.DigestKey, trail: tuple[str, str]) -> bool:
        name, prefix = trail
        if (parsed.prefix, parsed.account, parsed.org_id) != (prefix, self.account, None):
            return False
        if isinstance(parsed, layout.LogKey):
            return parsed.region == self.region
        return (parsed.src_region, parsed.trail_name, parsed.home_region) == (self.region, name, self.region)


def buckets(service: BucketSource) -> dict[str, Bucket]:
    """Bucket name → what it serves: every place a trail delivers or delivered to (one folder
    serves one bucket; the first place found for a bucket gives its store)."""
    found: dict[str, tuple[ObjectStore, list[tuple[str, str]]]] = {}
    for name, place in service.trails.places():
        entry = found.setdefault(place.bucket, (service.open_location(place), []))
        if (name, place.prefix) not in entry[1]:
            entry[1].append((name, place.prefix))
    account, region = service.account.account_id, service.account.region
    return {bucket: Bucket(store, tuple(owners), account, region) for bucket, (store, owners) in found.items()}


def handle_s3(service: BucketSource, request: S3Request, record: Recorder) -> S3Response:
    """Answer one path-style S3 request; `record(operation, request_parameters, error_code,
    error_message, resources)` is called for object reads and refused writes."""
    request_id = request.request_id or secrets.token_hex(8).upper()
    try:
        response = _dispatch(service, request, record, request_id)
    except _S3Error as e:
        response = _error_response(e, request.method, request_id)
    except StorageError:
        # The details (paths on this machine) are for the operator's log, not for the client.
        log.exception("S3 gateway: %s %s failed", request.method, request.raw_path[:200])
        response = _error_response(_S3Error(500, "InternalError", "We encountered an internal error. Please try again."),
                                   request.method, request_id)
    return S3Response(response.status, [*response.headers, ("x-amz-request-id", request_id)], response.body)


def error_response(status: int, code: str, message: str, method: str) -> S3Response:
    """An S3 error document for a request refused before it reached the gateway (e.g. its
    signature): S3 clients read the code from the XML, never from JSON."""
    request_id = secrets.token_hex(8).upper()
    response = _error_response(_S3Error(status, code, message), method, request_id)
    return S3Response(response.status, [*response.headers, ("x-amz-request-id", request_id)], response.body)


def write_operation(method: str, bucket: str, key: str, query: str) -> str:
    """The S3 operation name a refused write would have been, for its audit record."""
    params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    method = method.upper()
    if key:
        if "uploadId" in params:
            return {"PUT": "UploadPart", "DELETE": "AbortMultipartUpload"}.get(method, "CompleteMultipartUpload")
        if method == "POST":
            return "CreateMultipartUpload" if "uploads" in params else "PostObject"
        return "DeleteObject" if method == "DELETE" else "PutObject"
    if method == "POST":
        return "DeleteObjects" if "delete" in params else "PostObject"
    subresource = next((name for name in params if name != "x-id"), "")
    if subresource:
        verb = "Delete" if method == "DELETE" else "Put"
        return f"{verb}Bucket{subresource[:1].upper()}{subresource[1:]}"
    return "DeleteBucket" if method == "DELETE" else "CreateBucket"


# ---- routing ----

def _dispatch(service: BucketSource, request: S3Request, record: Recorder, request_id: str) -> S3Response:
    bucket, key = _split_path(request.raw_path)
    method = request.method.upper()
    if method in ("PUT", "POST", "DELETE", "PATCH"):
        return _refuse_write(service, method, bucket, key, request.query, record)
    if method not in ("GET", "HEAD"):
        raise _S3Error(405, "MethodNotAllowed", f"The method {method} is not allowed; the gateway answers GET and HEAD.")
    if key:
        return _read_object(service, request, bucket, key, record)
    params = dict(urllib.parse.parse_qsl(request.query, keep_blank_values=True))
    operation = _bucket_operation(method, bucket, params)
    recorded: dict[str, object] = {"bucketName": bounded(bucket)} if bucket else {}
    recorded.update({name: bounded(params[name]) for name in ("prefix", "marker", "start-after") if name in params})
    resources = _resources(service, bucket, "") if bucket else None
    # Listings and bucket reads are reads of the audit logs too (PCI DSS 10.2.1.3): each is recorded.
    return _recorded(record, operation, recorded, resources, lambda: _bucket_read(service, method, bucket, params))


def _recorded(record: Recorder, operation: str, params: dict[str, object], resources: list[dict[str, str]] | None,
              answer: Callable[[], S3Response]) -> S3Response:
    """Answer a read and record it, with the S3 error code when it failed."""
    try:
        response = answer()
    except _S3Error as e:
        record(operation, params, e.code, str(e), resources)
        raise
    record(operation, params, None, None, resources)
    return response


def _bucket_operation(method: str, bucket: str, params: Mapping[str, str]) -> str:
    if not bucket:
        return "ListBuckets"
    if method == "HEAD":
        return "HeadBucket"
    if "location" in params:
        return "GetBucketLocation"
    return "ListObjectsV2" if params.get("list-type") == "2" else "ListObjects"


def _bucket_read(service: BucketSource, method: str, bucket: str, params: Mapping[str, str]) -> S3Response:
    if not bucket:
        return _list_buckets(service)
    served = _find_bucket(service, bucket)
    if method == "HEAD":
        return S3Response(200, [("x-amz-bucket-region", service.account.region)], b"")
    if "location" in params:
        return _xml(_location(service.account.region))
    unknown = sorted(set(params) - _LISTING_PARAMS)
    if unknown:
        raise _S3Error(501, "NotImplemented", f"The bucket subresource {unknown[0]!r} is not supported; "
                       "the gateway answers ?location and object listings.")
    if params.get("list-type") == "2":
        return _xml(_list_v2(served, params))
    return _xml(_list_v1(served, params))


def _split_path(raw_path: str) -> tuple[str, str]:
    # unquote, not unquote_plus: a '+' in a path is a literal '+' in the key.
    bucket, _, key = raw_path.lstrip("/").partition("/")
    return urllib.parse.unquote(bucket), urllib.parse.unquote(key)


def _find_bucket(service: BucketSource, bucket: str) -> Bucket:
    served = buckets(service).get(bucket)
    if served is None:
        raise _S3Error(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)
    return served


def _refuse_write(service: BucketSource, method: str, bucket: str, key: str, query: str, record: Recorder) -> S3Response:
    operation = bounded(write_operation(method, bucket, key, query))
    params: dict[str, object] = {"bucketName": bounded(bucket)}
    if key:
        params["key"] = bounded(key)
    record(operation, params, "AccessDenied", READ_ONLY_MESSAGE,
           _resources(service, bucket, key) if bucket else None)
    raise _S3Error(403, "AccessDenied", READ_ONLY_MESSAGE)


def _resources(service: BucketSource, bucket: str, key: str) -> list[dict[str, str]]:
    bucket_res = {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}", "accountId": service.account.account_id}
    if not key:
        return [bucket_res]
    return [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"}, bucket_res]


# ---- objects ----

def _read_object(service: BucketSource, request: S3Request, bucket: str, key: str, record: Recorder) -> S3Response:
    operation = "HeadObject" if request.method == "HEAD" else "GetObject"
    params: dict[str, object] = {"bucketName": bounded(bucket), "key": bounded(key)}
    resources = _resources(service, bucket, key)
    return _recorded(record, operation, params, resources, lambda: _object_response(service, request, bucket, key))


def _object_response(service: BucketSource, request: S3Request, bucket: str, key: str) -> S3Response:
    served = _find_bucket(service, bucket)
    if not served.serves(key):
        raise _no_such_key(key)  # whatever else the folder or bucket holds is not the gateway's to show
    store = served.store
    try:
        validate_key(key)
        obj = store.get(key)
    except ObjectNotFoundError as e:
        raise _no_such_key(key) from e
    except StorageError as e:
        if _is_invalid_key(key):
            raise _no_such_key(key) from e
        raise
    data, encryption = obj.data, list[tuple[str, str]]()
    if envelope.is_envelope(data):
        data, encryption = _decrypted(service, request, bucket, key, data)
    status, body, ranged = 200, data, list[tuple[str, str]]()
    span = _range(request.headers.get("range"), len(data))
    if span is not None:
        first, last = span
        status, body = 206, data[first:last + 1]
        ranged = [("content-range", f"bytes {first}-{last}/{len(data)}")]
    headers = [
        ("content-type", OBJECT_TYPE),
        ("content-length", str(len(body))),
        ("etag", _etag(data)),
        ("last-modified", _http_date(obj.last_modified)),
        ("accept-ranges", "bytes"),
        *ranged,
        *encryption,
    ]
    headers += [(f"x-amz-meta-{name}", value) for name, value in obj.metadata.items()]
    return S3Response(status, headers, b"" if request.method == "HEAD" else body)


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span a `Range: bytes=...` header asks for, as S3 reads it: one range
    (several, or another unit, get the whole object, as from S3); 416 InvalidRange when it
    starts past the end."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    try:
        if not dash or not (first_text or last_text):
            return None
        if not first_text:  # bytes=-N: the last N bytes
            suffix = int(last_text)
            if suffix <= 0 or size == 0:
                return _unsatisfiable(size)
            return max(0, size - suffix), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size:
        return _unsatisfiable(size)
    if first < 0 or last < first:
        return None
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> tuple[int, int]:
    raise _S3Error(416, "InvalidRange", "The requested range is not satisfiable", ActualObjectSize=str(size))


def _decrypted(service: BucketSource, request: S3Request, bucket: str, key: str,
               data: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    """The plaintext of an encrypted log file for a caller allowed to use its key."""
    if not request.can_decrypt:
        raise _S3Error(403, "AccessDenied", KMS_DENIED_MESSAGE)
    try:
        header = envelope.read_header(data)
        trail_arn = header.context.get("aws:cloudtrail:arn", "")
        plain = envelope.open_log(service.kms, data, trail_arn, bucket, key)
    except EnvelopeError as e:
        if e.reason == envelope.KEY_UNAVAILABLE:
            raise _S3Error(403, "AccessDenied", f"{KMS_DENIED_MESSAGE} ({e})") from e
        raise _S3Error(500, "InternalError", f"the encrypted object cannot be opened: {e.reason}: {e}") from e
    return plain, [("x-amz-server-side-encryption", "aws:kms"),
                   ("x-amz-server-side-encryption-aws-kms-key-id", header.key_arn)]


def _is_invalid_key(key: str) -> bool:
    try:
        validate_key(key)
    except StorageError:
        return True
    return False


def _no_such_key(key: str) -> _S3Error:
    return _S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


class _EtagCache:
    """Objects are immutable (create-exclusive), so an ETag per (store, key, size, mtime) stays valid;
    caching it keeps repeated listings from re-reading every file."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: dict[tuple[int, str, int, datetime], str] = {}
        self._lock = threading.Lock()

    def etag(self, store: ObjectStore, info: ObjectInfo) -> str | None:
        cache_key = (id(store), info.key, info.size, info.last_modified)
        with self._lock:
            cached = self._items.get(cache_key)
        if cached is not None:
            return cached
        try:
            value = _etag(store.get(info.key).data)
        except ObjectNotFoundError:
            return None
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[cache_key] = value
        return value


_ETAGS = _EtagCache(_ETAG_CACHE_SIZE)


# ---- listings ----

@dataclass
class _Page:
    contents: list[tuple[ObjectInfo, str]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    truncated: bool = False
    last: str | None = None


def _page(served: Bucket, prefix: str, after: str | None, delimiter: str, max_keys: int) -> _Page:
    """Served keys under `prefix` strictly after `after`, byte-wise ascending; with a delimiter,
    keys that contain it past the prefix roll up into one common prefix each (counted as one)."""
    page = _Page()
    store = served.store
    listing: Iterator[ObjectInfo] = store.list(prefix, after)
    count = 0
    while True:
        info = next(listing, None)
        if info is None:
            return page
        if not served.serves(info.key):
            continue
        common = _common_prefix(info.key, prefix, delimiter)
        if common is not None and after is not None and common <= after:
            # The marker is this common prefix (or inside it): it was returned already.
            listing = store.list(prefix, common + LAST_CHAR)
            continue
        if count == max_keys:
            page.truncated = True
            return page
        count += 1
        if common is not None:
            page.prefixes.append(common)
            page.last = common
            listing = store.list(prefix, common + LAST_CHAR)
            continue
        etag = _ETAGS.etag(store, info)
        if etag is not None:
            page.contents.append((info, etag))
            page.last = info.key


def _common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    if not delimiter:
        return None
    at = key.find(delimiter, len(prefix))
    return key[:at + len(delimiter)] if at >= 0 else None


def _max_keys(params: Mapping[str, str]) -> int:
    text = params.get("max-keys", "")
    if not text:
        return MAX_KEYS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise _S3Error(400, "InvalidArgument", f"max-keys {text!r} is not a non-negative integer.",
                       ArgumentName="max-keys", ArgumentValue=text)
    return min(value, MAX_KEYS)


def _url_encoding(params: Mapping[str, str]) -> bool:
    encoding = params.get("encoding-type")
    if encoding not in (None, "url"):
        raise _S3Error(400, "InvalidArgument", f"Invalid Encoding Method specified in Request: {encoding!r}; use 'url'.",
                       ArgumentName="encoding-type", ArgumentValue=str(encoding))
    return encoding == "url"


def _list_v1(served: Bucket, params: Mapping[str, str]) -> ET.Element:
    prefix, marker, delimiter = params.get("prefix", ""), params.get("marker", ""), params.get("delimiter", "")
    max_keys, url = _max_keys(params), _url_encoding(params)
    page = _page(served, prefix, marker or None, delimiter, max_keys)
    enc = _encoder(url)
    root = ET.Element("ListBucketResult", xmlns=S3_NS)
    # botocore decodes Marker, NextMarker, Delimiter, Key and CommonPrefixes for v1, not Prefix.
    _add(root, "Name", served.store.bucket)
    _add(root, "Prefix", prefix)
    _add(root, "Marker", enc(marker))
    if page.truncated and page.last is not None:
        _add(root, "NextMarker", enc(page.last))
    return _finish_listing(root, page, max_keys, delimiter, enc, url)


def _list_v2(served: Bucket, params: Mapping[str, str]) -> ET.Element:
    prefix, delimiter = params.get("prefix", ""), params.get("delimiter", "")
    start_after, token = params.get("start-after", ""), params.get("continuation-token")
    max_keys, url = _max_keys(params), _url_encoding(params)
    after = _decode_token(token) if token is not None else start_after or None
    page = _page(served, prefix, after, delimiter, max_keys)
    enc = _encoder(url)
    root = ET.Element("ListBucketResult", xmlns=S3_NS)
    _add(root, "Name", served.store.bucket)
    _add(root, "Prefix", enc(prefix))
    if start_after:
        _add(root, "StartAfter", enc(start_after))
    if token is not None:
        _add(root, "ContinuationToken", token)
    if page.truncated and page.last is not None:
        _add(root, "NextContinuationToken", _encode_token(page.last))
    _add(root, "KeyCount", str(len(page.contents) + len(page.prefixes)))
    return _finish_listing(root, page, max_keys, delimiter, enc, url)


def _finish_listing(root: ET.Element, page: _Page, max_keys: int, delimiter: str, enc: Callable[[str], str],
                    url: bool) -> ET.Element:
    """The elements v1 and v2 listings end with, in the order S3 writes them."""
    _add(root, "MaxKeys", str(max_keys))
    if delimiter:
        _add(root, "Delimiter", enc(delimiter))
    _add(root, "IsTruncated", _bool(page.truncated))
    _add_entries(root, page, enc)
    if url:
        _add(root, "EncodingType", "url")
    return root


def _add_entries(root: ET.Element, page: _Page, enc: Callable[[str], str]) -> None:
    for info, etag in page.contents:
        item = ET.SubElement(root, "Contents")
        _add(item, "Key", enc(info.key))
        _add(item, "LastModified", _iso_millis(info.last_modified))
        _add(item, "ETag", etag)
        _add(item, "Size", str(info.size))
        _add(item, "StorageClass", "STANDARD")
    for common in page.prefixes:
        _add(ET.SubElement(root, "CommonPrefixes"), "Prefix", enc(common))


def _encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        after = base64.b64decode(token.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
        if not after:
            raise ValueError("empty continuation token")
        return after
    except (binascii.Error, UnicodeError, ValueError) as e:
        raise _S3Error(400, "InvalidArgument", "The continuation token provided is incorrect; "
                       "pass NextContinuationToken from the previous page unchanged.",
                       ArgumentName="continuation-token") from e


def _encoder(url: bool) -> Callable[[str], str]:
    if not url:
        return lambda text: text
    # quote, not quote_plus: botocore decodes with unquote_plus, and %2B/%20 survive that.
    return lambda text: urllib.parse.quote(text, safe="/")


# ---- buckets ----

def _list_buckets(service: BucketSource) -> S3Response:
    epoch = datetime.fromtimestamp(0, UTC)
    made = [(t.config.bucket, t.created or epoch) for t in service.trails.all()]
    made += [(gone.config.bucket, gone.created) for gone in service.trails.deleted()]
    created: dict[str, datetime] = {}
    for bucket, when in made:
        created[bucket] = min(created.get(bucket, when), when)
    for bucket in buckets(service):  # an earlier place of a trail: no date of its own
        created.setdefault(bucket, epoch)
    root = ET.Element("ListAllMyBucketsResult", xmlns=S3_NS)
    owner = ET.SubElement(root, "Owner")
    _add(owner, "ID", service.account.account_id)
    _add(owner, "DisplayName", service.account.account_id)
    listed = ET.SubElement(root, "Buckets")
    for name in sorted(created):
        bucket_el = ET.SubElement(listed, "Bucket")
        _add(bucket_el, "Name", name)
        _add(bucket_el, "CreationDate", _iso_millis(created[name]))
    return _xml(root)


def _location(region: str) -> ET.Element:
    root = ET.Element("LocationConstraint", xmlns=S3_NS)
    if region != DEFAULT_S3_REGION:
        root.text = region
    return root


# ---- XML and formats ----

def _add(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _xml(root: ET.Element) -> S3Response:
    return S3Response(200, [("content-type", XML_TYPE)], _serialize(root))


def _serialize(root: ET.Element) -> bytes:
    # XML 1.0 cannot carry most control characters (a key or message may hold them).
    return XML_DECLARATION + xml_safe(ET.tostring(root, encoding="unicode")).encode("utf-8")


def _error_response(error: _S3Error, method: str, request_id: str) -> S3Response:
    if method.upper() == "HEAD":
        # HEAD responses have no body; clients read the status alone.
        return S3Response(error.status, [], b"")
    root = ET.Element("Error")
    _add(root, "Code", error.code)
    _add(root, "Message", str(error))
    for name, value in error.extra.items():
        _add(root, name, value)
    _add(root, "RequestId", request_id)
    return S3Response(error.status, [("content-type", XML_TYPE)], _serialize(root))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _iso_millis(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)
