"""Digest files: field order, chaining fields, the spec's string-to-sign vector, a golden
digest signed with a committed test key, and acceptance by the AWS CLI's own validator."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import rsa as pyrsa
from awscli.customizations.cloudtrail.validation import (
    CloudTrailValidateLogs,
    DigestProvider,
    DigestSignatureError,
    DigestTraverser,
    PublicKeyProvider,
    Sha256RSADigestValidator,
)
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trailkeeper._internal.gzipio import gunzip_strict, gzip_single
from trailkeeper.clock import FrozenClock
from trailkeeper.digest import (
    REQUIRED_DIGEST_KEYS,
    STORED_HASH_FIELD,
    ChainLink,
    DigestFormatError,
    LogFileEntry,
    build_digest,
    digest_metadata,
    parse_digest,
    sign_digest,
    string_to_sign,
)
from trailkeeper.keys.keyring import MemoryKeyring
from trailkeeper.keys.signing import SigningKeys, fingerprint
from trailkeeper.layout import digest_key, log_key, trail_arn, uniq16_for
from trailkeeper.state.signing_keys import SqliteSigningKeyRepository

ACCOUNT = "111122223333"
REGION = "us-east-2"
TRAIL = "audit-trail"
BUCKET = "ct-bucket"
PREFIX = "org/logs"
T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DATA = Path(__file__).parent.parent / "data"
TEST_KEY_PEM = DATA / "digest-test-signing-key.pem"
GOLDEN_DIGEST = DATA / "golden-digest.json"
FIELD_ORDER = [
    "awsAccountId",
    "digestStartTime",
    "digestEndTime",
    "digestS3Bucket",
    "digestS3Object",
    "digestPublicKeyFingerprint",
    "digestSignatureAlgorithm",
    "newestEventTime",
    "oldestEventTime",
    "previousDigestS3Bucket",
    "previousDigestS3Object",
    "previousDigestHashValue",
    "previousDigestHashAlgorithm",
    "previousDigestSignature",
    "logFiles",
]
LOG_FIELD_ORDER = [
    "s3Bucket",
    "s3Object",
    "hashValue",
    "hashAlgorithm",
    "newestEventTime",
    "oldestEventTime",
    STORED_HASH_FIELD,
]


def _entry(name: str, newest: datetime | None, oldest: datetime | None) -> LogFileEntry:
    return LogFileEntry(BUCKET, f"logs/{name}.json.gz", "a" * 64, "b" * 64, newest, oldest)


def _digest_key(end: datetime) -> str:
    return digest_key(PREFIX, ACCOUNT, REGION, TRAIL, REGION, end)


# ---------------------------------------------------------------- building


def test_fields_in_spec_order_for_a_chained_digest() -> None:
    link = ChainLink(BUCKET, "prev/key.json.gz", "c" * 64, "d" * 512)
    logs = [
        _entry("one", T0 + timedelta(minutes=5), T0 + timedelta(minutes=1)),
        _entry("two", T0 + timedelta(minutes=50), T0 - timedelta(minutes=3)),
        _entry("three", None, None),
    ]
    data = build_digest(ACCOUNT, T0, T0 + HOUR, BUCKET, "k", "f" * 32, logs, link)
    doc = orjson.loads(data)
    assert list(doc) == FIELD_ORDER
    assert [list(e) for e in doc["logFiles"]] == [LOG_FIELD_ORDER] * 3
    assert (
        doc["digestStartTime"] == "2024-05-01T10:00:00Z"
        and doc["digestEndTime"] == "2024-05-01T11:00:00Z"
    )
    assert doc["newestEventTime"] == "2024-05-01T10:50:00Z"
    assert doc["oldestEventTime"] == "2024-05-01T09:57:00Z"
    assert doc["digestSignatureAlgorithm"] == "SHA256withRSA"
    assert (doc["previousDigestS3Bucket"], doc["previousDigestS3Object"]) == (
        BUCKET,
        "prev/key.json.gz",
    )
    assert (
        doc["previousDigestHashValue"] == "c" * 64
        and doc["previousDigestHashAlgorithm"] == "SHA-256"
    )
    assert doc["previousDigestSignature"] == "d" * 512
    assert doc["logFiles"][0] == {
        "s3Bucket": BUCKET,
        "s3Object": "logs/one.json.gz",
        "hashValue": "a" * 64,
        "hashAlgorithm": "SHA-256",
        "newestEventTime": "2024-05-01T10:05:00Z",
        "oldestEventTime": "2024-05-01T10:01:00Z",
        "storedHashValue": "b" * 64,
    }
    assert doc["logFiles"][2]["newestEventTime"] is None


def test_starting_empty_digest_has_nulls() -> None:
    doc = orjson.loads(build_digest(ACCOUNT, T0, T0 + HOUR, BUCKET, "k", "f" * 32, [], None))
    assert list(doc) == FIELD_ORDER
    for name in FIELD_ORDER[9:14]:
        assert doc[name] is None, name
    assert doc["newestEventTime"] is None and doc["oldestEventTime"] is None
    assert doc["logFiles"] == []


def test_output_is_compact_utf8() -> None:
    data = build_digest(ACCOUNT, T0, T0 + HOUR, "bücket", "k", "f" * 32, [], None)
    assert b" " not in data and "bücket".encode() in data


def test_bad_windows_are_rejected() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        build_digest(ACCOUNT, T0, T0 - HOUR, BUCKET, "k", "f" * 32, [], None)
    with pytest.raises(ValueError, match="timezone"):
        build_digest(ACCOUNT, T0.replace(tzinfo=None), T0 + HOUR, BUCKET, "k", "f" * 32, [], None)
    with pytest.raises(ValueError, match="timezone"):
        build_digest(
            ACCOUNT,
            T0,
            T0 + HOUR,
            BUCKET,
            "k",
            "f" * 32,
            [_entry("x", datetime(2024, 1, 1), None)],
            None,
        )


# ---------------------------------------------------------------- signing


SPEC_STRING_TO_SIGN = (
    b"a\nb/c\nba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\nnull"
)


def test_string_to_sign_known_answer() -> None:
    sha = hashlib.sha256(b"abc").hexdigest()
    assert string_to_sign("a", "b", "c", sha, None) == SPEC_STRING_TO_SIGN
    assert string_to_sign("a", "b", "c", sha, "ff00") == SPEC_STRING_TO_SIGN[:-4] + b"ff00"


def test_string_to_sign_matches_the_cli() -> None:
    cli = Sha256RSADigestValidator()
    for previous in (None, "0a1b"):
        data = {
            "digestEndTime": "a",
            "digestS3Bucket": "b",
            "digestS3Object": "c",
            "previousDigestSignature": previous,
        }
        ours = string_to_sign("a", "b", "c", hashlib.sha256(b"abc").hexdigest(), previous)
        assert cli._create_string_to_sign(data, b"abc") == ours


def test_sign_digest_passes_the_string_to_sign() -> None:
    seen: list[bytes] = []

    def signer(message: bytes) -> str:
        seen.append(message)
        return "AB12"

    assert sign_digest(b"abc", "a", "b", "c", None, signer) == "AB12"
    assert seen == [SPEC_STRING_TO_SIGN]


def test_metadata_names_are_lowercase() -> None:
    assert digest_metadata("ABCD") == {"signature": "abcd", "signature-algorithm": "SHA256withRSA"}


# ---------------------------------------------------------------- golden vector


def _test_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(TEST_KEY_PEM.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _pem_signer(key: rsa.RSAPrivateKey) -> Any:
    return lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA256()).hex()


def _golden() -> tuple[bytes, str, bytes]:
    """Fixed inputs signed with the committed test key: (digest bytes, signature, public DER)."""
    key = _test_key()
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    end = T0 + HOUR
    dkey = _digest_key(end)
    logs = [
        LogFileEntry(
            BUCKET,
            log_key(PREFIX, ACCOUNT, REGION, T0 + timedelta(minutes=7), uniq16_for(b"batch-1")),
            hashlib.sha256(b'{"Records":[]}').hexdigest(),
            hashlib.sha256(b"stored").hexdigest(),
            T0 + timedelta(minutes=6, seconds=30),
            T0 + timedelta(minutes=2, seconds=1),
        )
    ]
    link = ChainLink(BUCKET, _digest_key(T0), hashlib.sha256(b"previous").hexdigest(), "ab" * 256)
    data = build_digest(ACCOUNT, T0, end, BUCKET, dkey, fingerprint(der), logs, link)
    signature = sign_digest(
        data, "2024-05-01T11:00:00Z", BUCKET, dkey, link.signature, _pem_signer(key)
    )
    return data, signature, der


def test_golden_digest() -> None:
    data, signature, der = _golden()
    assert data == GOLDEN_DIGEST.read_bytes()
    assert (
        hashlib.sha256(data).hexdigest()
        == "d1aaa4d2ab70ce8542f80bd13881b4455e6f48c80c6a843211f221cc8e250ca2"
    )
    # PKCS#1 v1.5 signatures are deterministic, so the signature is pinned too.
    assert (
        hashlib.sha256(signature.encode()).hexdigest()
        == "887d1b74704a17144fdb7f04de925d5830ad2ace1e7ea03f0e423419d1490e38"
    )
    doc = orjson.loads(data)
    message = string_to_sign(
        doc["digestEndTime"],
        BUCKET,
        doc["digestS3Object"],
        hashlib.sha256(data).hexdigest(),
        doc["previousDigestSignature"],
    )
    assert (
        pyrsa.verify(message, bytes.fromhex(signature), pyrsa.PublicKey.load_pkcs1(der, "DER"))
        == "SHA-256"
    )


# ---------------------------------------------------------------- the AWS CLI as an oracle


@dataclass
class FakeS3:
    """Just enough of a botocore S3 client for the CLI's digest and log reads."""

    objects: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self.objects[key] = (data, metadata or {})

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        assert Bucket == BUCKET
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        data, meta = self.objects[Key]
        return {"Body": io.BytesIO(data), "Metadata": dict(meta)}

    def get_paginator(self, name: str) -> FakeS3:
        assert name == "list_objects"
        return self

    def paginate(self, Bucket: str, Marker: str, Prefix: str) -> _Pages:
        return _Pages(sorted(k for k in self.objects if k > Marker and k.startswith(Prefix)))

    def get_client(self, bucket: str) -> FakeS3:
        return self


@dataclass
class _Pages:
    keys: list[str]

    def search(self, expression: str) -> Iterator[str]:
        assert expression == "Contents[*].Key"
        return iter(self.keys)


@dataclass
class FakeCloudTrail:
    keys: SigningKeys

    def list_public_keys(self, StartTime: datetime, EndTime: datetime) -> dict[str, Any]:
        found = self.keys.public_keys(StartTime, EndTime)
        return {
            "PublicKeyList": [{"Fingerprint": k.fingerprint, "Value": k.value_b64} for k in found]
        }


@dataclass
class Trail:
    s3: FakeS3
    keys: SigningKeys
    digest_keys: list[str]
    log_keys: list[str]


def _write_trail(hours: int, db_dir: Path) -> Trail:
    """A chain of `hours` signed digests, each covering one gzipped log file."""
    keys = SigningKeys(SqliteSigningKeyRepository(db_dir / "state.db"), MemoryKeyring(), FrozenClock(T0), timedelta(days=30))
    s3, digests, logs = FakeS3(), [], []
    previous: ChainLink | None = None
    for hour in range(hours):
        start, end = T0 + hour * HOUR, T0 + (hour + 1) * HOUR
        records = orjson.dumps(
            {"Records": [{"eventID": str(hour), "eventTime": "2024-05-01T10:00:00Z"}]}
        )
        lkey = log_key(PREFIX, ACCOUNT, REGION, start + timedelta(minutes=5), uniq16_for(records))
        stored_log = gzip_single(records)
        s3.put(lkey, stored_log)
        entry = LogFileEntry(
            BUCKET,
            lkey,
            hashlib.sha256(records).hexdigest(),
            hashlib.sha256(stored_log).hexdigest(),
            start,
            start,
        )
        dkey = _digest_key(end)
        fp = keys.current().fingerprint
        data = build_digest(ACCOUNT, start, end, BUCKET, dkey, fp, [entry], previous)
        signer = lambda message, fp=fp: keys.sign(fp, message)  # noqa: E731
        previous_signature = previous.signature if previous else None
        signature = sign_digest(
            data, orjson.loads(data)["digestEndTime"], BUCKET, dkey, previous_signature, signer
        )
        s3.put(dkey, gzip_single(data), digest_metadata(signature))
        previous = ChainLink(BUCKET, dkey, hashlib.sha256(data).hexdigest(), signature)
        digests.append(dkey)
        logs.append(lkey)
    return Trail(s3, keys, digests, logs)


def _cli_traverser(trail: Trail, events: list[str]) -> DigestTraverser:
    provider = DigestProvider(
        s3_client_provider=trail.s3,
        account_id=ACCOUNT,
        trail_name=TRAIL,
        trail_home_region=REGION,
        trail_source_region=REGION,
    )

    def record(**kwargs: Any) -> None:
        events.append(str(kwargs.get("message") or kwargs.get("last_key")))

    return DigestTraverser(
        digest_provider=provider,
        starting_bucket=BUCKET,
        starting_prefix=PREFIX,
        public_key_provider=PublicKeyProvider(FakeCloudTrail(trail.keys)),
        on_invalid=record,
        on_gap=record,
        on_missing=record,
    )


def _flip_inflated_byte(stored: bytes, index: int) -> bytes:
    inflated = bytearray(gunzip_strict(stored))
    inflated[index] ^= 0x01
    return gzip_single(bytes(inflated))


def test_cli_validator_accepts_and_rejects_one_changed_byte(tmp_path: Path) -> None:
    trail = _write_trail(1, tmp_path)
    (dkey,) = trail.digest_keys
    public = trail.keys.current()
    digest_data, inflated = DigestProvider(trail.s3, ACCOUNT, TRAIL, REGION).fetch_digest(
        BUCKET, dkey
    )
    Sha256RSADigestValidator().validate(BUCKET, dkey, public.value_b64, digest_data, inflated)

    stored, meta = trail.s3.objects[dkey]
    # Change a byte inside the signed JSON without breaking JSON: a hex digit of hashValue.
    position = gunzip_strict(stored).index(b'"hashValue":"') + len(b'"hashValue":"')
    trail.s3.put(dkey, _flip_inflated_byte(stored, position), meta)
    digest_data, inflated = DigestProvider(trail.s3, ACCOUNT, TRAIL, REGION).fetch_digest(
        BUCKET, dkey
    )
    with pytest.raises(DigestSignatureError):
        Sha256RSADigestValidator().validate(BUCKET, dkey, public.value_b64, digest_data, inflated)


def test_cli_traverser_walks_the_whole_chain(tmp_path: Path) -> None:
    trail = _write_trail(3, tmp_path)
    events: list[str] = []
    found = list(_cli_traverser(trail, events).traverse_digests(T0, T0 + 3 * HOUR))
    assert events == []
    assert [d["digestS3Object"] for d in found] == list(reversed(trail.digest_keys))
    assert found[-1]["previousDigestS3Object"] is None


def test_cli_traverser_reports_tampered_middle_digest(tmp_path: Path) -> None:
    trail = _write_trail(3, tmp_path)
    middle = trail.digest_keys[1]
    stored, meta = trail.s3.objects[middle]
    trail.s3.put(middle, _flip_inflated_byte(stored, len(gunzip_strict(stored)) - 5), meta)
    events: list[str] = []
    found = list(_cli_traverser(trail, events).traverse_digests(T0, T0 + 3 * HOUR))
    assert len(found) == 2
    assert len(events) == 1 and "signature verification failed" in events[0] and middle in events[0]


def _run_validate_logs(
    trail: Trail, capsys: pytest.CaptureFixture[str]
) -> tuple[CloudTrailValidateLogs, str]:
    """The CLI command's own loop (digests then logs), with its clients replaced by fakes."""
    command = CloudTrailValidateLogs(session=None)
    command.trail_arn = trail_arn(REGION, ACCOUNT, TRAIL)
    command.is_verbose = True
    command.start_time, command.end_time = T0, T0 + 3 * HOUR
    command.s3_bucket, command.s3_prefix = BUCKET, PREFIX
    command._source_region = REGION
    command.s3_client_provider = trail.s3
    command.cloudtrail_client = FakeCloudTrail(trail.keys)
    command.organization_client = None
    command._call()
    return command, capsys.readouterr().out


def test_cli_validate_logs_command_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = _write_trail(3, tmp_path)
    command, out = _run_validate_logs(trail, capsys)
    assert (command._valid_digests, command._invalid_digests) == (3, 0)
    assert (command._valid_logs, command._invalid_logs) == (3, 0)
    assert "3/3 digest files valid" in out and "3/3 log files valid" in out


def test_cli_validate_logs_command_detects_changed_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = _write_trail(3, tmp_path)
    victim = trail.log_keys[0]
    stored, _ = trail.s3.objects[victim]
    trail.s3.put(victim, _flip_inflated_byte(stored, 3))
    command, _ = _run_validate_logs(trail, capsys)
    assert (command._valid_digests, command._valid_logs, command._invalid_logs) == (3, 2, 1)


# ---------------------------------------------------------------- parsing


def test_parse_round_trip_and_unknown_fields(tmp_path: Path) -> None:
    trail = _write_trail(2, tmp_path)
    data = gunzip_strict(trail.s3.objects[trail.digest_keys[1]][0])
    doc = parse_digest(data)
    assert doc.key == trail.digest_keys[1] and doc.bucket == BUCKET
    assert doc.end_time == "2024-05-01T12:00:00Z" and doc.start_time == "2024-05-01T11:00:00Z"
    assert doc.previous_key == trail.digest_keys[0] and not doc.is_starting
    assert (
        doc.previous_hash_value
        == hashlib.sha256(gunzip_strict(trail.s3.objects[trail.digest_keys[0]][0])).hexdigest()
    )
    assert doc.log_files[0].s3_object == trail.log_keys[1]
    assert (
        doc.log_files[0].stored_hash_value
        == hashlib.sha256(trail.s3.objects[trail.log_keys[1]][0]).hexdigest()
    )
    assert doc.raw == orjson.loads(data)

    extended = orjson.loads(data)
    extended["futureField"] = {"x": 1}
    extended["logFiles"][0]["extra"] = True
    parsed = parse_digest(orjson.dumps(extended))
    assert parsed.raw["futureField"] == {"x": 1} and parsed.log_files[0].raw["extra"] is True


def test_parse_starting_digest_as_cloudtrail_writes_it() -> None:
    # CloudTrail's own digests have no storedHashValue.
    doc = orjson.loads(
        build_digest(ACCOUNT, T0, T0 + HOUR, BUCKET, "k", "f" * 32, [_entry("x", T0, T0)], None)
    )
    del doc["logFiles"][0][STORED_HASH_FIELD]
    parsed = parse_digest(orjson.dumps(doc))
    assert parsed.is_starting and parsed.previous_signature is None
    assert parsed.log_files[0].stored_hash_value is None


def _valid_doc() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(
        build_digest(ACCOUNT, T0, T0 + HOUR, BUCKET, "k", "f" * 32, [_entry("x", T0, T0)], None)
    )
    return doc


@pytest.mark.parametrize("name", [*REQUIRED_DIGEST_KEYS, "logFiles"])
def test_parse_rejects_missing_required(name: str) -> None:
    doc = _valid_doc()
    del doc[name]
    with pytest.raises(DigestFormatError, match=name):
        parse_digest(orjson.dumps(doc))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("digestEndTime",), 5),
        (("digestS3Object",), None),
        (("previousDigestSignature",), 12),
        (("logFiles",), {}),
        (("logFiles", 0, "hashValue"), None),
        (("logFiles", 0, "s3Object"), ["x"]),
    ],
)
def test_parse_rejects_wrong_types(path: tuple[Any, ...], value: Any) -> None:
    doc = _valid_doc()
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(DigestFormatError):
        parse_digest(orjson.dumps(doc))


@pytest.mark.parametrize("data", [b"", b"not json", b"[1,2]", b'"text"', b'{"a":1', b"\xff\xfe{}"])
def test_parse_rejects_non_documents(data: bytes) -> None:
    with pytest.raises(DigestFormatError):
        parse_digest(data)


def test_public_key_value_is_what_the_cli_decodes(tmp_path: Path) -> None:
    keys = SigningKeys(SqliteSigningKeyRepository(tmp_path / "state.db"), MemoryKeyring(), FrozenClock(T0), timedelta(days=1))
    info = keys.current()
    assert base64.b64decode(info.value_b64) == info.der_pkcs1
