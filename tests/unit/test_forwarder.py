"""Forwarding a trail to CloudWatch Logs: CloudTrail's checks of the settings (each refusal
named), the trail's API shape and status, and the forwarding consumer: exactly once across a
crash between the log events and the offset commit, oversize events counted once, a deleted
group waited out without losing anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.pipeline import Pipeline, app_event, open_pipeline

from trailkeeper.api.app import caller_of
from trailkeeper.api.operations import (
    CLOUDTRAIL,
    CloudTrailDomain,
    get_server_status,
    get_trail,
    get_trail_status,
    update_trail,
)
from trailkeeper.clock import SystemClock
from trailkeeper.config import load_config
from trailkeeper.consumers.base import SqliteOffsets
from trailkeeper.consumers.spool_consumer import SpoolConsumer
from trailkeeper.errors import StorageError, TrailError
from trailkeeper.monitoring.forwarder import (
    ForwardingTargets,
    TrailForwarder,
    consumer_name,
    forwarding_consumer,
)
from trailkeeper.monitoring.forwarding import MAX_LOG_EVENT_BYTES, log_group_arn, stream_name
from trailkeeper.monitoring.loggroups import LogGroups
from trailkeeper.monitoring.loggroups_store import EventQuery, MemoryLogGroupRepository
from trailkeeper.roles import Roles
from trailkeeper.service import Service
from trailkeeper.state.roles import MemoryRoleRepository
from trailkeeper.trails import TrailConfig

ACCOUNT, REGION = "123456789012", "us-east-1"
GROUP = "aws-cloudtrail-logs-123456789012-0a1b2c3d"


def _trust(service: str = "cloudtrail.amazonaws.com") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def _allow(actions: list[str], resource: str, effect: str = "Allow") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": effect, "Action": actions, "Resource": resource}]})


def _stream_resource(account: str, region: str, group: str) -> str:
    return f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:{account}_CloudTrail_{region}*"


BOTH = ["logs:CreateLogStream", "logs:PutLogEvents"]
MINIMAL = _allow(BOTH, _stream_resource(ACCOUNT, REGION, GROUP))


@pytest.fixture()
def targets() -> ForwardingTargets:
    groups = LogGroups(MemoryLogGroupRepository(), SystemClock(), ACCOUNT, REGION)
    groups.create_group(GROUP)
    roles = Roles(MemoryRoleRepository(), SystemClock(), ACCOUNT)
    roles.create_role("good", _trust())
    roles.put_role_policy("good", "logs", MINIMAL)
    roles.create_role("no-put", _trust())
    roles.put_role_policy("no-put", "logs", _allow(["logs:CreateLogStream"], _stream_resource(ACCOUNT, REGION, GROUP)))
    roles.create_role("denied", _trust())
    roles.put_role_policy("denied", "logs", MINIMAL)
    roles.put_role_policy("denied", "deny", _allow(["logs:PutLogEvents"], "*", effect="Deny"))
    roles.create_role("other-group", _trust())
    roles.put_role_policy("other-group", "logs", _allow(BOTH, _stream_resource(ACCOUNT, REGION, "elsewhere")))
    roles.create_role("untrusted", _trust("lambda.amazonaws.com"))
    roles.put_role_policy("untrusted", "logs", MINIMAL)
    roles.create_role("no-policy", _trust())
    return ForwardingTargets(groups, roles, ACCOUNT, REGION)


GROUP_ARN = log_group_arn(REGION, ACCOUNT, GROUP) + ":*"


def _role(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


REFUSALS = [
    # (case, group ARN, role ARN, expected code, words the message must hold)
    ("group without a role", GROUP_ARN, "", "InvalidCloudWatchLogsRoleArnException", "must specify a role ARN"),
    ("role without a group", "", _role("good"), "InvalidCloudWatchLogsLogGroupArnException",
     "must specify a log group ARN"),
    ("malformed group ARN", f"arn:aws:s3:::{GROUP}", _role("good"), "InvalidCloudWatchLogsLogGroupArnException",
     "is not a log group ARN"),
    ("group of another account", log_group_arn(REGION, "210987654321", GROUP), _role("good"),
     "InvalidCloudWatchLogsLogGroupArnException", "account 210987654321"),
    ("group of another region", log_group_arn("eu-west-1", ACCOUNT, GROUP), _role("good"),
     "InvalidCloudWatchLogsLogGroupArnException", "region eu-west-1"),
    ("group that does not exist", log_group_arn(REGION, ACCOUNT, "nope"), _role("good"),
     "InvalidCloudWatchLogsLogGroupArnException", "aws logs create-log-group --log-group-name nope"),
    ("malformed role ARN", GROUP_ARN, "good", "InvalidCloudWatchLogsRoleArnException", "is not a role ARN"),
    ("role of another account", GROUP_ARN, _role("good", "210987654321"), "InvalidCloudWatchLogsRoleArnException",
     "account 210987654321"),
    ("role that does not exist", GROUP_ARN, _role("ghost"), "InvalidCloudWatchLogsRoleArnException",
     "does not exist"),
    ("role CloudTrail may not assume", GROUP_ARN, _role("untrusted"), "InvalidCloudWatchLogsRoleArnException",
     "trust relationships"),
    ("role without any policy", GROUP_ARN, _role("no-policy"), "InvalidCloudWatchLogsRoleArnException",
     "logs:CreateLogStream: no statement allows it"),
    ("role lacking PutLogEvents", GROUP_ARN, _role("no-put"), "InvalidCloudWatchLogsRoleArnException",
     "logs:PutLogEvents: no statement allows it"),
    ("PutLogEvents explicitly denied", GROUP_ARN, _role("denied"), "InvalidCloudWatchLogsRoleArnException",
     "logs:PutLogEvents: explicitly denied"),
    ("policy for another group", GROUP_ARN, _role("other-group"), "InvalidCloudWatchLogsRoleArnException",
     "aws iam put-role-policy"),
]


@pytest.mark.parametrize(("case", "group", "role", "code", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals(targets: ForwardingTargets, case: str, group: str, role: str, code: str, words: str) -> None:
    with pytest.raises(TrailError) as refused:
        targets.check(group, role)
    assert refused.value.code == code, case
    assert words in str(refused.value), str(refused.value)


def test_acceptable_settings(targets: ForwardingTargets) -> None:
    targets.check(GROUP_ARN, _role("good"))
    targets.check(GROUP_ARN.removesuffix(":*"), _role("good"))  # with or without AWS's ':*'
    targets.check("", "")  # no forwarding
    assert targets.resolve(GROUP_ARN, _role("good")) == GROUP
    with pytest.raises(StorageError, match="PutLogEvents"):  # at forwarding time: an outage, waited out
        targets.resolve(GROUP_ARN, _role("no-put"))


# ---- the whole path, in process ----
@dataclass
class Setup:
    p: Pipeline
    ct: CloudTrailDomain
    group_arn: str
    role_arn: str

    def events(self) -> list[dict[str, Any]]:
        stored = self.p.service.runtime.log_groups.repo.events(EventQuery(GROUP, limit=100_000))
        assert {e.stream for e in stored} <= {stream_name(self.p.creds.account_id, self.p.creds.region)}
        return [orjson.loads(e.message) for e in stored]

    def app_ids(self) -> list[str]:
        return [e["eventID"] for e in self.events() if e.get("eventSource") == "app.example.com"]

    def ingest(self, n: int, name: str = "Login") -> list[str]:
        return self.p.ingest([app_event(i, self.p.clock.now(), name) for i in range(n)])


@pytest.fixture()
def setup(tmp_path: Path) -> Iterator[Setup]:
    with open_pipeline(tmp_path) as p:
        account, region = p.creds.account_id, p.creds.region
        p.service.runtime.log_groups.create_group(GROUP)
        roles = p.service.runtime.roles
        role = roles.create_role("CloudTrailRoleForCloudWatchLogs_main", _trust())
        roles.put_role_policy(role.name, "logs", _allow(BOTH, _stream_resource(account, region, GROUP)))
        p.service.create_trail(TrailConfig(name="main", bucket="main-logs", destination=str(tmp_path / "dest")))
        p.service.start_logging("main")
        ct = CLOUDTRAIL.context(p.service)
        group_arn = log_group_arn(region, account, GROUP) + ":*"
        update_trail(ct, None, {"Name": "main", "CloudWatchLogsLogGroupArn": group_arn,  # type: ignore[arg-type]
                                "CloudWatchLogsRoleArn": role.arn})
        yield Setup(p, ct, group_arn, role.arn)


def test_the_trail_shows_its_settings_and_status(setup: Setup) -> None:
    trail = get_trail(setup.ct, None, {"Name": "main"})["Trail"]  # type: ignore[arg-type]
    assert (trail["CloudWatchLogsLogGroupArn"], trail["CloudWatchLogsRoleArn"]) == (setup.group_arn, setup.role_arn)
    ids = setup.ingest(3)
    setup.p.service.pump()
    assert setup.app_ids() == ids
    status = get_trail_status(setup.ct, None, {"Name": "main"})  # type: ignore[arg-type]
    assert status["LatestCloudWatchLogsDeliveryTime"] == setup.p.clock.now().timestamp()
    assert "LatestCloudWatchLogsDeliveryError" not in status


def test_empty_strings_stop_forwarding(setup: Setup) -> None:
    update_trail(setup.ct, None, {"Name": "main", "CloudWatchLogsLogGroupArn": "",  # type: ignore[arg-type]
                                  "CloudWatchLogsRoleArn": ""})
    trail = get_trail(setup.ct, None, {"Name": "main"})["Trail"]  # type: ignore[arg-type]
    assert "CloudWatchLogsLogGroupArn" not in trail and "CloudWatchLogsRoleArn" not in trail
    assert setup.p.service.consumers.get(consumer_name("main")) is None  # no longer holds the spool
    setup.ingest(2)
    setup.p.service.pump()
    assert setup.app_ids() == []


def test_a_refused_update_changes_nothing(setup: Setup) -> None:
    with pytest.raises(TrailError) as refused:
        update_trail(setup.ct, None, {"Name": "main", "CloudWatchLogsLogGroupArn": setup.group_arn})  # type: ignore[arg-type]
    assert refused.value.code == "InvalidCloudWatchLogsRoleArnException"
    trail = get_trail(setup.ct, None, {"Name": "main"})["Trail"]  # type: ignore[arg-type]
    assert trail["CloudWatchLogsRoleArn"] == setup.role_arn


def test_only_what_the_trail_selects_while_it_logs(setup: Setup) -> None:
    setup.p.service.trails.update_config(
        TrailConfig(**{**json.loads(setup.p.service.get_trail("main").config.to_json()),
                       "selectors": ({"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True,
                                      "DataResources": [], "ExcludeManagementEventSources": []},)}))
    read = setup.p.ingest([{**app_event(0, setup.p.clock.now()), "readOnly": True}])
    write = setup.ingest(1)
    setup.p.service.pump()
    assert setup.app_ids() == write and read[0] not in setup.app_ids()
    setup.p.service.stop_logging("main")
    setup.p.advance(5)  # the stop finishes
    assert not setup.p.service.get_trail("main").state.is_logging
    later = setup.ingest(1)
    setup.p.service.pump()
    assert later[0] not in setup.app_ids()


def _restart(setup: Setup) -> SpoolConsumer:
    """The trail's forwarding consumer as a new process would build it: durable state only."""
    service = setup.p.service
    service.consumers.remove(consumer_name("main"))
    handler = TrailForwarder("main", service.trails, service.forwarding_targets, service.forwarding_status,
                             service.clock)
    consumer = forwarding_consumer("main", service.spool, SqliteOffsets(service.state_db), handler,
                                   service.set_aside)
    service.consumers.add(consumer)
    return consumer


def _crash_next_commit(setup: Setup) -> None:
    offsets = setup.p.service._offsets
    real = offsets.commit

    def commit(name: str, next_seq: int) -> None:
        offsets.commit = real  # type: ignore[method-assign]
        raise RuntimeError("killed between the log events and the offset commit")

    offsets.commit = commit  # type: ignore[method-assign]


def test_exactly_once_across_a_crash_before_the_offset_commit(setup: Setup) -> None:
    consumer = setup.p.service.consumers.get(consumer_name("main"))
    assert consumer is not None
    ids = setup.ingest(20)
    _crash_next_commit(setup)
    with pytest.raises(RuntimeError, match="killed"):
        consumer.step()
    assert setup.app_ids() == ids  # the events are in the group; the offset is not past them
    restarted = _restart(setup)
    more = setup.ingest(5)
    setup.p.service.pump()
    assert restarted.needed() == setup.p.service.spool.next_seq()
    forwarded = setup.app_ids()
    assert forwarded == ids + more  # none missing, none twice
    assert len(set(forwarded)) == len(forwarded)
    status = setup.p.service.forwarding_status.get("main")
    assert status.forwarded == len(setup.events())  # a resent event already stored is not counted


def _oversize_record(seq_hint: int) -> bytes:
    record = {"eventVersion": "1.11", "eventID": f"00000000-0000-4000-8000-{seq_hint:012d}", "eventTime":
              "2026-01-01T00:00:00Z", "eventSource": "app.example.com", "eventName": "Huge", "readOnly": False,
              "requestParameters": {"blob": "x" * (MAX_LOG_EVENT_BYTES + 10)}}
    return orjson.dumps(record)


def test_an_oversize_event_is_left_out_and_counted_once(setup: Setup) -> None:
    # Ingest accepts records up to 262,144 bytes and a log event holds 26 fewer: the spool is fed
    # directly to put one past the log-event limit.
    before = setup.ingest(1)
    setup.p.service.spool.append([_oversize_record(1)])
    after = setup.ingest(1)
    _crash_next_commit(setup)
    consumer = setup.p.service.consumers.get(consumer_name("main"))
    assert consumer is not None
    with pytest.raises(RuntimeError):
        consumer.step()
    _restart(setup)
    setup.p.service.pump()
    assert setup.app_ids() == before + after
    assert "Huge" not in [e["eventName"] for e in setup.events()]
    assert setup.p.service.forwarding_status.get("main").oversize == 1
    server_status = get_server_status(setup.p.service, None, {})  # type: ignore[arg-type]
    [main] = [t for t in server_status["Trails"] if t["Name"] == "main"]
    assert main["CloudWatchLogs"]["OversizeEvents"] == 1


def test_a_deleted_group_is_waited_out_and_nothing_is_lost(setup: Setup) -> None:
    logs = setup.p.service.runtime.log_groups
    logs.delete_group(GROUP)
    ids = setup.ingest(4)
    setup.p.service.pump()  # fails: recorded, offset kept
    status = get_trail_status(setup.ct, None, {"Name": "main"})  # type: ignore[arg-type]
    assert "does not exist" in status["LatestCloudWatchLogsDeliveryError"]
    consumer = setup.p.service.consumers.get(consumer_name("main"))
    assert consumer is not None and consumer.needed() is not None
    assert consumer.needed() <= setup.p.service.spool.next_seq() - 4  # type: ignore[operator]
    logs.create_group(GROUP)  # the group is back (empty, without its stream)
    setup.p.clock.advance(timedelta(seconds=1))
    setup.p.service.pump()
    assert ids == [i for i in setup.app_ids() if i in ids]
    status = get_trail_status(setup.ct, None, {"Name": "main"})  # type: ignore[arg-type]
    assert "LatestCloudWatchLogsDeliveryError" not in status
    names = [e["eventName"] for e in setup.events() if e.get("eventSource") != "app.example.com"]
    assert {"CloudWatchLogsDeliveryFailed", "CloudWatchLogsDeliveryRecovered"} <= set(names)


def test_forwarding_survives_a_restart_of_the_service(tmp_path: Path) -> None:
    ids: list[str] = []
    with open_pipeline(tmp_path) as p:
        p.service.runtime.log_groups.create_group(GROUP)
        role = p.service.runtime.roles.create_role("fwd", _trust())
        p.service.runtime.roles.put_role_policy(
            "fwd", "logs", _allow(BOTH, _stream_resource(p.creds.account_id, p.creds.region, GROUP)))
        p.service.create_trail(TrailConfig(name="main", bucket="main-logs", destination=str(tmp_path / "dest")))
        p.service.start_logging("main")
        update_trail(CLOUDTRAIL.context(p.service), None, {  # type: ignore[arg-type]
            "Name": "main", "CloudWatchLogsLogGroupArn": log_group_arn(p.creds.region, p.creds.account_id, GROUP),
            "CloudWatchLogsRoleArn": role.arn})
        ids += p.ingest([app_event(0, p.clock.now())])
        p.service.pump()
    # A new process on the same data directory.
    service = Service(load_config(tmp_path / "data", default_bucket_root=tmp_path / "buckets"), background=False)
    service.start()
    try:
        assert service.consumers.get(consumer_name("main")) is not None
        resolved = service.identity.resolve(p.creds.access_key_id)
        assert resolved is not None
        ids += service.record([app_event(1, service.clock.now())], caller_of(resolved[0]))
        service.pump()
        stored = service.runtime.log_groups.repo.events(EventQuery(GROUP))
        forwarded = [orjson.loads(e.message)["eventID"] for e in stored]
        # The restarted service runs on the system clock, behind the frozen one: compare as sets.
        assert sorted(i for i in forwarded if i in ids) == sorted(ids)
    finally:
        service.close(flush_timeout=1)


def test_a_disabled_group_key_is_waited_out_and_nothing_is_set_aside(setup: Setup) -> None:
    """The group's KMS key disabled: forwarding is an outage (offset kept, nothing quarantined);
    the key enabled again: every event arrives."""
    kms = setup.p.service.kms
    key = kms.create_key("log group key").key_id
    logs = setup.p.service.runtime.log_groups
    logs.associate_kms_key(GROUP, key)
    kms.disable_key(key)
    ids = setup.ingest(3)
    setup.p.service.pump()
    consumer = setup.p.service.consumers.get(consumer_name("main"))
    assert consumer is not None and consumer.needed() <= setup.p.service.spool.next_seq() - 3  # type: ignore[operator]
    assert not [e for e in setup.p.service.quarantine.entries() if e.consumer == consumer_name("main")]
    status = get_trail_status(setup.ct, None, {"Name": "main"})  # type: ignore[arg-type]
    assert "not usable" in status["LatestCloudWatchLogsDeliveryError"]
    kms.enable_key(key)
    setup.p.clock.advance(timedelta(seconds=1))
    setup.p.service.pump()
    # Read back through the log groups (the stored rows are ciphertext now).
    found = logs.filter_events(GROUP, '{ $.eventSource = "app.example.com" }').events
    assert ids == [i for i in (orjson.loads(e.message)["eventID"] for e in found) if i in ids]
