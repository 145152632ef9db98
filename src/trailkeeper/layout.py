"""Object keys: the one place that builds and parses log-file and digest-file keys.

The layouts are CloudTrail's (formats spec §1). The AWS CLI reads a digest's date
from fixed offsets at the end of its key, so every builder here is checked by
parsing its own output back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from trailkeeper.errors import TrailError

LOG_DIR = "CloudTrail"
DIGEST_DIR = "CloudTrail-Digest"
GZ_JSON_SUFFIX = ".json.gz"
BACKFILL_SUFFIX = "_backfill.json.gz"
LOG_TIME_FORMAT = "%Y%m%dT%H%MZ"
DIGEST_TIME_FORMAT = "%Y%m%dT%H%M%SZ"

_ACCOUNT_RE = re.compile(r"\d{12}")
_REGION_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ORG_ID_RE = re.compile(r"o-[a-z0-9]{10,32}")
_UNIQ16_RE = re.compile(r"[A-Za-z0-9]{16}")
_LOG_NAME_RE = re.compile(
    r"(?P<account>\d{12})_CloudTrail_(?P<region>[a-z0-9-]+)_(?P<ts>\d{8}T\d{4}Z)_"
    r"(?P<uniq>[A-Za-z0-9]{16})\.json\.gz"
)
_DIGEST_NAME_RE = re.compile(
    r"(?P<account>\d{12})_CloudTrail-Digest_(?P<src>[a-z0-9-]+)_(?P<name>.+)_"
    r"(?P<home>[a-z0-9-]+)_(?P<ts>\d{8}T\d{6}Z)(?P<backfill>_backfill)?\.json\.gz"
)
_TRAIL_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_ADJACENT_SEPARATORS_RE = re.compile(r"[._-]{2}")
_IP_LIKE_RE = re.compile(r"\d+(?:\.\d+){3}")
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TRAIL_NAME_MIN = 3
TRAIL_NAME_MAX = 128


@dataclass(frozen=True)
class LogKey:
    prefix: str
    account: str
    region: str
    delivered: datetime  # UTC, floored to the minute
    uniq16: str
    org_id: str | None = None


@dataclass(frozen=True)
class DigestKey:
    prefix: str
    account: str
    src_region: str
    trail_name: str
    home_region: str
    end: datetime  # UTC, to the second
    backfill: bool = False
    org_id: str | None = None


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"time {when!r} has no timezone; pass a timezone-aware UTC datetime")
    return when.astimezone(UTC)


def _check(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} does not match {pattern.pattern}")


def _root(prefix: str, account: str, org_id: str | None) -> str:
    _check(_ACCOUNT_RE, account, "account id")
    if org_id is not None:
        _check(_ORG_ID_RE, org_id, "organization id")
    lead = f"{prefix}/" if prefix else ""
    org = f"{org_id}/" if org_id else ""
    return f"{lead}AWSLogs/{org}{account}/"


def log_prefix(prefix: str, account: str, region: str, org_id: str | None = None) -> str:
    """`[prefix/]AWSLogs/[org/]{account}/CloudTrail/{region}/`."""
    _check(_REGION_RE, region, "region")
    return f"{_root(prefix, account, org_id)}{LOG_DIR}/{region}/"


def digest_prefix(prefix: str, account: str, src_region: str, org_id: str | None = None) -> str:
    """`[prefix/]AWSLogs/[org/]{account}/CloudTrail-Digest/{src_region}/`."""
    _check(_REGION_RE, src_region, "source region")
    return f"{_root(prefix, account, org_id)}{DIGEST_DIR}/{src_region}/"


def log_key(
    prefix: str,
    account: str,
    region: str,
    delivered: datetime,
    uniq16: str,
    org_id: str | None = None,
) -> str:
    """Key of a log file delivered at `delivered` (kept to the minute)."""
    _check(_UNIQ16_RE, uniq16, "uniq16")
    when = _utc(delivered)
    stamp = when.strftime(LOG_TIME_FORMAT)
    name = f"{account}_CloudTrail_{region}_{stamp}_{uniq16}{GZ_JSON_SUFFIX}"
    return f"{log_prefix(prefix, account, region, org_id)}{when:%Y/%m/%d}/{name}"


def digest_key(
    prefix: str,
    account: str,
    src_region: str,
    trail_name: str,
    home_region: str,
    end: datetime,
    backfill: bool = False,
    org_id: str | None = None,
) -> str:
    """Key of the digest file whose window ends at `end` (kept to the second)."""
    _check(_REGION_RE, home_region, "home region")
    if not trail_name or "/" in trail_name:
        raise ValueError(f"trail name {trail_name!r} must be non-empty and contain no '/'")
    when = _utc(end)
    stamp = when.strftime(DIGEST_TIME_FORMAT)
    suffix = BACKFILL_SUFFIX if backfill else GZ_JSON_SUFFIX
    name = f"{account}_{DIGEST_DIR}_{src_region}_{trail_name}_{home_region}_{stamp}{suffix}"
    return f"{digest_prefix(prefix, account, src_region, org_id)}{when:%Y/%m/%d}/{name}"


def _split_root(parts: list[str], kind: str) -> tuple[str, str | None, list[str]]:
    """Split `[prefix/]AWSLogs/[org/]` off the path parts that follow `{account}/{kind}/...`.

    `parts` ends with account, kind, region, YYYY, MM, DD, file name. Returns the
    prefix, the org id and those seven trailing parts.
    """
    if len(parts) < 8 or parts[-6] != kind:
        raise ValueError(
            f"not a {kind} key: expected .../AWSLogs/{{account}}/{kind}/{{region}}/YYYY/MM/DD/{{file}}"
        )
    tail = parts[-7:]
    if parts[-8] == "AWSLogs":
        return "/".join(parts[:-8]), None, tail
    if len(parts) >= 9 and parts[-9] == "AWSLogs" and _ORG_ID_RE.fullmatch(parts[-8]):
        return "/".join(parts[:-9]), parts[-8], tail
    raise ValueError(f"not a {kind} key: no AWSLogs/ component before the account id")


def _check_date_path(tail: list[str], when: datetime, key: str) -> None:
    if tail[3:6] != [f"{when:%Y}", f"{when:%m}", f"{when:%d}"]:
        raise ValueError(f"date folders of {key!r} do not match the time in its file name")


def parse_log_key(key: str) -> LogKey:
    """Parse a log-file key; ValueError names what does not fit the layout."""
    prefix, org_id, tail = _split_root(key.split("/"), LOG_DIR)
    account, _, region = tail[0], tail[1], tail[2]
    m = _LOG_NAME_RE.fullmatch(tail[6])
    if m is None:
        raise ValueError(
            f"log file name {tail[6]!r} is not {{account}}_CloudTrail_{{region}}_{{YYYYMMDDTHHmmZ}}_{{uniq16}}.json.gz"
        )
    if (m["account"], m["region"]) != (account, region):
        raise ValueError(
            f"file name of {key!r} names a different account or region than its folders"
        )
    delivered = datetime.strptime(m["ts"], LOG_TIME_FORMAT).replace(tzinfo=UTC)
    _check_date_path(tail, delivered, key)
    parsed = LogKey(prefix, account, region, delivered, m["uniq"], org_id)
    _ensure_round_trip(key, log_key(prefix, account, region, delivered, m["uniq"], org_id))
    return parsed


def parse_digest_key(key: str) -> DigestKey:
    """Parse a digest-file key (normal or backfill); ValueError otherwise."""
    prefix, org_id, tail = _split_root(key.split("/"), DIGEST_DIR)
    account, _, src = tail[0], tail[1], tail[2]
    m = _DIGEST_NAME_RE.fullmatch(tail[6])
    if m is None:
        raise ValueError(
            f"digest file name {tail[6]!r} is not {{account}}_CloudTrail-Digest_{{src}}_{{name}}_{{home}}_"
            "{YYYYMMDDTHHMMSSZ}[_backfill].json.gz"
        )
    if (m["account"], m["src"]) != (account, src):
        raise ValueError(
            f"file name of {key!r} names a different account or source region than its folders"
        )
    end = datetime.strptime(m["ts"], DIGEST_TIME_FORMAT).replace(tzinfo=UTC)
    _check_date_path(tail, end, key)
    backfill = m["backfill"] is not None
    parsed = DigestKey(prefix, account, src, m["name"], m["home"], end, backfill, org_id)
    rebuilt = digest_key(prefix, account, src, m["name"], m["home"], end, backfill, org_id)
    _ensure_round_trip(key, rebuilt)
    return parsed


def _ensure_round_trip(key: str, rebuilt: str) -> None:
    # Catches odd spellings (leading '/', non-canonical dates) that would make
    # two different keys parse to the same value.
    if rebuilt != key:
        raise ValueError(f"key {key!r} is not in canonical form (expected {rebuilt!r})")


def uniq16_for(seed: bytes) -> str:
    """16 characters of [A-Za-z0-9] derived from `seed`, so a re-delivered batch
    gets the same key and create-exclusive writes stay idempotent."""
    number = int.from_bytes(hashlib.sha256(b"trailkeeper-uniq16\x00" + seed).digest(), "big")
    chars = []
    for _ in range(16):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


def trail_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"


def validate_trail_name(name: str) -> None:
    """Apply CloudTrail's trail-name rules; TrailError(InvalidTrailNameException) otherwise."""
    problem = _trail_name_problem(name)
    if problem:
        raise TrailError(
            "InvalidTrailNameException",
            f"Trail name {name!r} is invalid: {problem}. Use 3-128 ASCII letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit.",
        )


def _trail_name_problem(name: str) -> str:
    if not TRAIL_NAME_MIN <= len(name) <= TRAIL_NAME_MAX:
        return f"length {len(name)} is outside {TRAIL_NAME_MIN}-{TRAIL_NAME_MAX}"
    if not _TRAIL_NAME_RE.fullmatch(name):
        return "only ASCII letters, digits, '.', '_' and '-' are allowed, and it must start and end with a letter or digit"
    if _ADJACENT_SEPARATORS_RE.search(name):
        return "it has adjacent separators ('.', '_' or '-')"
    if _IP_LIKE_RE.fullmatch(name):
        return "it looks like an IP address"
    return ""
