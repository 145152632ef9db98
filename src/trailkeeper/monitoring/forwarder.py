"""Forwarding a trail's events to its CloudWatch Logs group, as CloudTrail does (issue #11 item 1).

`ForwardingTargets.check` refuses a trail's CloudWatchLogsLogGroupArn / CloudWatchLogsRoleArn
the way CloudTrail's CreateTrail and UpdateTrail do. `TrailForwarder` is the handler of one
`SpoolConsumer` per forwarding trail (consumer `cwlogs-{trail}`, offset in consumer_offsets):

- One consumer per trail, not one for all: a trail whose group was deleted or whose role lost
  its permissions holds back only its own forwarding (architecture: consumers are
  independent), each starts where its trail started forwarding, and turning forwarding off
  drops that consumer so that it no longer holds the spool.
- It takes what the trail takes: records read while the trail logs (up to its stop), selected
  by the trail's own selectors (TrailConfig.selects, as its delivery does).
- Each record becomes one log event of the stream `{account}_CloudTrail_{region}` (created when
  missing): its compact JSON, timestamped with the delivery time as CloudTrail does (spec
  cloudtrail-formats §8, monitoring §2; metric datapoints are then in the minute the event
  arrived, which is what an alarm evaluating recent periods sees).
- Exactly once: each log event carries the record's eventID as its dedup key in the group, so a
  batch offered again after a crash (stored, offset not yet committed) stores nothing twice.
- A record over the log-event size limit is not forwarded; it is counted, once.
- When the group is gone or the role no longer allows the two actions, the error is recorded
  (GetTrailStatus's LatestCloudWatchLogsDeliveryError; a service event at the start and the end
  of the failure) and the batch raised as an outage: the offset stays, the consumer registry
  retries with backoff, and nothing is lost.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from trailkeeper.clock import Clock, iso_seconds
from trailkeeper.consumers.base import OffsetStore
from trailkeeper.consumers.spool_consumer import SetAside, SpoolConsumer, Spooled, Yield
from trailkeeper.errors import StorageError, TrailError
from trailkeeper.monitoring.forwarding import (
    MAX_LOG_EVENT_BYTES,
    default_log_group,
    forwarding_denials,
    log_group_arn,
    stream_arn,
    stream_name,
)
from trailkeeper.monitoring.loggroups import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, LogGroups, LogsError
from trailkeeper.monitoring.loggroups_store import NewEvent, event_bytes
from trailkeeper.roles import Role, Roles
from trailkeeper.spool import Spool
from trailkeeper.trails import ForwardingStatus, ForwardingStatusRepository, Trail, TrailStore

log = logging.getLogger(__name__)

CONSUMER_PREFIX = "cwlogs-"
FORWARD_BATCH_RECORDS = 2000
FORWARD_BATCH_BYTES = 4 << 20
# Forwarding shares the server's interpreter with the acknowledgement path. When ingest saturates
# it (the forwarder more than 20,000 records behind and still falling behind), the forwarder
# works at most a fifth of the time, so acknowledgements keep their pace; it runs flat out again
# as soon as its backlog stops growing (docs/forwarding.md). At a steady 5,000 events/s it keeps
# up unthrottled, so forwarding (and alerting) stay within a second.
FORWARD_YIELD = Yield(behind=20_000, duty=0.2)
CLOUDTRAIL_PRINCIPAL = "cloudtrail.amazonaws.com"
GROUP_ERROR = "InvalidCloudWatchLogsLogGroupArnException"
ROLE_ERROR = "InvalidCloudWatchLogsRoleArnException"
_KEY_UNUSABLE = frozenset({"AccessDeniedException", "ServiceUnavailableException"})
_GROUP_ARN_RE = re.compile(r"arn:aws:logs:([a-z0-9-]+):(\d{12}):log-group:([.\-_/#A-Za-z0-9]{1,512})(:\*)?")
_ROLE_ARN_RE = re.compile(r"arn:aws:iam::(\d{12}):role/(?:[\x21-\x7e]*/)?[\w+=,.@-]{1,64}")

Emit = Callable[[str, Trail, dict[str, Any]], None]  # service event: name, trail, details


class ForwardingUnavailable(StorageError):
    """The trail's group or role cannot take events now: an outage of the destination (the
    consumer keeps its offset and retries), never a reason to set a record aside."""


def consumer_name(trail: str) -> str:
    return f"{CONSUMER_PREFIX}{trail}"


def trusts_cloudtrail(policy: dict[str, Any]) -> bool:
    """Whether a trust policy lets CloudTrail assume the role (an Allow of sts:AssumeRole for the
    service principal cloudtrail.amazonaws.com, or for any principal)."""
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if not any(isinstance(a, str) and a.lower() in ("sts:assumerole", "sts:*", "*") for a in actions):
            continue
        principal = statement.get("Principal")
        if principal == "*":
            return True
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        if CLOUDTRAIL_PRINCIPAL in (services if isinstance(services, list) else [services]):
            return True
    return False


class ForwardingTargets:
    """A trail's CloudWatch Logs group and role: checked as CloudTrail checks them when a trail
    is saved, and resolved again before every forwarded batch (either may change meanwhile)."""

    def __init__(self, log_groups: LogGroups, roles: Roles, account_id: str, region: str) -> None:
        self.log_groups = log_groups
        self.roles = roles
        self.account_id = account_id
        self.region = region

    def check(self, group_arn: str, role_arn: str) -> None:
        """Raise the TrailError CloudTrail answers for these settings; both "" is fine (no forwarding)."""
        if not group_arn and not role_arn:
            return
        if not role_arn:
            raise TrailError(ROLE_ERROR, "You must specify a role ARN as well as a log group: give "
                             "CloudWatchLogsRoleArn, or \"\" for both to stop forwarding.")
        if not group_arn:
            raise TrailError(GROUP_ERROR, "You must specify a log group ARN as well as a role: give "
                             "CloudWatchLogsLogGroupArn, or \"\" for both to stop forwarding.")
        problem = self.problem(group_arn, role_arn)
        if problem is not None:
            raise TrailError(*problem)

    def problem(self, group_arn: str, role_arn: str) -> tuple[str, str] | None:
        """(CloudTrail error code, message) of what keeps the settings from working; None: they work."""
        group, problem = self._group(group_arn)
        if problem is not None:
            return GROUP_ERROR, problem
        assert group is not None
        role, problem = self._role(role_arn)
        if problem is not None:
            return ROLE_ERROR, problem
        assert role is not None
        if not trusts_cloudtrail(_parsed(role.assume_role_policy)):
            return ROLE_ERROR, (f"Access denied. Check the trust relationships for your role: role {role.name}'s "
                                f"trust policy must allow {CLOUDTRAIL_PRINCIPAL} to sts:AssumeRole.")
        denials = forwarding_denials(self.roles.policy_documents(role), self.region, self.account_id, group)
        if denials:
            stream = stream_arn(self.region, self.account_id, group, stream_name(self.account_id, self.region))
            return ROLE_ERROR, (f"Access denied. Check the permissions for your role: role {role.name} does not "
                                f"allow {'; '.join(denials)}. Put a role policy (aws iam put-role-policy) allowing "
                                f"logs:CreateLogStream and logs:PutLogEvents on {stream}*.")
        return None

    def default_for_new_trails(self) -> tuple[str, str] | None:
        """(group ARN, role ARN) for a trail created without CloudWatch Logs settings: the group
        tagged NEW_TRAILS_TAG (the CIS pack's, by `trailkeeper init`) with the role its tag names,
        when those settings pass the same check; None when there is none, or it no longer works
        (the trail is then created without forwarding, and the reason logged)."""
        from trailkeeper.monitoring.cis_pack import NEW_TRAILS_TAG

        after = ""
        while records := self.log_groups.repo.groups("", after, 100):
            for record in records:
                role = record.tags.get(NEW_TRAILS_TAG)
                if role:
                    group = log_group_arn(self.region, self.account_id, record.name) + ":*"
                    problem = self.problem(group, role)
                    if problem is None:
                        return group, role
                    log.warning("new trails do not forward to %s: %s", record.name, problem[1])
            after = records[-1].name
        return None

    def resolve(self, group_arn: str, role_arn: str) -> str:
        """The group's name, when the settings work now; ForwardingUnavailable saying why not."""
        problem = self.problem(group_arn, role_arn)
        if problem is not None:
            raise ForwardingUnavailable(f"{problem[0]}: {problem[1]}",
                                        "events wait in the spool; they are forwarded once the group and role work")
        group, _ = self._group(group_arn)
        assert group is not None
        return group

    def _group(self, arn: str) -> tuple[str | None, str | None]:
        match = _GROUP_ARN_RE.fullmatch(arn)
        if match is None:
            return None, (f"CloudWatchLogsLogGroupArn {arn!r} is not a log group ARN: use "
                          f"{log_group_arn(self.region, self.account_id, '<logGroupName>')}:* "
                          "(aws logs describe-log-groups shows each group's arn).")
        region, account, name = match[1], match[2], match[3]
        if (region, account) != (self.region, self.account_id):
            return None, (f"Log group {name} is in account {account}, region {region}; a trail forwards only to a "
                          f"group of its own account {self.account_id} and region {self.region}.")
        if self.log_groups.repo.get_group(name) is None:
            return None, (f"Log group {name} does not exist: create it (aws logs create-log-group "
                          f"--log-group-name {name}) or name an existing one.")
        return name, None

    def _role(self, arn: str) -> tuple[Role | None, str | None]:
        match = _ROLE_ARN_RE.fullmatch(arn)
        if match is None:
            return None, (f"CloudWatchLogsRoleArn {arn!r} is not a role ARN: use "
                          f"arn:aws:iam::{self.account_id}:role/<RoleName> (aws iam get-role shows it).")
        if match[1] != self.account_id:
            return None, f"Role {arn} is in account {match[1]}; use a role of account {self.account_id}."
        role = self.roles.role_of_arn(arn)
        if role is None:
            return None, (f"Role {arn} does not exist: create it (aws iam create-role) with a trust policy "
                          f"for {CLOUDTRAIL_PRINCIPAL}.")
        return role, None


def _parsed(document: str) -> dict[str, Any]:
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _chunks(events: list[NewEvent]) -> Iterator[list[NewEvent]]:
    """PutLogEvents-sized batches: at most MAX_BATCH_EVENTS events and MAX_BATCH_BYTES bytes."""
    chunk: list[NewEvent] = []
    size = 0
    for event in events:
        cost = event_bytes(event.message)
        if chunk and (len(chunk) == MAX_BATCH_EVENTS or size + cost > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(event)
        size += cost
    if chunk:
        yield chunk


class TrailForwarder:
    """The handler of one trail's forwarding consumer (see the module's docstring)."""

    def __init__(self, trail_name: str, trails: TrailStore, targets: ForwardingTargets,
                 status: ForwardingStatusRepository, clock: Clock, emit: Emit | None = None) -> None:
        self.trail_name = trail_name
        self._trails = trails
        self._targets = targets
        self._status = status
        self._clock = clock
        self._emit = emit
        self._stream = stream_name(targets.account_id, targets.region)
        self._streams: set[str] = set()  # groups known to have the stream

    def __call__(self, batch: Sequence[Spooled]) -> None:
        trail = self._trails.find(self.trail_name)
        if trail is None or not trail.config.forwards or not batch:
            return  # forwarding was turned off or the trail deleted: its consumer is being removed
        events, oversize_seqs = self._selected(trail, batch)
        if not events and not oversize_seqs:
            return
        now = self._clock.now()
        stored = 0
        if events:
            try:
                stored = self._put(trail, events, now)
            except ForwardingUnavailable as e:
                self._failed(trail, e)
                raise
        before = self._status.get(self.trail_name)
        # Counted once: a batch offered again after a crash may reach further (records appended
        # meanwhile), so what was counted is told by each record's seq, not by the batch's end.
        oversize = sum(1 for seq in oversize_seqs if seq > before.counted_seq)
        self._status.delivered(self.trail_name, now if events else None, stored, oversize, batch[-1].seq)
        if oversize:
            log.warning("trail %s: %d event(s) over %d bytes not forwarded to CloudWatch Logs", self.trail_name,
                        oversize, MAX_LOG_EVENT_BYTES)
        if events and before.failing_since is not None and self._emit is not None:
            self._emit("CloudWatchLogsDeliveryRecovered", trail, {
                "failureStart": iso_seconds(before.failing_since), "failureEnd": iso_seconds(now),
                "durationSeconds": int((now - before.failing_since).total_seconds())})

    def _selected(self, trail: Trail, batch: Sequence[Spooled]) -> tuple[list[tuple[str, str]], list[int]]:
        """(dedup key, message) of each record the trail takes, and the seqs of those too large."""
        state = trail.state
        if not state.is_logging:
            return [], []  # a stopped trail forwards nothing, as it delivers nothing
        events: list[tuple[str, str]] = []
        oversize: list[int] = []
        for item in batch:
            if state.stop_seq is not None and item.seq >= state.stop_seq:
                break
            if not trail.config.selects(item.record):
                continue
            message = orjson.dumps(item.record)
            if len(message) > MAX_LOG_EVENT_BYTES:
                oversize.append(item.seq)
                continue
            event_id = item.record.get("eventID")
            # Every spooled record has an eventID (records.py); the seq, which never changes, is a
            # stable stand-in should one lack it.
            events.append((event_id if isinstance(event_id, str) and event_id else f"seq:{item.seq}",
                           message.decode("utf-8")))
        return events, oversize

    def _put(self, trail: Trail, events: list[tuple[str, str]], now: datetime) -> int:
        config = trail.config
        group = self._targets.resolve(config.cloudwatch_logs_group_arn, config.cloudwatch_logs_role_arn)
        timestamp = int(now.timestamp() * 1000)
        batch = [NewEvent(timestamp, message, key) for key, message in events]
        try:
            return self._put_all(group, batch)
        except LogsError as e:
            if e.code in _KEY_UNUSABLE:
                # The group's KMS key is disabled or its KMS unreachable: an outage to wait out
                # (the records stay in the spool), never a reason to set records aside.
                raise ForwardingUnavailable(f"{GROUP_ERROR}: log group {group}: {e}",
                                            "events wait in the spool; enable the group's KMS key") from e
            if e.code != "ResourceNotFoundException":
                raise
        # A group deleted and created again lost its stream: create it and send once more (events
        # stored by the first attempt are recognised by their keys).
        self._streams.discard(group)
        try:
            return self._put_all(group, batch)
        except LogsError as e:
            if e.code != "ResourceNotFoundException":
                raise
            raise ForwardingUnavailable(f"{GROUP_ERROR}: log group {group}: {e}",
                                        "events wait in the spool; recreate the group or point the trail "
                                        "at another") from e

    def _put_all(self, group: str, batch: list[NewEvent]) -> int:
        self._ensure_stream(group)
        return sum(self._targets.log_groups.put_events(group, self._stream, chunk).stored for chunk in _chunks(batch))

    def _ensure_stream(self, group: str) -> None:
        if group in self._streams:
            return
        try:
            self._targets.log_groups.create_stream(group, self._stream)
        except LogsError as e:
            if e.code != "ResourceAlreadyExistsException":
                raise
        self._streams.add(group)

    def _failed(self, trail: Trail, error: ForwardingUnavailable) -> None:
        now = self._clock.now()
        first = self._status.failed(self.trail_name, now, str(error))
        log.warning("trail %s: forwarding to CloudWatch Logs failed: %s (events wait in the spool)",
                    self.trail_name, error)
        if first and self._emit is not None:
            self._emit("CloudWatchLogsDeliveryFailed", trail, {"error": str(error), "failureStart": iso_seconds(now)})


def forwarding_consumer(trail_name: str, spool: Spool, offsets: OffsetStore, handler: TrailForwarder,
                        set_aside: SetAside) -> SpoolConsumer:
    """The trail's forwarding consumer; a trail never forwarded before starts at the next record."""
    # Larger reads than the default: each read commits the offset, the forwarding status and
    # the log events in their own transactions, so fewer reads cost fewer commits; the handler
    # splits a read into PutLogEvents-sized batches.
    return SpoolConsumer(consumer_name(trail_name), spool, offsets, handler, set_aside,
                         batch_records=FORWARD_BATCH_RECORDS, batch_bytes=FORWARD_BATCH_BYTES,
                         yield_to_ingest=FORWARD_YIELD)


def start_fresh(trail_name: str, spool: Spool, offsets: OffsetStore) -> None:
    """Forwarding is (re)enabled: begin at the next record, not where an earlier enabling stopped
    (offsets only move forward, so this skips what was acknowledged while it was off)."""
    offsets.commit(consumer_name(trail_name), spool.next_seq())


class Forwarding:
    """Forwarding as the CloudTrail operations ask about it (operations.TrailForwarding): the
    check of a trail's settings and its status. The targets are built on first use, so a server
    whose trails never forward opens no log groups for it."""

    def __init__(self, targets: Callable[[], ForwardingTargets], status: ForwardingStatusRepository) -> None:
        self._targets = targets
        self._status = status

    def check(self, group_arn: str, role_arn: str) -> None:
        self._targets().check(group_arn, role_arn)

    def default_for_new_trails(self) -> tuple[str, str] | None:
        return self._targets().default_for_new_trails()

    def status(self, trail_name: str) -> ForwardingStatus:
        return self._status.get(trail_name)


# ---- setting forwarding up as the CloudTrail console does (`trailkeeper trail update --log-group`) ----
ROLE_NAME_PREFIX = "CloudTrailRoleForCloudWatchLogs_"
ROLE_POLICY_NAME = "CloudTrailCloudWatchLogs"
MAX_ROLE_NAME = 64
Call = Callable[..., dict[str, Any]]  # operation name, then its parameters: the native client's `call`


@dataclass(frozen=True)
class ForwardingSetup:
    """What `set_up_forwarding` did, for the CLI to say."""

    group: str
    group_created: bool
    role_arn: str
    role_created: bool
    trail: dict[str, Any]  # UpdateTrail's answer


def trust_policy() -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": CLOUDTRAIL_PRINCIPAL}, "Action": "sts:AssumeRole"}]}


def minimal_role_policy(account_id: str, region: str, group: str) -> dict[str, Any]:
    """The two actions on the trail's streams only (the policy the CloudTrail console writes)."""
    streams = stream_arn(region, account_id, group, stream_name(account_id, region)) + "*"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AWSCloudTrailCreateLogStream", "Effect": "Allow", "Action": ["logs:CreateLogStream"],
         "Resource": [streams]},
        {"Sid": "AWSCloudTrailPutLogEvents", "Effect": "Allow", "Action": ["logs:PutLogEvents"],
         "Resource": [streams]}]}


def forwarding_role_name(trail: str) -> str:
    """CloudTrailRoleForCloudWatchLogs_{trail}, cut to IAM's 64 characters."""
    return (ROLE_NAME_PREFIX + trail)[:MAX_ROLE_NAME]


def set_up_forwarding(call: Call, trail: str, group: str | None, code_of: Callable[[Exception], str]) -> ForwardingSetup:
    """Forward `trail` to `group` through the API `call` reaches: the group is created when it does
    not exist (None: the default group aws-cloudtrail-logs-{account}-{8 hex}), the role
    CloudTrailRoleForCloudWatchLogs_{trail} when it does not exist, its policy is (re)put with the
    minimal permissions, then the trail is updated. `code_of` tells an API error's code."""
    [described] = call("DescribeTrails", trailNameList=[trail])["trailList"]
    _, _, _, region, account_id, _ = str(described["TrailARN"]).split(":", 5)
    name = group or default_log_group(account_id)
    existing = call("DescribeLogGroups", logGroupNamePrefix=name).get("logGroups", [])
    group_created = not any(g.get("logGroupName") == name for g in existing)
    if group_created:
        call("CreateLogGroup", logGroupName=name)
    role_name = forwarding_role_name(trail)
    try:
        role = call("GetRole", RoleName=role_name)["Role"]
        role_created = False
    except Exception as e:
        if code_of(e) != "NoSuchEntity":
            raise
        role = call("CreateRole", RoleName=role_name, AssumeRolePolicyDocument=orjson.dumps(trust_policy()).decode(),
                    Description=f"CloudTrail forwards trail {trail} to CloudWatch Logs as this role")["Role"]
        role_created = True
    call("PutRolePolicy", RoleName=role_name, PolicyName=ROLE_POLICY_NAME,
         PolicyDocument=orjson.dumps(minimal_role_policy(account_id, region, name)).decode())
    answer = call("UpdateTrail", Name=trail, CloudWatchLogsLogGroupArn=log_group_arn(region, account_id, name) + ":*",
                  CloudWatchLogsRoleArn=role["Arn"])
    return ForwardingSetup(name, group_created, str(role["Arn"]), role_created, answer)
