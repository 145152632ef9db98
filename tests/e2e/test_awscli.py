"""The unmodified AWS CLI against trailkeeper: CloudTrail JSON 1.1, the S3 read gateway and
`aws cloudtrail validate-logs` on a trail written by the real delivery pipeline.

The trail is produced in-process with a frozen clock half an hour in the past (so that every
digest period of it is due), then served by a real server process to the real AWS CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.e2e.harness import BIN, Server, run_cli
from tests.pipeline import app_event, open_pipeline

from trailkeeper.layout import trail_arn
from trailkeeper.trails import TrailConfig

AWS = str(BIN / "aws")
TRAIL = "audit"
BUCKET = "audit-logs"


@dataclass
class Served:
    server: Server
    dest: Path
    backup: Path
    arn: str
    start: datetime
    end: datetime

    def aws(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "AWS_ENDPOINT_URL": self.server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": self.server.creds["rootAccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": self.server.creds["rootSecretAccessKey"],
               "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        return subprocess.run([AWS, *args], capture_output=True, text=True, env=env, timeout=120,
                              stdin=subprocess.DEVNULL)

    def validate_logs(self) -> subprocess.CompletedProcess[str]:
        return self.aws("cloudtrail", "validate-logs", "--trail-arn", self.arn, "--start-time", _iso(self.start),
                        "--end-time", _iso(self.end))

    def trailkeeper_validate(self) -> subprocess.CompletedProcess[str]:
        return run_cli("validate", "--data-dir", str(self.server.data_dir), "--trail", TRAIL,
                       "--start-time", _iso(self.start), "--end-time", _iso(self.end), "--json", check=False)

    def restore(self) -> None:
        shutil.rmtree(self.dest)
        shutil.copytree(self.backup, self.dest)

    def files(self, kind: str) -> list[Path]:
        return sorted(p for p in self.dest.rglob("*.json.gz") if (kind == "digest") == ("CloudTrail-Digest" in str(p)))


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("awscli")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=40)
    dest = tmp / "dest"
    with open_pipeline(tmp, start=start) as p:
        p.service.create_trail(TrailConfig(name=TRAIL, bucket=BUCKET, destination=str(dest), validation=True,
                                           flush_interval_s=1, digest_interval_s=60))
        p.service.start_logging(TRAIL)
        for minute in range(6):
            p.ingest([app_event(i, p.clock.now(), f"Op{minute}") for i in range(5)])
            p.advance(2)
            p.advance(58)
        p.service.stop_logging(TRAIL)
        p.advance(3)
        end = p.clock.now() + timedelta(minutes=1)
        creds = p.creds
        arn = trail_arn(p.service.account.region, p.service.account.account_id, TRAIL)
    server = Server.for_data(tmp / "data", creds)
    server.start()
    backup = tmp / "backup"
    shutil.copytree(dest, backup)
    yield Served(server, dest, backup, arn, start - timedelta(minutes=1), end)
    assert server.terminate() == 0


def test_untouched_trail_is_valid_for_both_validators(served: Served) -> None:
    aws = served.validate_logs()
    assert aws.returncode == 0, aws.stdout + aws.stderr
    digests, logs = len(served.files("digest")), len(served.files("log"))
    assert digests >= 6 and logs >= 6
    assert f"{digests}/{digests} digest files valid" in aws.stdout
    assert f"{logs}/{logs} log files valid" in aws.stdout
    ours = served.trailkeeper_validate()
    assert ours.returncode == 0, ours.stdout + ours.stderr


def _modify_log(s: Served) -> None:
    import gzip

    path = s.files("log")[1]
    data = gzip.decompress(path.read_bytes()).replace(b'"eventTime":"2', b'"eventTime":"1', 1)
    path.write_bytes(gzip.compress(data))


def _delete_log(s: Served) -> None:
    s.files("log")[1].unlink()


def _delete_digest(s: Served) -> None:
    s.files("digest")[2].unlink()


def _change_signature(s: Served) -> None:
    meta = s.files("digest")[2].with_name(s.files("digest")[2].name + ".tkmeta")
    doc = json.loads(meta.read_text())
    doc["signature"] = ("0" if doc["signature"][0] != "0" else "1") + doc["signature"][1:]
    meta.write_text(json.dumps(doc))


def _move_digest(s: Served) -> None:
    # The AWS CLI starts its walk at the newest listed digest, so that is where a move shows.
    path = s.files("digest")[-1]
    stamp = path.name[-24:-8]
    later = (datetime.strptime(stamp, "%Y%m%dT%H%M%SZ") + timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(path.name.replace(stamp, later))
    path.rename(target)
    path.with_name(path.name + ".tkmeta").rename(target.with_name(target.name + ".tkmeta"))


TAMPERS: list[tuple[str, Callable[[Served], None], str, str]] = [
    ("log_modified", _modify_log, "INVALID: hash value doesn't match", "LOG_HASH_MISMATCH"),
    ("log_deleted", _delete_log, "INVALID: not found", "LOG_MISSING"),
    ("digest_deleted", _delete_digest, "INVALID: not found", "DIGEST_MISSING"),
    ("digest_signature_changed", _change_signature, "INVALID: signature verification failed", "DIGEST_BAD_SIGNATURE"),
    ("digest_moved", _move_digest, "INVALID: has been moved from its original location", "DIGEST_MOVED"),
]


@pytest.mark.parametrize("name, tamper, aws_line, our_code", TAMPERS, ids=[t[0] for t in TAMPERS])
def test_both_validators_reject_tampering(served: Served, name: str, tamper: Callable[[Served], None],
                                          aws_line: str, our_code: str) -> None:
    tamper(served)
    try:
        aws = served.validate_logs()
        assert aws.returncode == 1, aws.stdout + aws.stderr
        assert aws_line in aws.stderr
        ours = served.trailkeeper_validate()
        assert ours.returncode == 1
        assert our_code in ours.stdout
    finally:
        served.restore()


def _delete_two_consecutive_digests(s: Served) -> None:
    for path in s.files("digest")[2:4]:
        path.unlink()


def _delete_newest_digests(s: Served) -> None:
    for path in s.files("digest")[-2:]:
        path.unlink()


def _plant_log(s: Served) -> None:
    first = s.files("log")[0]
    shutil.copy(first, first.with_name(first.name.replace(first.name[-24:-8], "PLANTEDxxxxxxxx1")))


MISSED_BY_AWS: list[tuple[str, Callable[[Served], None], str, int]] = [
    ("two_consecutive_digests_deleted", _delete_two_consecutive_digests, "DIGEST_MISSING", 2),
    ("newest_digests_deleted", _delete_newest_digests, "CHAIN_TRUNCATED", 1),
    ("unreferenced_log_planted", _plant_log, "LOG_UNREFERENCED", 1),
]


@pytest.mark.parametrize("name, tamper, our_code, count", MISSED_BY_AWS, ids=[t[0] for t in MISSED_BY_AWS])
def test_trailkeeper_catches_what_the_aws_cli_misses(served: Served, name: str, tamper: Callable[[Served], None],
                                                     our_code: str, count: int) -> None:
    tamper(served)
    try:
        aws = served.validate_logs()
        ours = served.trailkeeper_validate()
        report = json.loads(ours.stdout)
        codes = [e["code"] for e in report["entries"] if e.get("code")]
        # Tail truncation is reported against the expected periods and against the last
        # verified state: at least once, the other cases exactly as counted.
        found = codes.count(our_code)
        assert ours.returncode == 1 and (found >= count if our_code == "CHAIN_TRUNCATED" else found == count), codes
        if name == "two_consecutive_digests_deleted":
            assert aws.returncode == 1 and aws.stderr.count("INVALID: not found") == 1  # aws-cli#7054
        else:
            assert aws.returncode == 0, aws.stdout + aws.stderr  # the AWS CLI sees nothing wrong
    finally:
        served.restore()


def test_cloudtrail_api_through_the_aws_cli(served: Served) -> None:
    trails = json.loads(served.aws("cloudtrail", "describe-trails").stdout)["trailList"]
    assert [t["TrailARN"] for t in trails] == [served.arn]
    status = json.loads(served.aws("cloudtrail", "get-trail-status", "--name", TRAIL).stdout)
    assert status["IsLogging"] is False and "LatestDigestDeliveryTime" in status
    keys = json.loads(served.aws("cloudtrail", "list-public-keys").stdout)["PublicKeyList"]
    assert keys and keys[0]["Fingerprint"]
    found = json.loads(served.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                                  "AttributeKey=EventName,AttributeValue=Op3").stdout)["Events"]
    assert len(found) == 5 and all(json.loads(e["CloudTrailEvent"])["eventName"] == "Op3" for e in found)
    missing = served.aws("cloudtrail", "get-trail-status", "--name", "nope")
    assert missing.returncode != 0 and "TrailNotFoundException" in missing.stderr


def test_s3_ls_and_cp_of_a_delivered_log(served: Served, tmp_path: Path) -> None:
    listing = served.aws("s3", "ls", f"s3://{BUCKET}/", "--recursive")
    assert listing.returncode == 0, listing.stderr
    key = served.files("log")[0].relative_to(served.dest).as_posix()
    assert key in listing.stdout
    copied = tmp_path / "copy.json.gz"
    done = served.aws("s3", "cp", f"s3://{BUCKET}/{key}", str(copied))
    assert done.returncode == 0, done.stderr
    assert copied.read_bytes() == served.files("log")[0].read_bytes()
    refused = served.aws("s3", "rm", f"s3://{BUCKET}/{key}")
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr
    assert served.files("log")[0].exists()


def test_boto3_trail_life_cycle_selectors_and_tags(served: Served, tmp_path: Path) -> None:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("cloudtrail", endpoint_url=served.server.endpoint, region_name="us-east-1",
                          aws_access_key_id=served.server.creds["rootAccessKeyId"],
                          aws_secret_access_key=served.server.creds["rootSecretAccessKey"])
    created = client.create_trail(Name="boto-trail", S3BucketName="boto-bucket", EnableLogFileValidation=True,
                                  TagsList=[{"Key": "team", "Value": "audit"}])
    arn = created["TrailARN"]
    try:
        assert created["LogFileValidationEnabled"] is True
        client.add_tags(ResourceId=arn, TagsList=[{"Key": "env", "Value": "prod"}])
        client.remove_tags(ResourceId=arn, TagsList=[{"Key": "team"}])
        [tags] = client.list_tags(ResourceIdList=[arn])["ResourceTagList"]
        assert tags["TagsList"] == [{"Key": "env", "Value": "prod"}]
        basic = client.get_event_selectors(TrailName="boto-trail")
        assert basic["EventSelectors"][0]["ReadWriteType"] == "All"
        client.put_event_selectors(TrailName="boto-trail", AdvancedEventSelectors=[
            {"Name": "writes", "FieldSelectors": [{"Field": "readOnly", "Equals": ["false"]}]}])
        advanced = client.get_event_selectors(TrailName="boto-trail")["AdvancedEventSelectors"]
        assert advanced[0]["FieldSelectors"][0]["Field"] == "readOnly"
        client.start_logging(Name=arn)
        assert client.get_trail_status(Name="boto-trail")["IsLogging"] is True
        client.stop_logging(Name="boto-trail")
        with pytest.raises(ClientError) as bad:
            client.put_event_selectors(TrailName="boto-trail", EventSelectors=[{"ReadWriteType": "Sometimes"}])
        assert bad.value.response["Error"]["Code"] == "InvalidEventSelectorsException"
        with pytest.raises(ClientError) as unknown:
            client.get_trail(Name="no-such-trail")
        assert unknown.value.response["Error"]["Code"] == "TrailNotFoundException"
        with pytest.raises(ClientError) as badname:
            client.create_trail(Name="a..b", S3BucketName="boto-bucket")
        assert badname.value.response["Error"]["Code"] == "InvalidTrailNameException"
        pages = list(client.get_paginator("lookup_events").paginate(
            LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "app.example.com"}],
            PaginationConfig={"PageSize": 7}))
        events = [e["EventId"] for page in pages for e in page["Events"]]
        assert len(pages) > 1 and len(events) == len(set(events)) == 30
    finally:
        client.delete_trail(Name="boto-trail")
    assert [t["Name"] for t in client.describe_trails()["trailList"]] == [TRAIL]


def test_iam_through_the_aws_cli(served: Served) -> None:
    created = served.aws("iam", "create-user", "--user-name", "eve", "--tags", "Key=trailkeeper:role,Value=auditor")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["User"]["UserName"] == "eve"
    key = json.loads(served.aws("iam", "create-access-key", "--user-name", "eve").stdout)["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40
    users = json.loads(served.aws("iam", "list-users").stdout)["Users"]
    assert "eve" in [u["UserName"] for u in users]
    listed = json.loads(served.aws("iam", "list-access-keys", "--user-name", "eve").stdout)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    assert served.aws("iam", "update-access-key", "--user-name", "eve", "--access-key-id", key["AccessKeyId"],
                      "--status", "Inactive").returncode == 0
    conflict = served.aws("iam", "delete-user", "--user-name", "eve")
    assert conflict.returncode != 0 and "DeleteConflict" in conflict.stderr
    assert served.aws("iam", "delete-access-key", "--user-name", "eve", "--access-key-id",
                      key["AccessKeyId"]).returncode == 0
    assert served.aws("iam", "delete-user", "--user-name", "eve").returncode == 0
    lookup = json.loads(served.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                                   "AttributeKey=EventName,AttributeValue=CreateUser").stdout)["Events"]
    assert any(e["EventSource"] == "iam.amazonaws.com" for e in lookup)


def test_put_audit_events_through_boto3(served: Served) -> None:
    import base64
    import hashlib

    import boto3
    from botocore.exceptions import ClientError

    kw = {"endpoint_url": served.server.endpoint, "region_name": "us-east-1",
          "aws_access_key_id": served.server.creds["rootAccessKeyId"],
          "aws_secret_access_key": served.server.creds["rootSecretAccessKey"]}
    control, data = boto3.client("cloudtrail", **kw), boto3.client("cloudtrail-data", **kw)
    channel = control.create_channel(Name="app-events", Source="Custom",
                                     Destinations=[{"Type": "EVENT_DATA_STORE", "Location": "trailkeeper"}])["ChannelArn"]

    def event(uid: str, **extra: object) -> str:
        return json.dumps({"version": "1.0", "userIdentity": {"type": "AppUser", "principalId": "carol"},
                           "eventSource": "shop.example.com", "eventName": "Checkout", "UID": uid,
                           "eventTime": _iso(datetime.now(UTC)), **extra})

    good = event("u-1")
    checksum = base64.b64encode(hashlib.sha256(good.encode()).digest()).decode()
    answer = data.put_audit_events(channelArn=channel, auditEvents=[
        {"id": "e1", "eventData": good, "eventDataChecksum": checksum},
        {"id": "e2", "eventData": event("u-2"), "eventDataChecksum": "AAAA"},
        {"id": "e3", "eventData": "{not json"},
        {"id": "e4", "eventData": event("u-4", requestParameters={"blob": "x" * 300_000})},
    ])
    assert [s["id"] for s in answer["successful"]] == ["e1"]
    failed = {f["id"]: f["errorCode"] for f in answer["failed"]}
    assert failed == {"e2": "InvalidChecksum", "e3": "InvalidData", "e4": "FieldTooLong"}
    again = data.put_audit_events(channelArn=channel, auditEvents=[{"id": "e1", "eventData": good}])
    assert again["successful"][0]["eventID"] == answer["successful"][0]["eventID"]  # a retry stores nothing
    with pytest.raises(ClientError) as duplicate:
        data.put_audit_events(channelArn=channel, auditEvents=[{"id": "d", "eventData": good},
                                                               {"id": "d", "eventData": good}])
    assert duplicate.value.response["Error"]["Code"] == "DuplicatedAuditEventId"
    with pytest.raises(ClientError) as unknown:
        data.put_audit_events(channelArn=channel.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000",
                              auditEvents=[{"id": "x", "eventData": good}])
    assert unknown.value.response["Error"]["Code"] == "ChannelNotFound"
    event_id = answer["successful"][0]["eventID"]
    found = json.loads(served.aws("cloudtrail", "lookup-events", "--lookup-attributes",
                                  f"AttributeKey=EventId,AttributeValue={event_id}").stdout)["Events"]
    assert json.loads(found[0]["CloudTrailEvent"])["eventCategory"] == "ActivityAuditLog"
    control.delete_channel(Channel=channel)


def _as(served: Served, key: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": served.server.endpoint, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    return subprocess.run([AWS, *args], capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


def _user_key(served: Served, name: str, role: str) -> dict[str, str]:
    served.server.cli_json("user", "create", name, "--role", role)
    key: dict[str, str] = served.server.cli_json("key", "create", name)
    return key


def test_auditor_reads_and_validates_but_cannot_stop_a_trail(served: Served) -> None:
    key = _user_key(served, "olivia", "auditor")
    assert _as(served, key, "cloudtrail", "describe-trails").returncode == 0
    assert _as(served, key, "s3", "ls", f"s3://{BUCKET}/", "--recursive").returncode == 0
    validated = _as(served, key, "cloudtrail", "validate-logs", "--trail-arn", served.arn,
                    "--start-time", _iso(served.start), "--end-time", _iso(served.end))
    assert validated.returncode == 0, validated.stderr
    refused = _as(served, key, "cloudtrail", "stop-logging", "--name", TRAIL)
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr
    denials = [json.loads(e["CloudTrailEvent"]) for e in json.loads(served.aws(
        "cloudtrail", "lookup-events", "--lookup-attributes", "AttributeKey=Username,AttributeValue=olivia").stdout)["Events"]]
    assert any(d["eventName"] == "StopLogging" and d.get("errorCode") == "AccessDenied" for d in denials)
    reads = [d for d in denials if d["eventSource"] == "s3.amazonaws.com"]
    assert reads, "reads of the audit logs were not recorded"


def test_writer_ingests_but_cannot_read_logs(served: Served) -> None:
    key = _user_key(served, "walter", "writer")
    writer = served.server.client(key["AccessKeyId"], key["SecretAccessKey"])
    assert writer.put_events([app_event(0, datetime.now(UTC), "WriterEvent")])
    key_name = served.files("log")[0].relative_to(served.dest).as_posix()
    refused = _as(served, key, "s3", "cp", f"s3://{BUCKET}/{key_name}", "/dev/null")
    assert refused.returncode != 0 and ("AccessDenied" in refused.stderr or "403" in refused.stderr)
    lookup = _as(served, key, "cloudtrail", "lookup-events")
    assert lookup.returncode != 0 and "AccessDenied" in lookup.stderr
    denials = [json.loads(e["CloudTrailEvent"]) for e in json.loads(served.aws(
        "cloudtrail", "lookup-events", "--lookup-attributes", "AttributeKey=Username,AttributeValue=walter").stdout)["Events"]]
    refused_ops = {d["eventName"] for d in denials if d.get("errorCode") == "AccessDenied"}
    assert {"LookupEvents"} <= refused_ops and refused_ops & {"GetObject", "HeadObject"}
