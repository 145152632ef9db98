"""The read-only S3 gateway, called directly and through a real botocore S3 client."""

from __future__ import annotations

import gzip
import hashlib
import io
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import botocore.session
import orjson
import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from botocore.handlers import decode_list_object, parse_get_bucket_location
from botocore.parsers import create_parser
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper import layout
from trailkeeper.api.s3 import (
    READ_ONLY_MESSAGE,
    S3Request,
    S3Response,
    buckets,
    handle_s3,
    write_operation,
)
from trailkeeper.service import Service
from trailkeeper.storage.base import ObjectStore
from trailkeeper.trails import TrailConfig

BUCKET = "audit-bucket"
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# Trails sharing the bucket under S3KeyPrefixes with characters URL encoding must carry: the
# gateway serves only trail layout keys, so odd keys are log keys of these trails.
ODD_PREFIXES = ("odd/a+b c", "odd/sp ace/x", "odd/\u00fcml\u00e4ut")
ODD_WHEN = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
ODD_KEYS: list[str] = []  # filled by the fixture (they hold the account id)
PLANTED = "odd/not-a-trail-file.txt"

Call = tuple[str, Any, Any, Any, Any]


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    tmp_path = tmp_path_factory.mktemp("s3")
    with open_pipeline(tmp_path) as p:
        config = TrailConfig(name="main", bucket=BUCKET, destination=str(tmp_path / "dest"), validation=True,
                             flush_interval_s=1, digest_interval_s=60)
        p.service.create_trail(config)
        p.service.start_logging("main")
        for _ in range(3):
            p.ingest([app_event(i, p.clock.now()) for i in range(5)])
            p.advance(2)
            p.advance(61)
        store = p.service.open_store(p.service.get_trail("main"))
        account, region = p.service.account.account_id, p.service.account.region
        for i, prefix in enumerate(ODD_PREFIXES):
            p.service.create_trail(replace(config, name=f"odd-{i}", prefix=prefix))
            ODD_KEYS.append(layout.log_key(prefix, account, region, ODD_WHEN, "OddKey" + "0" * 9 + str(i)))
        ODD_KEYS.sort(key=str.encode)
        for key in [*ODD_KEYS, PLANTED]:
            store.put_exclusive(key, key.encode(), {})
        yield p


@pytest.fixture
def service(delivered: Pipeline) -> Service:
    return delivered.service


@pytest.fixture
def store(service: Service) -> ObjectStore:
    return buckets(service)[BUCKET].store


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    def __call__(self, op: str, params: Any, code: Any, message: Any, resources: Any) -> None:
        self.calls.append((op, params, code, message, resources))


def call(service: Service, method: str, path: str, query: str = "", recorder: Recorder | None = None) -> S3Response:
    return handle_s3(service, S3Request(method, path, query, {}), recorder or Recorder())


def xml(response: S3Response) -> ET.Element:
    return ET.fromstring(response.body)


def keys_of(root: ET.Element) -> list[str]:
    return [el.text or "" for el in root.iter(f"{NS}Key")]


def all_keys(store: ObjectStore) -> list[str]:
    """What the gateway may list: every key of the folder but the planted one."""
    return [info.key for info in store.list() if info.key != PLANTED]


def header(response: S3Response, name: str) -> str | None:
    return next((v for k, v in response.headers if k == name), None)


# ---- direct calls ----

def test_list_buckets_and_location(service: Service) -> None:
    root = xml(call(service, "GET", "/"))
    assert root.tag == f"{NS}ListAllMyBucketsResult"
    assert root.findtext(f"{NS}Owner/{NS}ID") == service.account.account_id
    assert [b.findtext(f"{NS}Name") for b in root.iter(f"{NS}Bucket")] == [BUCKET]
    created = root.findtext(f"{NS}Buckets/{NS}Bucket/{NS}CreationDate") or ""
    assert created.endswith("Z") and "." in created
    location = xml(call(service, "GET", f"/{BUCKET}", "location"))
    assert location.tag == f"{NS}LocationConstraint"
    expected = "" if service.account.region == "us-east-1" else service.account.region
    assert (location.text or "") == expected


def test_delivery_produced_logs_and_digests(store: ObjectStore) -> None:
    keys = all_keys(store)
    assert any("/CloudTrail-Digest/" in k for k in keys)
    assert any("/CloudTrail/" in k for k in keys)
    assert keys == sorted(keys, key=lambda k: k.encode())


def test_list_v1_full_listing_matches_the_store(service: Service, store: ObjectStore) -> None:
    root = xml(call(service, "GET", f"/{BUCKET}"))
    assert root.findtext(f"{NS}IsTruncated") == "false"
    assert root.findtext(f"{NS}MaxKeys") == "1000"
    assert keys_of(root) == all_keys(store)
    first = root.find(f"{NS}Contents")
    assert first is not None
    key = first.findtext(f"{NS}Key") or ""
    data = store.get(key).data
    assert first.findtext(f"{NS}ETag") == f'"{hashlib.md5(data).hexdigest()}"'
    assert first.findtext(f"{NS}Size") == str(len(data))
    assert first.findtext(f"{NS}StorageClass") == "STANDARD"
    modified = first.findtext(f"{NS}LastModified") or ""
    assert len(modified) == len("2024-01-01T00:00:00.000Z") and modified.endswith("Z")


def test_list_v1_pages_of_one_walk_every_key_once(service: Service, store: ObjectStore) -> None:
    seen: list[str] = []
    marker = ""
    for _ in range(200):
        root = xml(call(service, "GET", f"/{BUCKET}", urllib.parse.urlencode({"marker": marker, "max-keys": "1"})))
        page = keys_of(root)
        seen += page
        if root.findtext(f"{NS}IsTruncated") == "false":
            break
        assert len(page) == 1
        marker = root.findtext(f"{NS}NextMarker") or ""
        assert marker == page[0]
    assert seen == all_keys(store)


def test_list_v1_prefix_and_marker_are_strict(service: Service, store: ObjectStore) -> None:
    digests = [k for k in all_keys(store) if "/CloudTrail-Digest/" in k]
    prefix = digests[0][:digests[0].index("/CloudTrail-Digest/") + len("/CloudTrail-Digest")]
    query = urllib.parse.urlencode({"prefix": prefix, "marker": digests[0]})
    root = xml(call(service, "GET", f"/{BUCKET}", query))
    assert keys_of(root) == digests[1:]
    assert root.findtext(f"{NS}Prefix") == prefix


def test_list_v1_url_encoding_and_delimiter(service: Service) -> None:
    query = urllib.parse.urlencode({"prefix": "odd/", "delimiter": "/", "encoding-type": "url"})
    root = xml(call(service, "GET", f"/{BUCKET}", query))
    assert root.findtext(f"{NS}EncodingType") == "url"
    assert keys_of(root) == []
    assert [p.text for p in root.iter(f"{NS}Prefix") if p.text != "odd/"] == [
        "odd/a%2Bb%20c/", "odd/sp%20ace/", "odd/%C3%BCml%C3%A4ut/"]
    raw = xml(call(service, "GET", f"/{BUCKET}", "prefix=odd%2F"))
    assert raw.find(f"{NS}EncodingType") is None
    assert keys_of(raw) == ODD_KEYS  # and not the planted file beside them


def test_list_v1_delimiter_marker_on_a_common_prefix_skips_it(service: Service) -> None:
    query = urllib.parse.urlencode({"prefix": "odd/", "delimiter": "/", "marker": "odd/sp ace/"})
    root = xml(call(service, "GET", f"/{BUCKET}", query))
    assert keys_of(root) == []
    assert [p.text for p in root.iter(f"{NS}Prefix") if p.text != "odd/"] == ["odd/\u00fcml\u00e4ut/"]


def test_list_v2_continuation(service: Service, store: ObjectStore) -> None:
    seen: list[str] = []
    token: str | None = None
    for _ in range(100):
        params = {"list-type": "2", "max-keys": "2"} | ({"continuation-token": token} if token else {})
        root = xml(call(service, "GET", f"/{BUCKET}", urllib.parse.urlencode(params)))
        page = keys_of(root)
        assert root.findtext(f"{NS}KeyCount") == str(len(page))
        seen += page
        if root.findtext(f"{NS}IsTruncated") == "false":
            assert root.find(f"{NS}NextContinuationToken") is None
            break
        token = root.findtext(f"{NS}NextContinuationToken")
    assert seen == all_keys(store)
    after = xml(call(service, "GET", f"/{BUCKET}", urllib.parse.urlencode({"list-type": "2", "start-after": seen[-2]})))
    assert keys_of(after) == seen[-1:]


@pytest.mark.parametrize("query", ["max-keys=-1", "max-keys=ten", "encoding-type=base64",
                                   "list-type=2&continuation-token=%25%25", "list-type=2&continuation-token="])
def test_bad_listing_arguments_are_400(service: Service, query: str) -> None:
    response = call(service, "GET", f"/{BUCKET}", query)
    assert response.status == 400
    assert xml(response).findtext("Code") == "InvalidArgument"


def test_unsupported_bucket_subresource_is_501(service: Service) -> None:
    response = call(service, "GET", f"/{BUCKET}", "acl")
    assert response.status == 501 and xml(response).findtext("Code") == "NotImplemented"


def test_get_returns_stored_bytes_and_lowercase_metadata(service: Service, store: ObjectStore) -> None:
    digest_key = next(k for k in all_keys(store) if "/CloudTrail-Digest/" in k)
    recorder = Recorder()
    response = call(service, "GET", "/" + BUCKET + "/" + urllib.parse.quote(digest_key), recorder=recorder)
    stored = store.get(digest_key)
    assert response.status == 200
    assert response.body == stored.data
    assert orjson.loads(gzip.decompress(response.body))["digestS3Object"] == digest_key
    assert header(response, "x-amz-meta-signature") == stored.metadata["signature"]
    assert header(response, "x-amz-meta-signature-algorithm") == "SHA256withRSA"
    assert header(response, "content-length") == str(len(stored.data))
    assert header(response, "etag") == f'"{hashlib.md5(stored.data).hexdigest()}"'
    assert (header(response, "last-modified") or "").endswith(" GMT")
    assert not any(k.startswith("x-amz-checksum") for k, _ in response.headers)
    assert [(c[0], c[1], c[2]) for c in recorder.calls] == [("GetObject", {"bucketName": BUCKET, "key": digest_key}, None)]
    resources = recorder.calls[0][4]
    assert resources[0] == {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{BUCKET}/{digest_key}"}
    assert resources[1]["accountId"] == service.account.account_id


def test_head_has_headers_and_no_body(service: Service, store: ObjectStore) -> None:
    recorder = Recorder()
    plus = next(k for k in ODD_KEYS if "+" in k)
    response = call(service, "HEAD", f"/{BUCKET}/{urllib.parse.quote(plus)}", recorder=recorder)
    assert response.status == 200 and response.body == b""
    assert header(response, "content-length") == str(len(plus.encode()))
    assert recorder.calls[0][0] == "HeadObject"


def test_plus_in_path_is_literal(service: Service) -> None:
    plus = next(k for k in ODD_KEYS if "+" in k)
    response = call(service, "GET", f"/{BUCKET}/{urllib.parse.quote(plus, safe='/+')}")
    assert "+" in urllib.parse.quote(plus, safe="/+")
    assert response.status == 200 and response.body == plus.encode()


@pytest.mark.parametrize("key", ["missing/key.json.gz", "odd/..", "odd/x.tkmeta", "odd", PLANTED, ".trailkeeper-store"])
def test_missing_key_is_no_such_key_and_recorded(service: Service, key: str) -> None:
    recorder = Recorder()
    response = call(service, "GET", f"/{BUCKET}/{urllib.parse.quote(key)}", recorder=recorder)
    assert response.status == 404
    root = xml(response)
    assert root.tag == "Error"
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message") == "The specified key does not exist."
    assert root.findtext("Key") == key
    assert root.findtext("RequestId") == header(response, "x-amz-request-id")
    assert header(response, "content-type") == "application/xml"
    assert recorder.calls[0][2] == "NoSuchKey"
    head = call(service, "HEAD", f"/{BUCKET}/{urllib.parse.quote(key)}")
    assert head.status == 404 and head.body == b""


def test_missing_bucket_is_no_such_bucket(service: Service) -> None:
    for path in ("/nope", "/nope/some/key"):
        response = call(service, "GET", path)
        assert response.status == 404
        assert xml(response).findtext("Code") == "NoSuchBucket"
    assert call(service, "HEAD", "/nope").status == 404
    assert call(service, "HEAD", f"/{BUCKET}").status == 200


@pytest.mark.parametrize(("method", "path", "query", "operation"), [
    ("PUT", f"/{BUCKET}/odd/new.txt", "", "PutObject"),
    ("DELETE", f"/{BUCKET}/odd/a%2Bb%20c.txt", "", "DeleteObject"),
    ("POST", f"/{BUCKET}", "delete", "DeleteObjects"),
    ("DELETE", f"/{BUCKET}", "", "DeleteBucket"),
    ("PUT", "/newbucket", "", "CreateBucket"),
    ("PUT", f"/{BUCKET}", "policy", "PutBucketPolicy"),
])
def test_writes_are_refused_and_recorded(service: Service, store: ObjectStore, method: str, path: str, query: str,
                                         operation: str) -> None:
    before = all_keys(store)
    recorder = Recorder()
    response = call(service, method, path, query, recorder)
    assert response.status == 403
    assert xml(response).findtext("Code") == "AccessDenied"
    assert xml(response).findtext("Message") == READ_ONLY_MESSAGE
    assert [(c[0], c[2], c[3]) for c in recorder.calls] == [(operation, "AccessDenied", READ_ONLY_MESSAGE)]
    assert all_keys(store) == before


def test_write_operation_names() -> None:
    assert write_operation("POST", BUCKET, "k", "uploads") == "CreateMultipartUpload"
    assert write_operation("PUT", BUCKET, "k", "partNumber=1&uploadId=u") == "UploadPart"
    assert write_operation("DELETE", BUCKET, "k", "uploadId=u") == "AbortMultipartUpload"


def test_other_methods_are_405(service: Service) -> None:
    assert call(service, "OPTIONS", f"/{BUCKET}").status == 405


# ---- botocore understands the responses ----

def _s3_client(service: Service) -> BaseClient:
    client = botocore.session.get_session().create_client(
        "s3", region_name=service.account.region, endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="a", aws_secret_access_key="b")

    def send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        url = urllib.parse.urlsplit(request.url)
        headers = {k.lower(): v if isinstance(v, str) else v.decode() for k, v in request.headers.items()}
        answer = handle_s3(service, S3Request(request.method, url.path, url.query, headers), Recorder())
        return AWSResponse(request.url, answer.status, dict(answer.headers), _Raw(answer.body))

    client.meta.events.register("before-send.s3", send)
    return client


class _Raw(io.BytesIO):
    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


def test_botocore_parser_reads_listing_and_location(service: Service) -> None:
    model = botocore.session.get_session().get_service_model("s3")
    query = urllib.parse.urlencode({"prefix": "odd/", "max-keys": "1", "encoding-type": "url"})
    response = call(service, "GET", f"/{BUCKET}", query)
    parsed = create_parser("rest-xml").parse(
        {"status_code": 200, "headers": dict(response.headers), "body": response.body},
        model.operation_model("ListObjects").output_shape)
    decode_list_object(parsed, context={"encoding_type_auto_set": True})
    assert [c["Key"] for c in parsed["Contents"]] == ODD_KEYS[:1]
    assert parsed["IsTruncated"] is True and parsed["NextMarker"] == ODD_KEYS[0]
    location = call(service, "GET", f"/{BUCKET}", "location")
    http = AWSResponse("http://x", 200, dict(location.headers), _Raw(location.body))
    out: dict[str, Any] = {}
    parse_get_bucket_location(out, http)
    expected = None if service.account.region == "us-east-1" else service.account.region
    assert out["LocationConstraint"] == expected


def test_botocore_client_end_to_end(service: Service, store: ObjectStore) -> None:
    client = _s3_client(service)
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [BUCKET]
    paginator = client.get_paginator("list_objects")
    pages = list(paginator.paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 1}))
    listed = [c["Key"] for page in pages for c in page.get("Contents", [])]
    assert listed == all_keys(store)
    v2 = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, PaginationConfig={"PageSize": 3})
    assert [c["Key"] for page in v2 for c in page.get("Contents", [])] == listed
    digest_key = next(k for k in listed if "/CloudTrail-Digest/" in k)
    got = client.get_object(Bucket=BUCKET, Key=digest_key)
    assert got["Body"].read() == store.get(digest_key).data
    assert got["Metadata"]["signature"] == store.get(digest_key).metadata["signature"]
    for key in ODD_KEYS:
        assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == key.encode()
        assert client.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == len(key.encode())
    with pytest.raises(ClientError) as planted:
        client.get_object(Bucket=BUCKET, Key=PLANTED)
    assert planted.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as missing:
        client.get_object(Bucket=BUCKET, Key="no/such.json.gz")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=BUCKET, Key="x", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as nobucket:
        client.list_objects(Bucket="nope")
    assert nobucket.value.response["Error"]["Code"] == "NoSuchBucket"


def test_buckets_share_one_store_per_bucket(service: Service) -> None:
    dest = service.get_trail("main").config.destination
    service.create_trail(TrailConfig(name="second", bucket=BUCKET, destination=dest))
    try:
        assert list(buckets(service)) == [BUCKET]
        assert [name for name, _ in buckets(service)[BUCKET].trails] == ["main", "odd-0", "odd-1", "odd-2", "second"]
        assert [b.findtext(f"{NS}Name") for b in xml(call(service, "GET", "/")).iter(f"{NS}Bucket")] == [BUCKET]
    finally:
        service.delete_trail("second")


@pytest.mark.parametrize(("header", "span"), [
    (None, None), ("bytes=0-99", (0, 99)), ("bytes=100-", (100, 614)), ("bytes=-10", (605, 614)),
    ("bytes=600-700", (600, 614)), ("bytes=5-2", None), ("bytes=0-0,5-6", None), ("items=0-1", None),
    ("bytes=abc", None), ("bytes=615-", 416), ("bytes=-0", 416),
])
def test_range_header_as_s3_reads_it(header: str | None, span: object) -> None:
    from trailkeeper.api.s3 import _range, _S3Error

    if span == 416:
        with pytest.raises(_S3Error) as info:
            _range(header, 615)
        assert (info.value.status, info.value.code) == (416, "InvalidRange")
    else:
        assert _range(header, 615) == span


def test_a_ranged_get_answers_206_with_the_span(service: Service, store: ObjectStore) -> None:
    key = next(k for k in all_keys(store) if "/CloudTrail/" in k)
    data = store.get(key).data
    answer = handle_s3(service, S3Request("GET", f"/{BUCKET}/{key}", "", {"range": "bytes=2-5"}), Recorder())
    assert answer.status == 206 and answer.body == data[2:6]
    assert header(answer, "content-range") == f"bytes 2-5/{len(data)}" and header(answer, "content-length") == "4"
