"""SigV4 verification. Every signed request here is signed by botocore, never by our code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from trailkeeper.api.sigv4 import (
    MSG_MISMATCH,
    MSG_S3_MISMATCH,
    SignedRequest,
    canonical_query,
    canonical_uri,
    signing_key,
    verify,
)
from trailkeeper.errors import AuthError

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
ENDPOINT = "http://localhost:8080"
SERVICES = ("cloudtrail", "s3")
SPECIAL_PARAMS = [
    ("b", "x y"),
    ("a", "1=2/3~"),
    ("unicode", "é✓"),
    ("rep", "2"),
    ("rep", "1"),
    ("empty", ""),
    ("plus", "a+b"),
]


def lookup(key_id: str) -> str | None:
    return SECRET if key_id == KEY_ID else None


def sign(
    method: str,
    url: str,
    *,
    service: str = "cloudtrail",
    signer: type[SigV4Auth] = SigV4Auth,
    data: bytes = b"",
    headers: dict[str, str] | None = None,
    params: list[tuple[str, str]] | None = None,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    region: str = REGION,
    token: str | None = None,
    context: dict[str, Any] | None = None,
    **signer_args: Any,
) -> AWSPreparedRequest:
    request = AWSRequest(method=method, url=url, data=data, headers=headers or {}, params=params)
    request.context.update(context or {})
    signer(Credentials(key_id, secret, token), service, region, **signer_args).add_auth(request)
    return request.prepare()


def received(prepared: AWSPreparedRequest) -> SignedRequest:
    """What the ASGI layer would hand to verify() for this request."""
    parts = urlsplit(prepared.url)
    headers: dict[str, str] = {"host": parts.netloc}
    for name, value in prepared.headers.items():
        text = value.decode() if isinstance(value, bytes) else value
        key = name.lower()
        headers[key] = f"{headers[key]},{text}" if key in headers and key != "host" else text
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    return SignedRequest(prepared.method, parts.path, parts.query, headers, body)


def signed_time(req: SignedRequest) -> datetime:
    text = req.headers.get("x-amz-date")
    if text is None:
        text = dict(pair.split("=", 1) for pair in req.query.split("&"))["X-Amz-Date"]
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def check(
    req: SignedRequest,
    now: datetime | None = None,
    lookup_secret: Callable[[str], str | None] = lookup,
    services: tuple[str, ...] = SERVICES,
) -> Any:
    return verify(req, lookup_secret, now or signed_time(req), REGION, services)


def auth_error(req: SignedRequest, **kwargs: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        check(req, **kwargs)
    return info.value


def replace(req: SignedRequest, **changes: Any) -> SignedRequest:
    fields = {
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "headers": dict(req.headers),
        "body": req.body,
    }
    fields.update(changes)
    return SignedRequest(**fields)


def with_headers(req: SignedRequest, **headers: str) -> SignedRequest:
    return replace(req, headers={**req.headers, **headers})


def cloudtrail_post(body: bytes = b'{"Name":"t"}') -> SignedRequest:
    return received(
        sign(
            "POST",
            ENDPOINT + "/",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "CloudTrail_20131101.DescribeTrails",
            },
        )
    )


# --- known answers for the pure parts ----------------------------------------------------


def test_signing_key_matches_aws_documented_example() -> None:
    key = signing_key(SECRET, "20120215", "us-east-1", "iam")
    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


@pytest.mark.parametrize(
    ("path", "service", "expected"),
    [
        ("/", "cloudtrail", "/"),
        ("", "cloudtrail", "/"),
        ("/a/./b/../c//d/", "cloudtrail", "/a/c/d/"),
        ("/a%20b/%C3%A9", "cloudtrail", "/a%2520b/%25C3%25A9"),
        ("/a/./b//c%20d", "s3", "/a/./b//c%20d"),
        ("", "s3", "/"),
    ],
)
def test_canonical_uri(path: str, service: str, expected: str) -> None:
    assert canonical_uri(path, service) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=1&a=", "a=&a=1&a=2"),
        ("k=a b", "k=a%20b"),
        ("k=%7e%2f%3D", "k=~%2F%3D"),
        ("flag", "flag="),
        ("k=a+b", "k=a%20b"),
        ("k=a%2Bb", "k=a%2Bb"),
    ],
)
def test_canonical_query(query: str, expected: str) -> None:
    assert canonical_query(query) == expected


# --- requests signed by botocore that must verify -----------------------------------------


def test_get_with_special_query_parameters_verifies() -> None:
    req = received(sign("GET", ENDPOINT + "/", params=SPECIAL_PARAMS))
    result = check(req)
    assert (result.access_key_id, result.region, result.service) == (KEY_ID, REGION, "cloudtrail")
    assert result.signed_at == signed_time(req)


def test_raw_query_in_url_verifies() -> None:
    req = received(sign("GET", ENDPOINT + "/?z=%2F&a=b%20c&a=&m=%E2%9C%93"))
    assert check(req).service == "cloudtrail"


def test_post_json_body_verifies() -> None:
    assert check(cloudtrail_post()).access_key_id == KEY_ID


def test_post_with_query_and_body_verifies() -> None:
    req = received(sign("POST", ENDPOINT + "/x", data=b"payload", params=SPECIAL_PARAMS))
    assert check(req).access_key_id == KEY_ID


@pytest.mark.parametrize("path", ["/a%20b/%C3%A9~x", "/a/./b/../c//d", "/p%2Fq/"])
def test_non_s3_path_is_normalised_and_double_encoded(path: str) -> None:
    req = received(sign("GET", ENDPOINT + path))
    assert req.path == path
    assert check(req).service == "cloudtrail"


@pytest.mark.parametrize(
    "key",
    [
        "AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/01/a%20b%2Bc~%C3%A9.json.gz",
        "odd/./dots/../and//slashes",
        "q%3Fx%3Dy%26z",
    ],
)
def test_s3_path_with_special_characters_verifies(key: str) -> None:
    req = received(sign("GET", f"{ENDPOINT}/bucket/{key}", service="s3", signer=S3SigV4Auth))
    assert check(req).service == "s3"


def test_s3_list_with_query_verifies() -> None:
    params = [("list-type", "2"), ("prefix", "AWSLogs/1/CloudTrail/"), ("start-after", "a b")]
    req = received(
        sign("GET", ENDPOINT + "/bucket", service="s3", signer=S3SigV4Auth, params=params)
    )
    assert check(req).service == "s3"


def test_s3_unsigned_payload_verifies_whatever_the_body() -> None:
    context = {"client_config": Config(s3={"payload_signing_enabled": False})}
    prepared = sign(
        "PUT", ENDPOINT + "/bucket/k", service="s3", signer=S3SigV4Auth, data=b"x", context=context
    )
    req = received(prepared)
    assert req.headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert check(replace(req, body=b"other")).service == "s3"


def test_date_header_instead_of_x_amz_date_verifies() -> None:
    req = received(sign("GET", ENDPOINT + "/", headers={"Date": "placeholder"}))
    assert "x-amz-date" not in req.headers
    now = parsedate_to_datetime(req.headers["date"]).replace(tzinfo=UTC)
    assert check(req, now=now).signed_at == now


def test_unsigned_header_added_after_signing_still_verifies() -> None:
    req = with_headers(cloudtrail_post(), **{"user-agent": "changed", "x-forwarded-for": "1.2.3.4"})
    assert check(req).access_key_id == KEY_ID


def test_header_whitespace_is_trimmed_and_collapsed() -> None:
    req = received(sign("GET", ENDPOINT + "/", headers={"X-Custom": "  a   b \t c  "}))
    assert req.headers["x-custom"] == "  a   b \t c  "
    assert check(req).access_key_id == KEY_ID


def test_skew_just_inside_the_window_verifies() -> None:
    req = cloudtrail_post()
    assert check(req, now=signed_time(req) + timedelta(minutes=4, seconds=59)).service
    assert check(req, now=signed_time(req) - timedelta(minutes=4, seconds=59)).service


def test_signing_key_is_cached_between_requests() -> None:
    check(cloudtrail_post())
    hits = signing_key.cache_info().hits
    check(cloudtrail_post(b"second"))
    assert signing_key.cache_info().hits == hits + 1


# --- presigned URLs ------------------------------------------------------------------------


def presigned_s3(expires: int = 300) -> SignedRequest:
    url = ENDPOINT + "/bucket/AWSLogs/a%20b.json.gz"
    return received(sign("GET", url, service="s3", signer=S3SigV4QueryAuth, expires=expires))


def test_presigned_s3_url_verifies() -> None:
    req = presigned_s3()
    assert "authorization" not in req.headers
    assert check(req, now=signed_time(req) + timedelta(seconds=299)).service == "s3"


def test_presigned_non_s3_url_verifies() -> None:
    req = received(
        sign(
            "GET",
            ENDPOINT + "/",
            params=[("Action", "Describe"), ("x", "a b")],
            signer=SigV4QueryAuth,
            expires=60,
        )
    )
    assert check(req).service == "cloudtrail"


def test_presigned_url_expired() -> None:
    req = presigned_s3(expires=300)
    error = auth_error(req, now=signed_time(req) + timedelta(seconds=301))
    assert (error.code, str(error), error.status) == ("AccessDenied", "Request has expired", 403)


def test_presigned_url_not_yet_valid() -> None:
    req = presigned_s3()
    error = auth_error(req, now=signed_time(req) - timedelta(minutes=6))
    assert (error.code, str(error)) == ("AccessDenied", "Request is not valid yet")


def test_presigned_url_with_tampered_query_fails() -> None:
    req = presigned_s3()
    error = auth_error(replace(req, path="/bucket/AWSLogs/other.json.gz"))
    assert (error.code, str(error)) == ("SignatureDoesNotMatch", MSG_S3_MISMATCH)


def test_presigned_expires_over_a_week_is_rejected() -> None:
    req = presigned_s3()
    tampered = replace(req, query=req.query.replace("X-Amz-Expires=300", "X-Amz-Expires=604801"))
    assert auth_error(tampered).code == "IncompleteSignature"


def test_presigned_and_header_auth_together_are_rejected() -> None:
    req = presigned_s3()
    error = auth_error(with_headers(req, authorization=cloudtrail_post().headers["authorization"]))
    assert (error.code, error.status) == ("InvalidRequest", 400)


# --- failures ------------------------------------------------------------------------------


def test_signature_expired_six_minutes_old() -> None:
    req = cloudtrail_post()
    at = signed_time(req)
    error = auth_error(req, now=at + timedelta(minutes=6))
    fmt = "%Y%m%dT%H%M%SZ"
    expected = (
        f"Signature expired: {at.strftime(fmt)} is now earlier than "
        f"{(at + timedelta(minutes=1)).strftime(fmt)} "
        f"({(at + timedelta(minutes=6)).strftime(fmt)} - 5 min.)"
    )
    assert (error.code, str(error), error.status) == ("SignatureDoesNotMatch", expected, 403)


def test_signature_six_minutes_in_the_future() -> None:
    req = cloudtrail_post()
    error = auth_error(req, now=signed_time(req) - timedelta(minutes=6))
    assert error.code == "SignatureDoesNotMatch"
    assert str(error).startswith("Signature not yet current: ")


def test_s3_skew_is_request_time_too_skewed() -> None:
    req = received(sign("GET", ENDPOINT + "/bucket/k", service="s3", signer=S3SigV4Auth))
    error = auth_error(req, now=signed_time(req) + timedelta(minutes=6))
    assert (error.code, error.status) == ("RequestTimeTooSkewed", 403)


def test_wrong_secret() -> None:
    req = received(sign("GET", ENDPOINT + "/", secret="not-the-secret"))
    error = auth_error(req)
    assert (error.code, str(error), error.status) == ("SignatureDoesNotMatch", MSG_MISMATCH, 403)


def test_wrong_region() -> None:
    req = received(sign("GET", ENDPOINT + "/", region="eu-west-1"))
    error = auth_error(req)
    assert error.code == "SignatureDoesNotMatch"
    assert str(error) == "Credential should be scoped to a valid region, not 'eu-west-1'."


def test_service_not_served() -> None:
    req = received(sign("GET", ENDPOINT + "/", service="sts"))
    error = auth_error(req, services=("cloudtrail",))
    assert error.code == "SignatureDoesNotMatch"
    assert str(error) == "Credential should be scoped to correct service: 'cloudtrail'."


def test_unknown_key() -> None:
    req = received(sign("GET", ENDPOINT + "/", key_id="AKIAUNKNOWNUNKNOWN00"))
    error = auth_error(req)
    assert (error.code, error.status) == ("InvalidClientTokenId", 403)
    assert str(error) == "The security token included in the request is invalid."


def test_unknown_key_on_s3_is_invalid_access_key_id() -> None:
    req = received(
        sign("GET", ENDPOINT + "/b/k", service="s3", signer=S3SigV4Auth, key_id="AKIAUNKNOWN")
    )
    assert auth_error(req).code == "InvalidAccessKeyId"


def inactive_lookup(key_id: str) -> str | None:
    raise AuthError(
        "InvalidClientTokenId", "The security token included in the request is invalid."
    )


def test_inactive_key_via_lookup_raising() -> None:
    error = auth_error(cloudtrail_post(), lookup_secret=inactive_lookup)
    assert (error.code, error.status) == ("InvalidClientTokenId", 403)


def test_inactive_key_on_s3_is_invalid_access_key_id() -> None:
    req = received(sign("GET", ENDPOINT + "/b/k", service="s3", signer=S3SigV4Auth))
    assert auth_error(req, lookup_secret=inactive_lookup).code == "InvalidAccessKeyId"


def test_body_changed_after_signing() -> None:
    req = replace(cloudtrail_post(b'{"Name":"t"}'), body=b'{"Name":"u"}')
    assert auth_error(req).code == "SignatureDoesNotMatch"


def test_s3_body_changed_after_signing_is_content_sha256_mismatch() -> None:
    prepared = sign("PUT", ENDPOINT + "/b/k", service="s3", signer=S3SigV4Auth, data=b"one")
    error = auth_error(replace(received(prepared), body=b"two"))
    assert (error.code, error.status) == ("XAmzContentSHA256Mismatch", 400)


def test_s3_without_content_sha256_header_is_invalid_request() -> None:
    req = received(sign("GET", ENDPOINT + "/b/k", service="s3", signer=S3SigV4Auth))
    headers = {k: v for k, v in req.headers.items() if k != "x-amz-content-sha256"}
    assert auth_error(replace(req, headers=headers)).code == "InvalidRequest"


def test_non_s3_declared_hash_not_matching_body() -> None:
    # botocore signs the declared hash rather than the body when the header is present.
    body_hash = "0" * 64
    req = received(
        sign("POST", ENDPOINT + "/", data=b"x", headers={"X-Amz-Content-SHA256": body_hash})
    )
    assert auth_error(req).code == "SignatureDoesNotMatch"


def test_signed_header_changed_after_signing() -> None:
    req = with_headers(cloudtrail_post(), **{"x-amz-target": "CloudTrail_20131101.DeleteTrail"})
    assert auth_error(req).code == "SignatureDoesNotMatch"


def test_host_changed_after_signing() -> None:
    assert (
        auth_error(with_headers(cloudtrail_post(), host="evil:8080")).code
        == "SignatureDoesNotMatch"
    )


def test_method_changed_after_signing() -> None:
    req = received(sign("GET", ENDPOINT + "/", params=SPECIAL_PARAMS))
    assert auth_error(replace(req, method="DELETE")).code == "SignatureDoesNotMatch"


def test_query_changed_after_signing() -> None:
    req = received(sign("GET", ENDPOINT + "/", params=[("a", "1")]))
    assert auth_error(replace(req, query="a=2")).code == "SignatureDoesNotMatch"


def test_session_token_is_rejected() -> None:
    req = received(sign("GET", ENDPOINT + "/", token="FwoGZXIvYXdzEXAMPLE"))
    assert auth_error(req).code == "InvalidClientTokenId"


def test_missing_authorization() -> None:
    req = cloudtrail_post()
    now = signed_time(req)
    error = auth_error(replace(req, headers={"host": "localhost:8080"}), now=now)
    assert (error.code, str(error), error.status) == (
        "MissingAuthenticationToken",
        "Request is missing Authentication Token",
        403,
    )


def test_date_in_scope_must_match_request_date() -> None:
    req = cloudtrail_post()
    at = signed_time(req) + timedelta(days=1)
    error = auth_error(with_headers(req, **{"x-amz-date": at.strftime("%Y%m%dT%H%M%SZ")}), now=at)
    assert error.code == "SignatureDoesNotMatch"
    assert str(error).startswith("Date in Credential scope does not match")


@pytest.mark.parametrize(
    ("authorization", "needle"),
    [
        ("AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl", "Unsupported authorization algorithm 'AWS'"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/cloudtrail/aws4_request",
            "requires 'Signature' parameter. Authorization header requires 'SignedHeaders'",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=00",
            "exactly 5 slash-delimited elements",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/cloudtrail/aws4_request, "
            "SignedHeaders=x-amz-date, Signature=00",
            "'Host' must be a 'SignedHeader'",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/cloudtrail/aws4_request, "
            "SignedHeaders=host;;x-amz-date, Signature=00",
            "empty header name",
        ),
        ("", "Unsupported authorization algorithm ''"),
    ],
)
def test_malformed_authorization(authorization: str, needle: str) -> None:
    req = with_headers(cloudtrail_post(), authorization=authorization)
    error = auth_error(req)
    assert (error.code, error.status) == ("IncompleteSignature", 400)
    assert needle in str(error)


@pytest.mark.parametrize("amz_date", ["2024-01-01T00:00:00Z", "20241301T000000Z", ""])
def test_malformed_x_amz_date(amz_date: str) -> None:
    req = cloudtrail_post()
    now = signed_time(req)
    assert (
        auth_error(with_headers(req, **{"x-amz-date": amz_date}), now=now).code
        == "IncompleteSignature"
    )


def test_missing_date_headers() -> None:
    req = cloudtrail_post()
    headers = {k: v for k, v in req.headers.items() if k != "x-amz-date"}
    error = auth_error(replace(req, headers=headers), now=signed_time(req))
    assert error.code == "IncompleteSignature"
    assert "'X-Amz-Date' or a 'Date' header" in str(error)
