"""Operations of the API, by AWS operation name, with AWS request and response shapes.

Each handler takes the domain its service spec names (CloudTrail's: `CloudTrailDomain`; IAM's:
the identity store), the authenticated principal and the request parameters, and returns the
response dict; the protocol adapters only translate the wire format.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from trailkeeper import audit, lake
from trailkeeper.api.registry import (
    Auditor,
    AuditShape,
    Ctx,
    Handler,
    OperationSpec,
    Params,
    ServiceSpec,
)
from trailkeeper.clock import Clock, iso_seconds
from trailkeeper.config import Config
from trailkeeper.errors import HistoryError, IdentityError, KmsError, TrailError, TrailkeeperError
from trailkeeper.history.base import HistoryStore, LookupQuery
from trailkeeper.identity import IdentityStore, Principal
from trailkeeper.keys.signing import PublicKeyInfo, SigningKeyStore
from trailkeeper.layout import validate_trail_name
from trailkeeper.quarantine import Quarantine
from trailkeeper.records import username_of
from trailkeeper.roles import MAX_SESSION_DURATION_S, Role, Roles
from trailkeeper.selectors import validate_advanced
from trailkeeper.service import Account, Service, WormStatus
from trailkeeper.spool import Spool
from trailkeeper.storage.destinations import is_s3, parse_destination, s3_destination
from trailkeeper.trails import (
    DEFAULT_SELECTORS,
    ForwardingStatus,
    Trail,
    TrailConfig,
    TrailStore,
    validate_bucket_name,
    validate_selectors,
)

LOOKUP_ATTRIBUTES = ("EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName",
                     "EventSource", "AccessKeyId")
MAX_LOOKUP_RESULTS = 50
# AWS pages ListTrails without documenting the page size (or taking MaxResults).
LIST_TRAILS_PAGE_SIZE = 50
_TRAILS_TOKEN_PREFIX = b"trails-v1:"
OPEN_START = datetime(1970, 1, 1, tzinfo=UTC)
OPEN_END = datetime(9999, 12, 31, tzinfo=UTC)


class TrailControl(Protocol):
    """What CloudTrail's trail operations ask of the trails' life cycle (the service runs it:
    workers, delivery and the signed chain follow each change)."""

    @property
    def trails(self) -> TrailStore: ...

    def trail_arn(self, name: str) -> str: ...

    def resolve_trail_name(self, name_or_arn: str) -> str: ...

    def get_trail(self, name_or_arn: str) -> Trail: ...

    def create_trail(self, config: TrailConfig) -> Trail: ...

    def update_trail(self, config: TrailConfig) -> Trail: ...

    def delete_trail(self, name_or_arn: str, timeout: float = ...) -> None: ...

    def start_logging(self, name_or_arn: str) -> None: ...

    def stop_logging(self, name_or_arn: str) -> None: ...

    def worm_status(self, config: TrailConfig) -> WormStatus | None: ...


class TrailForwarding(Protocol):
    """A trail's CloudWatch Logs forwarding as its operations need it: are these settings
    acceptable (raises CloudTrail's TrailError when not), and how does forwarding fare."""

    def check(self, group_arn: str, role_arn: str) -> None: ...

    def default_for_new_trails(self) -> tuple[str, str] | None:
        """(group ARN, role ARN) new trails forward to when CreateTrail names none."""
        ...

    def status(self, trail_name: str) -> ForwardingStatus: ...


class KeyCheck(Protocol):
    """The KMS as a trail's KmsKeyId needs it: is this key usable, and what is its ARN."""

    def check_usable(self, key_ref: str) -> str: ...


@dataclass(frozen=True)
class CloudTrailDomain:
    """Everything CloudTrail's operations use, and nothing else."""

    region: str
    clock: Clock
    config: Config  # the defaults a new trail takes (intervals, where folder buckets live)
    control: TrailControl
    kms: KeyCheck
    keys: SigningKeyStore
    history: HistoryStore
    lake: lake.LakeService
    forwarding: TrailForwarding | None = None  # None: this server does not forward to CloudWatch Logs


class ServerStatusSource(Protocol):
    """What GetServerStatus reports on: the spool, the trails, the history and the backlog."""

    @property
    def account(self) -> Account: ...

    @property
    def config(self) -> Config: ...

    @property
    def spool(self) -> Spool: ...

    @property
    def trails(self) -> TrailStore: ...

    @property
    def quarantine(self) -> Quarantine: ...

    @property
    def indexed_seq(self) -> int: ...

    @property
    def backlog_over(self) -> bool: ...

    @property
    def forwarding(self) -> TrailForwarding: ...

    def notification_counts(self) -> dict[str, Any]:
        """SNS deliveries still being tried and given up (notify.topics.DeliveryCounts)."""
        ...

    def worm_status(self, config: TrailConfig) -> WormStatus | None: ...

    def rules_status(self) -> dict[str, Any]:
        """Event rules and detections: what is loaded, target invocations retrying and given up."""
        ...


def _epoch(when: datetime | None) -> float | None:
    return when.timestamp() if when else None


def _time_param(params: Params, name: str, default: datetime) -> datetime:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TrailError("InvalidParameterException", f"{name} must be a timestamp.")
    if isinstance(value, str):
        try:
            if value.replace(".", "", 1).isdigit():
                return datetime.fromtimestamp(float(value), UTC)
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError as e:
            raise TrailError("InvalidParameterException", f"{name} {value!r} is not a timestamp.") from e
    return datetime.fromtimestamp(float(value), UTC)


def _str_param(params: Params, name: str, required: bool = True, code: str = "InvalidParameterException") -> str:
    value = params.get(name)
    if value is None:
        if required:
            raise TrailError(code, f"{name} is required.")
        return ""
    if not isinstance(value, str):
        raise TrailError(code, f"{name} must be a string.")
    return value


def _bool_param(params: Params, name: str, default: bool) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise TrailError("InvalidParameterException", f"{name} must be a boolean.")
    return value


def _interval_param(params: Params, name: str, default: timedelta, minimum: timedelta) -> float:
    value = params.get(name)
    if value is None:
        return default.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum.total_seconds():
        raise TrailError("InvalidParameterException", f"{name} must be a number of seconds >= {minimum.total_seconds():g}.")
    return float(value)


# ---- trails ----
def trail_shape(ct: CloudTrailDomain, config: TrailConfig) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "Name": config.name,
        "S3BucketName": config.bucket,
    }
    if config.prefix:
        shape["S3KeyPrefix"] = config.prefix
    shape.update({
        "IncludeGlobalServiceEvents": config.include_global_service_events,
        "IsMultiRegionTrail": config.is_multi_region,
        "HomeRegion": ct.region,
        "TrailARN": ct.control.trail_arn(config.name),
        "LogFileValidationEnabled": config.validation,
        "HasCustomEventSelectors": config.selectors != DEFAULT_SELECTORS or bool(config.advanced_selectors),
        "HasInsightSelectors": False,
        "IsOrganizationTrail": False,
        "Destination": config.destination,
        "FlushIntervalSeconds": config.flush_interval_s,
        "DigestIntervalSeconds": config.digest_interval_s,
    })
    if config.forwards:
        shape["CloudWatchLogsLogGroupArn"] = config.cloudwatch_logs_group_arn
        shape["CloudWatchLogsRoleArn"] = config.cloudwatch_logs_role_arn
    if config.kms_key_id:
        shape["KmsKeyId"] = config.kms_key_id
    if config.object_lock_days:
        shape["ObjectLockRetentionDays"] = config.object_lock_days
    return shape


def _config_from_params(ct: CloudTrailDomain, params: Params, base: TrailConfig | None) -> TrailConfig:
    name = base.name if base else _str_param(params, "Name", code="InvalidTrailNameException")
    bucket = params.get("S3BucketName", base.bucket if base else None)
    destination = params.get("Destination", base.destination if base else None)
    if base is not None and bucket != base.bucket and "Destination" not in params:
        # Another bucket is another place (as on AWS): files already delivered stay where they
        # are, under the name they were written with; nothing is renamed under them.
        destination = s3_destination(str(bucket)) if is_s3(base.destination) else None
    if bucket is None and destination is None:
        raise TrailError("InvalidParameterException", "Give S3BucketName or Destination (a folder path or s3://bucket).")
    if destination is None:
        destination = str(ct.config.buckets_dir / str(bucket))
    if bucket is None:
        bucket = _bucket_of(str(destination))
    if not isinstance(bucket, str) or not isinstance(destination, str):
        raise TrailError("InvalidParameterException", "S3BucketName and Destination must be strings.")
    validate_bucket_name(bucket)
    if is_s3(destination) and _bucket_of(destination) != bucket:
        raise TrailError("InvalidParameterCombinationException",
                         f"S3BucketName {bucket} differs from the bucket of Destination {destination}.")
    default_prefix = base.prefix if base else _s3_prefix(destination)
    prefix = params.get("S3KeyPrefix", default_prefix) or ""
    if not isinstance(prefix, str) or len(prefix) > 200 or prefix.startswith("/") or prefix.endswith("/"):
        raise TrailError("InvalidS3PrefixException", "S3KeyPrefix must be a string of at most 200 characters, not starting or ending with '/'.")
    cfg = ct.config
    flush = _interval_param(params, "FlushIntervalSeconds", base.flush_interval if base else cfg.default_flush_interval, timedelta(seconds=1))
    digest = _interval_param(params, "DigestIntervalSeconds", base.digest_interval if base else cfg.default_digest_interval, timedelta(minutes=1))
    if digest % 60:
        raise TrailError("InvalidParameterException", "DigestIntervalSeconds must be a whole number of minutes.")
    if flush > digest:
        raise TrailError("InvalidParameterCombinationException", "FlushIntervalSeconds must not exceed DigestIntervalSeconds.")
    group_arn, role_arn = _forwarding_params(ct, params, base)
    return TrailConfig(
        cloudwatch_logs_group_arn=group_arn, cloudwatch_logs_role_arn=role_arn,
        kms_key_id=_kms_key_param(ct, params, base.kms_key_id if base else ""),
        object_lock_days=_lock_days_param(params, destination, base.object_lock_days if base else 0),
        advanced_selectors=base.advanced_selectors if base else (), tags=base.tags if base else (),
        name=name, bucket=bucket, destination=destination, prefix=prefix,
        validation=_bool_param(params, "EnableLogFileValidation", base.validation if base else False),
        flush_interval_s=flush, digest_interval_s=digest,
        selectors=base.selectors if base else DEFAULT_SELECTORS,
        include_global_service_events=_bool_param(params, "IncludeGlobalServiceEvents", base.include_global_service_events if base else True),
        is_multi_region=_bool_param(params, "IsMultiRegionTrail", base.is_multi_region if base else False),
    )


def _forwarding_params(ct: CloudTrailDomain, params: Params, base: TrailConfig | None) -> tuple[str, str]:
    """(CloudWatchLogsLogGroupArn, CloudWatchLogsRoleArn): unchanged when the request names
    neither (for a new trail: the default group new trails forward to, if any); otherwise both as given (one left out counts as "", so CloudTrail's "you must
    specify both" applies), checked; both "" stops forwarding."""
    names = ("CloudWatchLogsLogGroupArn", "CloudWatchLogsRoleArn")
    if not any(name in params for name in names):
        if base is not None:
            return base.cloudwatch_logs_group_arn, base.cloudwatch_logs_role_arn
        # A new trail forwards where the CIS pack's group says new trails do (trailkeeper's default).
        default = ct.forwarding.default_for_new_trails() if ct.forwarding is not None else None
        return default if default is not None else ("", "")
    group, role = (params.get(name) or "" for name in names)
    if not isinstance(group, str) or not isinstance(role, str):
        raise TrailError("InvalidParameterException", "CloudWatchLogsLogGroupArn and CloudWatchLogsRoleArn must be "
                         "strings.")
    if group or role:
        if ct.forwarding is None:
            raise TrailError("InvalidParameterException", "This server does not forward trails to CloudWatch Logs.")
        ct.forwarding.check(group, role)
    return group, role


def _kms_key_param(ct: CloudTrailDomain, params: Params, current: str) -> str:
    """KmsKeyId as CloudTrail takes it (key id, key ARN, alias name or alias ARN), stored as
    the key ARN; "" turns encryption off for files delivered from now on."""
    ref = params.get("KmsKeyId", current)
    if not isinstance(ref, str):
        raise TrailError("InvalidKmsKeyIdException", "KmsKeyId must be a string.")
    if not ref or ref == current:
        return ref
    try:
        return ct.kms.check_usable(ref)
    except KmsError as e:
        if e.code == "NotFoundException":
            raise TrailError("KmsKeyNotFoundException", f"KMS key {ref} does not exist: {e}") from e
        raise TrailError("KmsException", f"KMS key {ref} cannot encrypt: {e.code}: {e}") from e


def _lock_days_param(params: Params, destination: str, current: int) -> int:
    days = params.get("ObjectLockRetentionDays", current)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 36500:
        raise TrailError("InvalidParameterException", "ObjectLockRetentionDays must be a whole number of days (0-36500).")
    if days and not is_s3(destination):
        raise TrailError("InvalidParameterCombinationException",
                         "ObjectLockRetentionDays needs an s3:// Destination on an Object Lock bucket.")
    return days


def _bucket_of(destination: str) -> str:
    if is_s3(destination):
        try:
            return parse_destination(destination)[0]
        except TrailkeeperError as e:
            raise TrailError("InvalidParameterException", str(e)) from e
    return _bucket_from_folder(Path(destination))


def _s3_prefix(destination: str) -> str:
    return parse_destination(destination)[1] if is_s3(destination) else ""


def _bucket_from_folder(folder: Path) -> str:
    name = folder.resolve().name.lower().replace("_", "-") or "root"  # "/" has no name
    return name if len(name) >= 3 else f"{name}-trail"


def create_trail(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    config = _config_from_params(ct, params, None)
    if params.get("TagsList"):
        tags = dict(_tags_param(params, "TagsList", need_values=True))
        if len(tags) > MAX_TAGS:
            raise TrailError("TagsLimitExceededException", f"A trail can have at most {MAX_TAGS} tags.")
        config = replace(config, tags=tuple(sorted(tags.items())))
    return _changed_trail_shape(ct, ct.control.create_trail(config).config)


def _changed_trail_shape(ct: CloudTrailDomain, config: TrailConfig) -> dict[str, Any]:
    """What CreateTrail and UpdateTrail answer: the trail, less what only GetTrail tells."""
    shape = trail_shape(ct, config)
    for field in ("HomeRegion", "HasCustomEventSelectors", "HasInsightSelectors"):
        shape.pop(field)
    return shape


def update_trail(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    trail = ct.control.get_trail(_str_param(params, "Name", code="InvalidTrailNameException"))
    config = _config_from_params(ct, {k: v for k, v in params.items() if k != "Name"}, trail.config)
    return _changed_trail_shape(ct, ct.control.update_trail(config).config)


def delete_trail(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    ct.control.delete_trail(_str_param(params, "Name"))
    return {}


def get_trail(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    return {"Trail": trail_shape(ct, ct.control.get_trail(_str_param(params, "Name")).config)}


def describe_trails(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    names = params.get("trailNameList") or []
    if not isinstance(names, list):
        raise TrailError("InvalidParameterException", "trailNameList must be a list.")
    trails = [ct.control.get_trail(str(n)) for n in names] if names else ct.control.trails.all()
    return {"trailList": [trail_shape(ct, t.config) for t in trails]}


def list_trails(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    names, token = trails_page([t.config.name for t in ct.control.trails.all()], params.get("NextToken"),
                               LIST_TRAILS_PAGE_SIZE)
    out: dict[str, Any] = {"Trails": [{"TrailARN": ct.control.trail_arn(name), "Name": name,
                                       "HomeRegion": ct.region} for name in names]}
    if token is not None:
        out["NextToken"] = token
    return out


def trails_page(names: list[str], token: object, size: int) -> tuple[list[str], str | None]:
    """One ListTrails page: trail names in name order after the one `token` carries (from the
    start when None), and the token of the next page (None on the last). A name rather than
    an offset keeps paging exact while trails are created or deleted between calls."""
    after = None if token is None else _open_trails_token(token)
    remaining = sorted(n for n in names if after is None or n > after)
    page = remaining[:size]
    return page, _seal_trails_token(page[-1]) if len(remaining) > size else None


def _seal_trails_token(after: str) -> str:
    return base64.urlsafe_b64encode(_TRAILS_TOKEN_PREFIX + after.encode()).decode().rstrip("=")


def _open_trails_token(token: object) -> str:
    if not isinstance(token, str):
        raise _bad_trails_token("it is not a string")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        name = raw.removeprefix(_TRAILS_TOKEN_PREFIX).decode("ascii") if raw.startswith(_TRAILS_TOKEN_PREFIX) else ""
        validate_trail_name(name)
    except (ValueError, TrailError) as e:
        raise _bad_trails_token("it was not returned by ListTrails") from e
    return name


def _bad_trails_token(why: str) -> TrailError:
    return TrailError("InvalidNextTokenException",
                      f"NextToken is invalid: {why}; repeat ListTrails without NextToken, or pass the "
                      "NextToken value the previous ListTrails call returned.")


def get_trail_status(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    trail = ct.control.get_trail(_str_param(params, "Name"))
    s = trail.state
    out: dict[str, Any] = {"IsLogging": s.is_logging and s.stop_seq is None}
    values = {
        "LatestDeliveryError": s.latest_delivery_error or None,
        "LatestDeliveryTime": _epoch(s.latest_delivery_time),
        "StartLoggingTime": _epoch(s.start_logging_time),
        "StopLoggingTime": _epoch(s.stop_logging_time),
        "LatestDigestDeliveryTime": _epoch(s.latest_digest_time),
        "LatestDigestDeliveryError": s.latest_digest_error or None,
        "LatestDeliveryAttemptTime": _iso(s.latest_delivery_attempt_time),
        "LatestDeliveryAttemptSucceeded": _iso(s.latest_delivery_time) if not s.latest_delivery_error else "",
        "TimeLoggingStarted": _iso(s.start_logging_time),
        "TimeLoggingStopped": _iso(s.stop_logging_time),
    }
    if ct.forwarding is not None and trail.config.forwards:
        forwarded = ct.forwarding.status(trail.config.name)
        values["LatestCloudWatchLogsDeliveryTime"] = _epoch(forwarded.latest_delivery)
        values["LatestCloudWatchLogsDeliveryError"] = forwarded.latest_error or None
    out.update({k: v for k, v in values.items() if v is not None})
    worm = ct.control.worm_status(trail.config)
    if worm is not None:
        # trailkeeper extension: a bucket is called WORM only after the conformance probe passed.
        out["WormVerified"] = worm.verified
        out["WormProbeDetail"] = worm.detail
    return out


def _iso(when: datetime | None) -> str | None:
    return iso_seconds(when) if when else None


def start_logging(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    ct.control.start_logging(_str_param(params, "Name"))
    return {}


def stop_logging(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    ct.control.stop_logging(_str_param(params, "Name"))
    return {}


def put_event_selectors(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    trail = ct.control.get_trail(_str_param(params, "TrailName"))
    basic, advanced = params.get("EventSelectors"), params.get("AdvancedEventSelectors")
    if (basic is None) == (advanced is None):
        raise TrailError("InvalidParameterCombinationException",
                         "Give either EventSelectors or AdvancedEventSelectors, not both and not neither.")
    if advanced is not None:
        config = replace(trail.config, advanced_selectors=validate_advanced(advanced), selectors=DEFAULT_SELECTORS)
    else:
        if not isinstance(basic, list):
            raise TrailError("InvalidEventSelectorsException", "EventSelectors must be a list of selectors.")
        config = replace(trail.config, selectors=validate_selectors(basic), advanced_selectors=())
    ct.control.update_trail(config)
    return _selectors_shape(ct, config)


def _selectors_shape(ct: CloudTrailDomain, config: TrailConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"TrailARN": ct.control.trail_arn(config.name)}
    if config.advanced_selectors:
        out["AdvancedEventSelectors"] = list(config.advanced_selectors)
    else:
        out["EventSelectors"] = list(config.selectors)
    return out


def get_event_selectors(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    return _selectors_shape(ct, ct.control.get_trail(_str_param(params, "TrailName")).config)


# ---- tags ----
MAX_TAGS = 50


def _tags_param(params: Params, name: str, need_values: bool) -> list[tuple[str, str]]:
    tags = params.get(name)
    if not isinstance(tags, list):
        raise TrailError("InvalidTagParameterException", f"{name} must be a list of {{Key, Value}}.")
    out = []
    for i, tag in enumerate(tags):
        key = tag.get("Key") if isinstance(tag, dict) else None
        value = tag.get("Value", "") if isinstance(tag, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
            raise TrailError("InvalidTagParameterException",
                             f"{name}[{i}]: Key must be 1-128 characters and Value at most 256.")
        out.append((key, value if need_values else ""))
    return out


def _trail_for_resource(ct: CloudTrailDomain, arn: object) -> Trail:
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        raise TrailError("CloudTrailARNInvalidException", "ResourceId must be a trail ARN.")
    trail = ct.control.trails.find(ct.control.resolve_trail_name(arn))
    if trail is None:
        raise TrailError("ResourceNotFoundException", f"Resource {arn} does not exist.")
    return trail


def add_tags(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    trail = _trail_for_resource(ct, params.get("ResourceId"))
    tags = dict(trail.config.tags)
    tags.update(_tags_param(params, "TagsList", need_values=True))
    if len(tags) > MAX_TAGS:
        raise TrailError("TagsLimitExceededException", f"A trail can have at most {MAX_TAGS} tags.")
    ct.control.update_trail(replace(trail.config, tags=tuple(sorted(tags.items()))))
    return {}


def remove_tags(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    trail = _trail_for_resource(ct, params.get("ResourceId"))
    drop = {k for k, _ in _tags_param(params, "TagsList", need_values=False)}
    ct.control.update_trail(replace(trail.config, tags=tuple(t for t in trail.config.tags if t[0] not in drop)))
    return {}


def list_tags(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    ids = params.get("ResourceIdList")
    if not isinstance(ids, list) or not ids:
        raise TrailError("InvalidParameterException", "ResourceIdList must be a non-empty list of trail ARNs.")
    return {"ResourceTagList": [
        {"ResourceId": arn, "TagsList": [{"Key": k, "Value": v} for k, v in _trail_for_resource(ct, arn).config.tags]}
        for arn in ids
    ]}


def list_public_keys(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    now = ct.clock.now()
    start = _time_param(params, "StartTime", now)
    end = _time_param(params, "EndTime", now)
    if start > end:
        raise TrailError("InvalidTimeRangeException", "StartTime must not be after EndTime.")
    return {"PublicKeyList": [public_key_shape(k) for k in ct.keys.public_keys(start, end)]}


def public_key_shape(key: PublicKeyInfo) -> dict[str, Any]:
    shape: dict[str, Any] = {"Value": key.value_b64, "ValidityStartTime": key.valid_from.timestamp(),
                             "Fingerprint": key.fingerprint}
    shape["ValidityEndTime"] = (key.valid_to or key.valid_from + timedelta(days=36500)).timestamp()
    return shape


# ---- event history ----
def lookup_events(ct: CloudTrailDomain, _: Principal, params: Params) -> dict[str, Any]:
    attrs = params.get("LookupAttributes") or []
    if not isinstance(attrs, list) or len(attrs) > 1:
        raise TrailError("InvalidLookupAttributesException", "You can specify at most one lookup attribute.")
    key = value = None
    if attrs:
        item = attrs[0]
        if not isinstance(item, dict) or item.get("AttributeKey") not in LOOKUP_ATTRIBUTES:
            raise TrailError("InvalidLookupAttributesException", f"AttributeKey must be one of {', '.join(LOOKUP_ATTRIBUTES)}.")
        key = str(item["AttributeKey"])
        value = item.get("AttributeValue")
        if not isinstance(value, str) or not 1 <= len(value) <= 2000:
            raise TrailError("InvalidLookupAttributesException", "AttributeValue must be 1-2000 characters.")
    # Open-ended defaults (retention bounds what exists) keep a NextToken valid across pages.
    start = _time_param(params, "StartTime", OPEN_START)
    end = _time_param(params, "EndTime", OPEN_END)
    max_results = params.get("MaxResults", MAX_LOOKUP_RESULTS)
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_LOOKUP_RESULTS:
        raise TrailError("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
    token = params.get("NextToken")
    try:
        page = ct.history.lookup(LookupQuery(key, value, start, end, max_results, token if isinstance(token, str) else None))
    except HistoryError as e:
        raise TrailError(getattr(e, "code", "InvalidParameterException"), str(e)) from e
    events = [lookup_event_shape(record, body, t)
              for record, body, t in zip(page.records, page.events, page.times, strict=True)]
    out: dict[str, Any] = {"Events": events}
    if page.next_token:
        out["NextToken"] = page.next_token
    return out


def lookup_event_shape(record: dict[str, Any], body: bytes, event_time: int) -> dict[str, Any]:
    """One LookupEvents `Event` from a stored record, its bytes and its eventTime in epoch
    seconds (the history's index value). `Username` and `AccessKeyId` are the values the
    history indexes the record under (records.lookup_pairs), so what a lookup finds by an
    attribute is what the answer shows for it."""
    identity = record.get("userIdentity")
    shape: dict[str, Any] = {
        "EventId": record.get("eventID"),
        "EventName": record.get("eventName"),
        "ReadOnly": "true" if record.get("readOnly") is True else "false",
    }
    key_id = identity.get("accessKeyId") if isinstance(identity, dict) else None
    if isinstance(key_id, str) and key_id:
        shape["AccessKeyId"] = key_id
    shape["EventTime"] = float(event_time)
    shape["EventSource"] = record.get("eventSource")
    user = username_of(identity)
    if user:
        shape["Username"] = user
    resources = record.get("resources")
    shape["Resources"] = [
        {"ResourceType": r.get("type"), "ResourceName": r.get("ARN") or r.get("name")}
        for r in resources if isinstance(r, dict)
    ] if isinstance(resources, list) else []
    shape["CloudTrailEvent"] = body.decode()
    return shape


# ---- identities ----
@dataclass(frozen=True)
class IamDomain:
    """What IAM's operations use: users and access keys, and roles."""

    identity: IdentityStore
    roles: Roles


def _user_shape(user: Any) -> dict[str, Any]:
    return {"UserName": user.name, "UserId": user.user_id, "Arn": user.arn, "Role": user.role,
            "CreateDate": user.created.timestamp(), "Path": "/"}


def create_user(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    user = iam.identity.create_user(_str_param(params, "UserName"), _str_param(params, "Role", required=False) or "writer")
    return {"User": _user_shape(user)}


def list_users(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    return {"Users": [_user_shape(u) for u in iam.identity.list_users()]}


def delete_user(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    iam.identity.delete_user(_str_param(params, "UserName"))
    return {}


def _key_owner(principal: Principal, params: Params) -> str | None:
    """Whose keys a call acts on: the named user, else the caller (None: the root). Only the
    root manages the root's keys, whatever else the caller may do."""
    name = params.get("UserName")
    caller = None if principal.is_root else principal.user_name
    owner = caller if name is None else str(name)
    if owner is None and not principal.is_root:
        raise IdentityError("AccessDenied", "Only the account root may manage the root's access keys.", 403)
    return owner


def create_access_key(iam: IamDomain, principal: Principal, params: Params) -> dict[str, Any]:
    key = iam.identity.create_access_key(_key_owner(principal, params))
    return {"AccessKey": {"UserName": key.user_name or "root", "AccessKeyId": key.access_key_id,
                          "SecretAccessKey": key.secret_access_key, "Status": key.status,
                          "CreateDate": key.created.timestamp()}}


def list_access_keys(iam: IamDomain, principal: Principal, params: Params) -> dict[str, Any]:
    keys = iam.identity.list_access_keys(_key_owner(principal, params))
    return {"AccessKeyMetadata": [{"UserName": k.user_name or "root", "AccessKeyId": k.access_key_id,
                                   "Status": k.status, "CreateDate": k.created.timestamp()} for k in keys]}


def update_access_key(iam: IamDomain, principal: Principal, params: Params) -> dict[str, Any]:
    iam.identity.update_access_key(_str_param(params, "AccessKeyId"), _str_param(params, "Status"),
                                       _key_owner(principal, params))
    return {}


def delete_access_key(iam: IamDomain, principal: Principal, params: Params) -> dict[str, Any]:
    iam.identity.delete_access_key(_str_param(params, "AccessKeyId"), _key_owner(principal, params))
    return {}


# ---- roles ----
def _iam_str(params: Params, name: str, required: bool = True) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise IdentityError("ValidationError", f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise IdentityError("ValidationError", f"{name} must be a string.")
    return value


def _role_shape(role: Role) -> dict[str, Any]:
    shape: dict[str, Any] = {"Path": role.path, "RoleName": role.name, "RoleId": role.role_id, "Arn": role.arn,
                             "CreateDate": role.created.timestamp(),
                             "AssumeRolePolicyDocument": role.assume_role_policy}
    if role.description:
        shape["Description"] = role.description
    shape["MaxSessionDuration"] = MAX_SESSION_DURATION_S
    return shape


def create_role(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    role = iam.roles.create_role(str(_iam_str(params, "RoleName")), str(_iam_str(params, "AssumeRolePolicyDocument")),
                                 _iam_str(params, "Path", required=False) or "/",
                                 _iam_str(params, "Description", required=False))
    return {"Role": _role_shape(role)}


def get_role(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    return {"Role": _role_shape(iam.roles.get_role(str(_iam_str(params, "RoleName"))))}


def list_roles(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    return {"Roles": [_role_shape(r) for r in iam.roles.list_roles()]}


def delete_role(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    iam.roles.delete_role(str(_iam_str(params, "RoleName")))
    return {}


def put_role_policy(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    iam.roles.put_role_policy(str(_iam_str(params, "RoleName")), str(_iam_str(params, "PolicyName")),
                              str(_iam_str(params, "PolicyDocument")))
    return {}


def get_role_policy(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    found = iam.roles.get_role_policy(str(_iam_str(params, "RoleName")), str(_iam_str(params, "PolicyName")))
    return {"RoleName": found.role_name, "PolicyName": found.policy_name, "PolicyDocument": found.document}


def delete_role_policy(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    iam.roles.delete_role_policy(str(_iam_str(params, "RoleName")), str(_iam_str(params, "PolicyName")))
    return {}


def list_role_policies(iam: IamDomain, _: Principal, params: Params) -> dict[str, Any]:
    return {"PolicyNames": iam.roles.list_role_policies(str(_iam_str(params, "RoleName")))}


def _role_audit(iam: IamDomain, _: str, params: Params, response: dict[str, Any] | None) -> AuditShape:
    """A role operation's record: its parameters, its answer, and the role it acted on (when the
    role still exists afterwards; a deleted role's path is no longer known)."""
    request = dict(params)
    if response is None:
        return request, None, None
    name = params.get("RoleName")
    try:
        arn = iam.roles.get_role(name).arn if isinstance(name, str) and name else None
    except IdentityError:
        arn = None
    resources = [{"ARN": arn, "accountId": iam.roles.account_id, "type": "AWS::IAM::Role"}] if arn else None
    return request, redact_response(response), resources


def get_server_status(service: ServerStatusSource, _: Principal, params: Params) -> dict[str, Any]:
    stats = service.spool.stats()
    trails = []
    for trail in service.trails.all():
        s = trail.state
        entry = {"Name": trail.config.name, "IsLogging": s.is_logging,
                 "Backlog": max(0, service.spool.next_seq() - s.offset_seq) if s.is_logging else 0,
                 "LatestDeliveryError": s.latest_delivery_error or None, "FailingSince": _epoch(s.failing_since),
                 "KmsKeyId": trail.config.kms_key_id or None}
        worm = service.worm_status(trail.config)
        if worm is not None:
            entry["WormVerified"] = worm.verified
        if trail.config.forwards:
            forwarded = service.forwarding.status(trail.config.name)
            entry["CloudWatchLogs"] = {"ForwardedEvents": forwarded.forwarded,
                                       # selected events too large for a log event: not forwarded
                                       "OversizeEvents": forwarded.oversize,
                                       "LatestDeliveryError": forwarded.latest_error or None,
                                       "FailingSince": _epoch(forwarded.failing_since)}
        trails.append(entry)
    return {"AccountId": service.account.account_id, "Region": service.account.region,
            "Spool": dataclasses.asdict(stats),
            "HistoryIndexedSeq": service.indexed_seq, "Trails": trails,
            "Backlog": {"MaxEvents": service.config.max_backlog_events, "Policy": service.config.backlog_policy,
                        "LimitReached": service.backlog_over},
            # Records a consumer could not process, kept aside per consumer (quarantine.py).
            "Quarantined": service.quarantine.counts(),
            # Notifications owed to subscribers: pending (being retried) and given up (PCI DSS 10.7).
            "Notifications": service.notification_counts(),
            "Rules": service.rules_status()}


def _op(handler: Handler[Ctx], permission: str, *, read_only: bool = False, inline: bool = False,
        extensions: frozenset[str] = frozenset(), auditor: Auditor[Ctx] | None = None) -> OperationSpec[Ctx]:
    return OperationSpec(handler, permission, read_only, auditor=auditor, extensions=extensions, inline=inline)


def _reader(handler: Handler[Ctx], permission: str, *, inline: bool = False,
            auditor: Auditor[Ctx] | None = None) -> OperationSpec[Ctx]:
    return _op(handler, permission, read_only=True, inline=inline, auditor=auditor)


def _identity_of(service: Service) -> IamDomain:
    return IamDomain(service.identity, service.runtime.roles)


def _cloudtrail_of(service: Service) -> CloudTrailDomain:
    return CloudTrailDomain(region=service.account.region, clock=service.clock, config=service.config,
                            control=service, kms=service.kms, keys=service.keys, history=service.history,
                            lake=service, forwarding=service.forwarding)


def _status_of(service: Service) -> ServerStatusSource:
    return service


LakeHandler = Callable[[lake.LakeService, Any, Params], dict[str, Any]]


def _on_channels(handler: LakeHandler) -> Handler[CloudTrailDomain]:
    """A channel operation of the lake module, given the lake's part of the domain."""
    def run(ct: CloudTrailDomain, principal: Principal, params: Params) -> dict[str, Any]:
        return handler(ct.lake, principal, params)
    run.__name__ = run.__qualname__ = handler.__name__
    return run


# Request members beyond AWS's: where a trail is written (a folder or an s3:// URL), its
# delivery and digest intervals and its object-lock retention; and a new user's role (IAM's
# Query adapter reads it from a tag).
_TRAIL_EXTENSIONS = frozenset({"Destination", "FlushIntervalSeconds", "DigestIntervalSeconds",
                               "ObjectLockRetentionDays"})

CLOUDTRAIL: ServiceSpec[CloudTrailDomain] = ServiceSpec(
    name="cloudtrail", title="CloudTrail", signing_name="cloudtrail", protocol="json", event_source=audit.CLOUDTRAIL_SOURCE,
    api_version="2013-11-01", target_prefix="com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101",
    client_errors_as_400=True, context=_cloudtrail_of,
    operations={
        "CreateTrail": _op(create_trail, "trails:write", extensions=_TRAIL_EXTENSIONS),
        "UpdateTrail": _op(update_trail, "trails:write", extensions=_TRAIL_EXTENSIONS),
        "DeleteTrail": _op(delete_trail, "trails:write"),
        "StartLogging": _op(start_logging, "trails:write"),
        "StopLogging": _op(stop_logging, "trails:write"),
        "PutEventSelectors": _op(put_event_selectors, "trails:write"),
        "GetTrail": _reader(get_trail, "trails:read"),
        "DescribeTrails": _reader(describe_trails, "trails:read"),
        "ListTrails": _reader(list_trails, "trails:read"),
        "GetTrailStatus": _reader(get_trail_status, "trails:read"),
        "GetEventSelectors": _reader(get_event_selectors, "trails:read"),
        "CreateChannel": _op(_on_channels(lake.create_channel), "trails:write"),
        "GetChannel": _reader(_on_channels(lake.get_channel), "trails:read"),
        "ListChannels": _reader(_on_channels(lake.list_channels), "trails:read"),
        "DeleteChannel": _op(_on_channels(lake.delete_channel), "trails:write"),
        "AddTags": _op(add_tags, "trails:write"),
        "RemoveTags": _op(remove_tags, "trails:write"),
        "ListTags": _reader(list_tags, "trails:read"),
        "ListPublicKeys": _reader(list_public_keys, "trails:read"),
        # Bounded (one indexed page of at most 50 records from the warm history cache) and
        # served at high rates: answered on the event loop.
        "LookupEvents": _reader(lookup_events, "events:read", inline=True),
    })

IAM: ServiceSpec[IamDomain] = ServiceSpec(
    name="iam", title="IAM", signing_name="iam", protocol="query", event_source=audit.IAM_SOURCE, api_version="2010-05-08",
    context=_identity_of,
    operations={
        "CreateUser": _op(create_user, "identity:write", extensions=frozenset({"Role"})),
        "DeleteUser": _op(delete_user, "identity:write"),
        "ListUsers": _reader(list_users, "identity:read"),
        "CreateAccessKey": _op(create_access_key, "identity:write"),
        "UpdateAccessKey": _op(update_access_key, "identity:write"),
        "DeleteAccessKey": _op(delete_access_key, "identity:write"),
        "ListAccessKeys": _reader(list_access_keys, "identity:read"),
        # Roles exist for trails to name (CloudWatchLogsRoleArn); no sessions are issued.
        "CreateRole": _op(create_role, "identity:write", auditor=_role_audit),
        "GetRole": _reader(get_role, "identity:read", auditor=_role_audit),
        "ListRoles": _reader(list_roles, "identity:read"),
        "DeleteRole": _op(delete_role, "identity:write", auditor=_role_audit),
        "PutRolePolicy": _op(put_role_policy, "identity:write", auditor=_role_audit),
        "GetRolePolicy": _reader(get_role_policy, "identity:read", auditor=_role_audit),
        "DeleteRolePolicy": _op(delete_role_policy, "identity:write", auditor=_role_audit),
        "ListRolePolicies": _reader(list_role_policies, "identity:read", auditor=_role_audit),
    })

# trailkeeper's own operations, on the native API only. Their records keep CloudTrail's event
# source, as they always have (a change would split one operation's history in two).
TRAILKEEPER: ServiceSpec[ServerStatusSource] = ServiceSpec(
    name="trailkeeper", title="trailkeeper", signing_name="trailkeeper", protocol="native", event_source=audit.CLOUDTRAIL_SOURCE,
    has_model=False, context=_status_of,
    operations={"GetServerStatus": _reader(get_server_status, "trails:read")})


# Fields never written into the audit record (secrets).
SECRET_RESPONSE_PATHS = {("AccessKey", "SecretAccessKey")}


def redact_response(response: dict[str, Any]) -> dict[str, Any]:
    """What the audit record keeps of a response: no secrets (the app keeps no response at all
    of a read-only call)."""
    out = dict(response)
    for outer, inner in SECRET_RESPONSE_PATHS:
        if isinstance(out.get(outer), dict):
            out[outer] = {k: v for k, v in out[outer].items() if k != inner}
    return out
