"""Object keys: known keys from the spec, round trips, and the AWS CLI's own key logic as an oracle."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from awscli.customizations.cloudtrail.validation import (
    DigestProvider,
    extract_digest_key_date,
    format_date,
)
from hypothesis import given
from hypothesis import strategies as st

from trailkeeper.errors import TrailError
from trailkeeper.layout import (
    DigestKey,
    LogKey,
    digest_key,
    digest_prefix,
    log_key,
    log_prefix,
    parse_digest_key,
    parse_log_key,
    trail_arn,
    uniq16_for,
    validate_trail_name,
)

ACCOUNT = "111122223333"
SPEC_LOG_KEY = (
    "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01/"
    "111122223333_CloudTrail_us-east-2_20150801T0210Z_Mu0KsOhtH1ar15ZZ.json.gz"
)
SPEC_LOG = LogKey(
    "", ACCOUNT, "us-east-2", datetime(2015, 8, 1, 2, 10, tzinfo=UTC), "Mu0KsOhtH1ar15ZZ"
)
END = datetime(2024, 3, 5, 7, 0, 12, tzinfo=UTC)
DIGEST = DigestKey("logs/team", ACCOUNT, "eu-west-1", "my_trail-1.x", "us-east-1", END, False)
DIGEST_KEY_TEXT = (
    "logs/team/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2024/03/05/"
    "111122223333_CloudTrail-Digest_eu-west-1_my_trail-1.x_us-east-1_20240305T070012Z.json.gz"
)


def _build_digest(d: DigestKey) -> str:
    return digest_key(
        d.prefix, d.account, d.src_region, d.trail_name, d.home_region, d.end, d.backfill, d.org_id
    )


def _cli_provider(d: DigestKey) -> DigestProvider:
    return DigestProvider(
        s3_client_provider=None,
        account_id=d.account,
        trail_name=d.trail_name,
        trail_home_region=d.home_region,
        trail_source_region=d.src_region,
        organization_id=d.org_id,
    )


def test_spec_log_key_parses_and_rebuilds() -> None:
    assert parse_log_key(SPEC_LOG_KEY) == SPEC_LOG
    built = log_key(
        "", ACCOUNT, "us-east-2", datetime(2015, 8, 1, 2, 10, 59, tzinfo=UTC), "Mu0KsOhtH1ar15ZZ"
    )
    assert built == SPEC_LOG_KEY


def test_log_key_with_prefix_and_org() -> None:
    key = log_key(
        "a/b", ACCOUNT, "us-east-2", SPEC_LOG.delivered, SPEC_LOG.uniq16, org_id="o-aa1111bbbb"
    )
    assert key == "a/b/AWSLogs/o-aa1111bbbb/" + SPEC_LOG_KEY.removeprefix("AWSLogs/")
    assert parse_log_key(key) == LogKey(
        "a/b", ACCOUNT, "us-east-2", SPEC_LOG.delivered, SPEC_LOG.uniq16, "o-aa1111bbbb"
    )


def test_digest_key_known_text_round_trip() -> None:
    assert _build_digest(DIGEST) == DIGEST_KEY_TEXT
    assert parse_digest_key(DIGEST_KEY_TEXT) == DIGEST


def test_backfill_digest_key() -> None:
    backfill = DigestKey("", ACCOUNT, "us-east-1", "t1", "us-east-1", END, True)
    key = _build_digest(backfill)
    assert key.endswith("_us-east-1_20240305T070012Z_backfill.json.gz")
    assert parse_digest_key(key) == backfill
    assert extract_digest_key_date(key) == "20240305T070012Z"


@pytest.mark.parametrize("org_id", [None, "o-exampleorg1"])
@pytest.mark.parametrize("prefix", ["", "p", "deep/er/prefix"])
@pytest.mark.parametrize("backfill", [False, True])
def test_cli_regex_and_offsets_accept_digest_keys(
    org_id: str | None, prefix: str, backfill: bool
) -> None:
    d = DigestKey(prefix, ACCOUNT, "ap-south-1", "org_trail.v2", "us-west-2", END, backfill, org_id)
    key = _build_digest(d)
    provider = _cli_provider(d)
    assert re.match(provider._create_digest_key_regex(prefix), key)
    assert extract_digest_key_date(key) == format_date(END)
    assert key.startswith(provider._create_digest_prefix(END, prefix) + "/")
    assert (
        digest_prefix(prefix, ACCOUNT, "ap-south-1", org_id)
        == provider._create_digest_prefix(END, prefix) + "/"
    )
    assert parse_digest_key(key) == d


def test_cli_marker_key_equals_our_key() -> None:
    # The CLI computes the key a digest ending at start-1min would have; it must be ours.
    provider = _cli_provider(DIGEST)
    assert provider._create_digest_key(END + timedelta(minutes=1), DIGEST.prefix) == DIGEST_KEY_TEXT


def test_cli_regex_rejects_other_trail() -> None:
    other = DigestKey("logs/team", ACCOUNT, "eu-west-1", "other", "us-east-1", END, False)
    assert not re.match(
        _cli_provider(DIGEST)._create_digest_key_regex("logs/team"), _build_digest(other)
    )


def test_prefixes() -> None:
    assert log_prefix("", ACCOUNT, "us-east-2") == "AWSLogs/111122223333/CloudTrail/us-east-2/"
    assert (
        digest_prefix("p", ACCOUNT, "us-east-2")
        == "p/AWSLogs/111122223333/CloudTrail-Digest/us-east-2/"
    )
    assert SPEC_LOG_KEY.startswith(log_prefix("", ACCOUNT, "us-east-2"))


@pytest.mark.parametrize(
    "key",
    [
        "/" + SPEC_LOG_KEY,
        SPEC_LOG_KEY.replace("2015/08/01", "2015/8/01"),
        SPEC_LOG_KEY.replace("2015/08/01", "2015/08/02"),
        SPEC_LOG_KEY.replace("Mu0KsOhtH1ar15ZZ", "Mu0KsOhtH1ar15Z"),
        SPEC_LOG_KEY.replace("Mu0KsOhtH1ar15ZZ", "Mu0KsOhtH1ar15Z!"),
        SPEC_LOG_KEY.replace("_us-east-2_", "_us-west-2_"),
        SPEC_LOG_KEY.replace("AWSLogs/", "AWSLog/"),
        SPEC_LOG_KEY.replace("CloudTrail/", "CloudTrail-Digest/"),
        SPEC_LOG_KEY.replace(".json.gz", ".json"),
        SPEC_LOG_KEY.replace("0210Z", "0260Z"),
        "AWSLogs/111122223333/CloudTrail/us-east-2/2015/08/01",
    ],
)
def test_parse_log_key_rejects(key: str) -> None:
    with pytest.raises(ValueError):
        parse_log_key(key)


@pytest.mark.parametrize(
    "key",
    [
        DIGEST_KEY_TEXT.replace("070012Z", "0700Z"),
        DIGEST_KEY_TEXT.replace(".json.gz", "_Backfill.json.gz"),
        DIGEST_KEY_TEXT.replace(
            "111122223333_CloudTrail-Digest_eu-west-1", "111122223333_CloudTrail-Digest_eu-west-2"
        ),
        DIGEST_KEY_TEXT.replace("_my_trail-1.x_", "_"),
        DIGEST_KEY_TEXT.replace("2024/03/05", "2024/03/06"),
        SPEC_LOG_KEY,
    ],
)
def test_parse_digest_key_rejects(key: str) -> None:
    with pytest.raises(ValueError):
        parse_digest_key(key)


def test_parse_log_key_is_not_a_digest_key() -> None:
    with pytest.raises(ValueError):
        parse_log_key(DIGEST_KEY_TEXT)


@pytest.mark.parametrize(
    ("account", "region", "uniq"),
    [
        ("11112222333", "us-east-1", "A" * 16),
        (ACCOUNT, "us_east_1", "A" * 16),
        (ACCOUNT, "us-east-1", "A" * 15),
    ],
)
def test_log_key_rejects_bad_parts(account: str, region: str, uniq: str) -> None:
    with pytest.raises(ValueError):
        log_key("", account, region, SPEC_LOG.delivered, uniq)


def test_naive_time_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        log_key("", ACCOUNT, "us-east-1", datetime(2020, 1, 1), "A" * 16)


def test_non_utc_time_is_converted() -> None:
    plus2 = datetime(2024, 3, 5, 11, 0, 12, tzinfo=timezone(timedelta(hours=2)))
    assert digest_key("", ACCOUNT, "us-east-1", "t1", "us-east-1", plus2).endswith(
        "_20240305T090012Z.json.gz"
    )


_regions = st.from_regex(r"[a-z]{2}(-[a-z0-9]{1,8}){1,2}-[0-9]", fullmatch=True)
_prefixes = st.from_regex(r"([A-Za-z0-9._-]{1,8}(/[A-Za-z0-9._-]{1,8}){0,2})?", fullmatch=True)
_names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{1,20}[A-Za-z0-9])?", fullmatch=True)
_times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=0))
_orgs = st.one_of(st.none(), st.from_regex(r"o-[a-z0-9]{10,32}", fullmatch=True))


@given(_prefixes, _regions, _regions, _names, _times, st.booleans(), _orgs)
def test_digest_key_round_trip_property(
    prefix: str, src: str, home: str, name: str, end: datetime, backfill: bool, org: str | None
) -> None:
    d = DigestKey(prefix, ACCOUNT, src, name, home, end, backfill, org)
    key = _build_digest(d)
    assert parse_digest_key(key) == d
    assert _build_digest(parse_digest_key(key)) == key
    assert re.match(_cli_provider(d)._create_digest_key_regex(prefix), key)
    assert extract_digest_key_date(key) == format_date(end)


@given(_prefixes, _regions, _times, st.binary(max_size=32), _orgs)
def test_log_key_round_trip_property(
    prefix: str, region: str, when: datetime, seed: bytes, org: str | None
) -> None:
    uniq = uniq16_for(seed)
    key = log_key(prefix, ACCOUNT, region, when, uniq, org)
    parsed = parse_log_key(key)
    assert parsed == LogKey(prefix, ACCOUNT, region, when.replace(second=0), uniq, org)
    assert (
        log_key(
            parsed.prefix,
            parsed.account,
            parsed.region,
            parsed.delivered,
            parsed.uniq16,
            parsed.org_id,
        )
        == key
    )


def test_uniq16_is_deterministic_and_well_formed() -> None:
    assert uniq16_for(b"batch-1") == uniq16_for(b"batch-1")
    assert uniq16_for(b"batch-1") != uniq16_for(b"batch-2")
    values = {uniq16_for(str(i).encode()) for i in range(2000)}
    assert len(values) == 2000
    assert all(re.fullmatch(r"[A-Za-z0-9]{16}", v) for v in values)
    # Every character class shows up, so the encoding really is base 62.
    joined = "".join(values)
    assert (
        re.search(r"[a-z]", joined) and re.search(r"[A-Z]", joined) and re.search(r"[0-9]", joined)
    )


def test_uniq16_known_answer() -> None:
    # Pinned: changing the derivation would give re-delivered batches new keys.
    assert uniq16_for(b"trailkeeper") == "8wNTtWrQuFFOw2TN"


def test_trail_arn_matches_cli_pattern() -> None:
    arn = trail_arn("us-east-1", ACCOUNT, "my-trail")
    assert arn == "arn:aws:cloudtrail:us-east-1:111122223333:trail/my-trail"
    assert re.match(r"arn:.+:cloudtrail:.+:\d{12}:trail/.+", arn)
    assert arn.split(":")[3] == "us-east-1" and arn.split("/")[-1] == "my-trail"


@pytest.mark.parametrize("name", ["abc", "My.Trail_1-x", "a" * 128, "1.2.3", "1.2.3.4a", "a-b.c_d"])
def test_valid_trail_names(name: str) -> None:
    validate_trail_name(name)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("ab", "length"),
        ("a" * 129, "length"),
        ("-abc", "start and end"),
        ("abc_", "start and end"),
        ("my--trail", "adjacent"),
        ("my-_trail", "adjacent"),
        ("my._trail", "adjacent"),
        ("my trail", "only ASCII"),
        ("trail/x", "only ASCII"),
        ("tráil", "only ASCII"),
        ("192.168.5.4", "IP address"),
        ("10.0.0.1", "IP address"),
    ],
)
def test_invalid_trail_names(name: str, why: str) -> None:
    with pytest.raises(TrailError, match=why) as info:
        validate_trail_name(name)
    assert info.value.code == "InvalidTrailNameException"
