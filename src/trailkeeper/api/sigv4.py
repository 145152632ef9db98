"""Verify AWS Signature Version 4 on incoming requests (Authorization header or presigned URL).

Framework-free: the ASGI layer builds a `SignedRequest` from the raw request and calls
`verify`. Errors are `AuthError`s carrying the AWS error code, message and HTTP status the
API should answer with.

Secrets come from a `lookup_secret(access_key_id)` callback that returns None for unknown
keys. A callback may also raise `AuthError` itself (the identity store does so for inactive
keys, which AWS answers exactly like unknown ones); `verify` lets that error through, except
that for S3 an `InvalidClientTokenId` is re-coded to S3's `InvalidAccessKeyId`.

S3 answers some failures with its own codes, and this module follows it:
unknown key → `InvalidAccessKeyId`, clock skew → `RequestTimeTooSkewed`, session token →
`InvalidToken`, missing `x-amz-content-sha256` → `InvalidRequest`, body not matching it →
`XAmzContentSHA256Mismatch`. Other services get the generic SigV4 codes. A request with no
credentials at all names no service, so it always gets `MissingAuthenticationToken`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes

from trailkeeper.errors import AuthError

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PRESIGN_EXPIRES = 604800  # one week, the SigV4 ceiling for X-Amz-Expires
DEFAULT_MAX_SKEW = timedelta(minutes=5)
S3 = "s3"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_QUERY_SAFE = "-_.~"  # RFC 3986 unreserved characters besides letters and digits
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)

MSG_MISSING_TOKEN = "Request is missing Authentication Token"
MSG_INVALID_TOKEN = "The security token included in the request is invalid."
MSG_S3_INVALID_KEY = "The AWS Access Key Id you provided does not exist in our records."
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
MSG_S3_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


@dataclass(frozen=True)
class SignedRequest:
    """An HTTP request as received: raw percent-encoded path and query, lowercase header
    names (repeated headers joined with ','), and the complete body."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class VerifiedRequest:
    access_key_id: str
    region: str
    service: str
    signed_at: datetime


@dataclass(frozen=True)
class _Credential:
    access_key_id: str
    date_stamp: str
    region: str
    service: str
    terminator: str

    @property
    def scope(self) -> str:
        return f"{self.date_stamp}/{self.region}/{self.service}/{self.terminator}"


@dataclass(frozen=True)
class _AuthParams:
    credential: _Credential
    signed_headers: str
    signature: str
    amz_date: str
    signed_at: datetime
    expires: int | None  # seconds, presigned URLs only

    @property
    def presigned(self) -> bool:
        return self.expires is not None


def verify(
    req: SignedRequest,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    region: str,
    services: Collection[str],
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> VerifiedRequest:
    """Check the SigV4 signature of `req`; return who signed it or raise AuthError."""
    if now.tzinfo is None:
        raise ValueError("verify() needs a timezone-aware `now`")
    params = _parse_auth(req)
    cred = params.credential
    _check_scope(params, region, services)
    _check_time(params, now, max_skew)
    _reject_session_token(req, cred.service)
    secret = _lookup(lookup_secret, cred)
    payload_hash = _canonical_payload_hash(req, params)
    creq = canonical_request(
        req, params.signed_headers, payload_hash, cred.service, params.presigned
    )
    sts = string_to_sign(params.amz_date, cred.scope, creq)
    key = signing_key(secret, cred.date_stamp, cred.region, cred.service)
    expected = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), params.signature.encode()):
        raise AuthError("SignatureDoesNotMatch", _mismatch_message(cred.service), 403)
    _check_declared_payload(req, cred.service)
    return VerifiedRequest(cred.access_key_id, cred.region, cred.service, params.signed_at)


# --- canonical forms (pure) ---------------------------------------------------------------


def canonical_uri(path: str, service: str) -> str:
    """S3 signs the path exactly as sent; every other service signs it normalised and
    percent-encoded a second time."""
    if service == S3:
        return path or "/"
    return quote(_remove_dot_segments(path), safe="/~")


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 §5.2.4, plus collapsing empty segments as AWS services do.
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if kept:
                kept.pop()
            continue
        kept.append(segment)
    lead = "/" if path.startswith("/") else ""
    trail = "/" if path.endswith("/") and kept else ""
    return lead + "/".join(kept) + trail


def _unquote(text: str) -> bytes:
    # Form decoding: botocore sends a space in a query value as '+' (urlencode) but signs
    # it as %20, so '+' must mean space here; a literal plus arrives as %2B.
    return unquote_to_bytes(text.replace("+", " "))


def _query_pairs(query: str) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((_unquote(key), _unquote(value)))
    return pairs


def canonical_query(query: str, exclude: Collection[str] = ()) -> str:
    """Decode every pair, re-encode it RFC 3986 style, sort by key then value."""
    encoded = sorted(
        (quote(key, safe=_QUERY_SAFE), quote(value, safe=_QUERY_SAFE))
        for key, value in _query_pairs(query)
        if key.decode("utf-8", "replace") not in exclude
    )
    return "&".join(f"{key}={value}" for key, value in encoded)


def _header_value(value: str) -> str:
    # SigV4 "trimall": strip the ends and collapse inner whitespace runs to one space.
    return " ".join(value.split())


def canonical_request(
    req: SignedRequest, signed_headers: str, payload_hash: str, service: str, presigned: bool
) -> str:
    names = signed_headers.split(";")
    headers = "".join(f"{name}:{_header_value(req.headers.get(name, ''))}\n" for name in names)
    exclude = ("X-Amz-Signature",) if presigned else ()
    return "\n".join(
        (
            req.method.upper(),
            canonical_uri(req.path, service),
            canonical_query(req.query, exclude),
            headers,
            signed_headers,
            payload_hash,
        )
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@functools.lru_cache(maxsize=512)
def signing_key(secret: str, date_stamp: str, region: str, service: str) -> bytes:
    """The derived key changes once a day per scope, so caching saves four HMACs a request."""
    key = ("AWS4" + secret).encode()
    for part in (date_stamp, region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# --- parsing ------------------------------------------------------------------------------


def _incomplete(message: str) -> AuthError:
    return AuthError("IncompleteSignature", message, 400)


def _parse_auth(req: SignedRequest) -> _AuthParams:
    header = req.headers.get("authorization")
    query = {key.decode("utf-8", "replace"): value for key, value in _query_pairs(req.query)}
    presigned = "X-Amz-Algorithm" in query or "X-Amz-Signature" in query
    if header is not None and presigned:
        raise AuthError(
            "InvalidRequest",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
            "or the Authorization header should be specified",
            400,
        )
    if header is not None:
        return _parse_header_auth(req, header)
    if presigned:
        return _parse_query_auth(req)
    raise AuthError("MissingAuthenticationToken", MSG_MISSING_TOKEN, 403)


def _parse_header_auth(req: SignedRequest, header: str) -> _AuthParams:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(
            f"Unsupported authorization algorithm '{algorithm}': sign requests with "
            f"AWS Signature Version 4 ({ALGORITHM}). Authorization={header}"
        )
    fields: dict[str, str] = {}
    for component in rest.split(","):
        name, sep, value = component.strip().partition("=")
        if sep:
            fields[name] = value
    missing = [n for n in ("Credential", "Signature", "SignedHeaders") if not fields.get(n)]
    if missing:
        required = " ".join(f"Authorization header requires '{n}' parameter." for n in missing)
        raise _incomplete(f"{required} Authorization={header}")
    amz_date = _header_date(req, header)
    return _AuthParams(
        credential=_parse_credential(fields["Credential"]),
        signed_headers=_check_signed_headers(fields["SignedHeaders"]),
        signature=fields["Signature"],
        amz_date=amz_date,
        signed_at=_parse_amz_date(amz_date),
        expires=None,
    )


def _header_date(req: SignedRequest, header: str) -> str:
    amz_date = req.headers.get("x-amz-date")
    if amz_date is not None:
        return amz_date.strip()
    http_date = req.headers.get("date")
    if http_date is None:
        raise _incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a "
            f"'Date' header. Authorization={header}"
        )
    try:
        parsed = parsedate_to_datetime(http_date)
    except (TypeError, ValueError) as e:
        raise _incomplete(f"Date header '{http_date}' is not an RFC 1123 date.") from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def _parse_query_auth(req: SignedRequest) -> _AuthParams:
    values: dict[str, list[str]] = {}
    for key, value in _query_pairs(req.query):
        name = key.decode("utf-8", "replace")
        if name in _PRESIGN_PARAMS:
            values.setdefault(name, []).append(value.decode("utf-8", "replace"))
    for name in _PRESIGN_PARAMS:
        if len(values.get(name, [])) != 1 or not values[name][0]:
            raise _incomplete(
                f"AWS query-string parameters must include '{name}' exactly once. "
                "Re-examine the query-string parameters."
            )
    params = {name: found[0] for name, found in values.items()}
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _incomplete(f"X-Amz-Algorithm only supports '{ALGORITHM}'")
    return _AuthParams(
        credential=_parse_credential(params["X-Amz-Credential"]),
        signed_headers=_check_signed_headers(params["X-Amz-SignedHeaders"]),
        signature=params["X-Amz-Signature"],
        amz_date=params["X-Amz-Date"],
        signed_at=_parse_amz_date(params["X-Amz-Date"]),
        expires=_parse_expires(params["X-Amz-Expires"]),
    )


def _parse_expires(text: str) -> int:
    if not text.isdigit():
        raise _incomplete(f"X-Amz-Expires should be a number of seconds, got '{text}'")
    expires = int(text)
    if expires > MAX_PRESIGN_EXPIRES:
        raise _incomplete(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}"
        )
    return expires


def _parse_credential(text: str) -> _Credential:
    parts = text.split("/")
    if len(parts) != 5 or not all(parts):
        raise _incomplete(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{text}'"
        )
    return _Credential(*parts)


def _check_signed_headers(text: str) -> str:
    names = text.split(";")
    if not all(names):
        raise _incomplete(f"SignedHeaders '{text}' contains an empty header name.")
    # Without the host signed, a captured request could be replayed against another server.
    if "host" not in names:
        raise _incomplete("'Host' must be a 'SignedHeader' in the AWS Authorization.")
    return text


def _parse_amz_date(text: str) -> datetime:
    if not _AMZ_DATE_RE.fullmatch(text):
        raise _incomplete(
            f"Date must be in ISO-8601 'basic format'. Got '{text}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601"
        )
    try:
        # The regex fixed every position, so slicing is exact (and strptime costs ~10 µs).
        return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[9:11]),
                        int(text[11:13]), int(text[13:15]), tzinfo=UTC)
    except ValueError as e:
        raise _incomplete(f"Date '{text}' is not a valid date.") from e


# --- checks -------------------------------------------------------------------------------


def _mismatch_message(service: str) -> str:
    return MSG_S3_MISMATCH if service == S3 else MSG_MISMATCH


def _check_scope(params: _AuthParams, region: str, services: Collection[str]) -> None:
    cred = params.credential
    if cred.terminator != TERMINATOR:
        raise AuthError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{cred.terminator}'.",
        )
    if cred.service not in services:
        expected = "' or '".join(sorted(services))
        raise AuthError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to correct service: '{expected}'.",
        )
    if cred.region != region:
        raise AuthError(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to a valid region, not '{cred.region}'.",
        )
    if cred.date_stamp != params.amz_date[:8]:
        raise AuthError(
            "SignatureDoesNotMatch",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{cred.date_stamp}' != '{params.amz_date[:8]}', from '{params.amz_date}'.",
        )


def _fmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime(AMZ_DATE_FORMAT)


def _check_time(params: _AuthParams, now: datetime, max_skew: timedelta) -> None:
    if params.expires is not None:
        _check_presign_window(params.signed_at, params.expires, now, max_skew)
        return
    minutes = int(max_skew.total_seconds() // 60)
    if params.signed_at < now - max_skew:
        message = (
            f"Signature expired: {params.amz_date} is now earlier than "
            f"{_fmt(now - max_skew)} ({_fmt(now)} - {minutes} min.)"
        )
    elif params.signed_at > now + max_skew:
        message = (
            f"Signature not yet current: {params.amz_date} is still later than "
            f"{_fmt(now + max_skew)} ({_fmt(now)} + {minutes} min.)"
        )
    else:
        return
    if params.credential.service == S3:
        raise AuthError(
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        )
    raise AuthError("SignatureDoesNotMatch", message)


def _check_presign_window(
    signed_at: datetime, expires: int, now: datetime, skew: timedelta
) -> None:
    if now > signed_at + timedelta(seconds=expires):
        raise AuthError("AccessDenied", "Request has expired")
    if signed_at > now + skew:
        raise AuthError("AccessDenied", "Request is not valid yet")


def _reject_session_token(req: SignedRequest, service: str) -> None:
    # trailkeeper issues no temporary credentials, so no session token can be valid.
    in_query = any(key == b"X-Amz-Security-Token" for key, _ in _query_pairs(req.query))
    if "x-amz-security-token" not in req.headers and not in_query:
        return
    if service == S3:
        raise AuthError(
            "InvalidToken", "The provided token is malformed or otherwise invalid.", 400
        )
    raise AuthError("InvalidClientTokenId", MSG_INVALID_TOKEN)


def _lookup(lookup_secret: Callable[[str], str | None], cred: _Credential) -> str:
    try:
        secret = lookup_secret(cred.access_key_id)
    except AuthError as e:
        if cred.service == S3 and e.code == "InvalidClientTokenId":
            raise AuthError("InvalidAccessKeyId", MSG_S3_INVALID_KEY, 403) from e
        raise
    if secret is not None:
        return secret
    if cred.service == S3:
        raise AuthError("InvalidAccessKeyId", MSG_S3_INVALID_KEY, 403)
    raise AuthError("InvalidClientTokenId", MSG_INVALID_TOKEN, 403)


def _canonical_payload_hash(req: SignedRequest, params: _AuthParams) -> str:
    declared = req.headers.get("x-amz-content-sha256")
    if declared is not None:
        return declared.strip()
    if params.credential.service == S3:
        if params.presigned:
            return UNSIGNED_PAYLOAD
        raise AuthError(
            "InvalidRequest", "Missing required header for this request: x-amz-content-sha256", 400
        )
    return hashlib.sha256(req.body).hexdigest()


def _check_declared_payload(req: SignedRequest, service: str) -> None:
    """The signature covers the declared hash; this checks the body really has that hash."""
    declared = req.headers.get("x-amz-content-sha256")
    if declared is None or declared.strip() == UNSIGNED_PAYLOAD:
        return
    declared = declared.strip()
    if declared.startswith("STREAMING-"):
        raise AuthError(
            "NotImplemented",
            f"x-amz-content-sha256 '{declared}' (chunked signing) is not supported; "
            "send the whole body with its SHA-256 or UNSIGNED-PAYLOAD",
            501,
        )
    actual = hashlib.sha256(req.body).hexdigest()
    if hmac.compare_digest(actual.encode(), declared.lower().encode()):
        return
    if service == S3:
        raise AuthError(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
            400,
        )
    raise AuthError("SignatureDoesNotMatch", MSG_MISMATCH)
