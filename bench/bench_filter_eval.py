"""Metric-filter evaluation on one core: the 15 CIS filters plus 50 user filters over CloudTrail
records, as a log group applies them to each PutLogEvents batch (issue #11: ≥ 50,000 events/s).

    .venv/bin/python -m bench.bench_filter_eval --events 200000

The records are the public samples in ../shared/data/cloudtrail-samples (Stratus Red Team and
TrailDiscover, 873 records) cycled to --events, each with its own eventID. The 50 user filters
are the kinds people write: one event name, a service's writes, a user and an action, a
source-IP prefix, error-code globs (10 of them pin no exact field, so the index cannot skip
them). Prints events/s with the pattern index and with every filter tried on every event
(the reference, measured in the same run) and their ratio, and the datapoints each produced
(which must be equal).
"""

from __future__ import annotations

import argparse
import time
from itertools import cycle, islice
from pathlib import Path

import orjson

from trailkeeper.monitoring.cis import CONTROLS
from trailkeeper.monitoring.loggroups_store import MetricFilterRecord
from trailkeeper.monitoring.metricfilters import CompiledFilters, LogEvent, compile_filters

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "cloudtrail-samples"
BATCH = 500
GOAL = 50_000

USER_PATTERNS: list[str] = (
    [f'{{ $.eventName = "{name}" }}' for name in (
        "CreateUser", "DeleteUser", "CreateAccessKey", "DeleteBucket", "PutBucketAcl", "RunInstances",
        "TerminateInstances", "CreateSnapshot", "ModifySnapshotAttribute", "GetSecretValue", "PutParameter",
        "CreateFunction20150331", "UpdateFunctionCode20150331v2", "AssumeRole", "GetFederationToken",
        "CreateLoginProfile", "UpdateLoginProfile", "DeactivateMFADevice", "DeleteFlowLogs", "DisableEbsEncryptionByDefault")]
    + [f'{{ $.eventSource = "{source}" && $.readOnly IS FALSE }}' for source in (
        "s3.amazonaws.com", "ec2.amazonaws.com", "iam.amazonaws.com", "lambda.amazonaws.com",
        "secretsmanager.amazonaws.com", "ssm.amazonaws.com", "sts.amazonaws.com", "rds.amazonaws.com")]
    + [f'{{ $.userIdentity.userName = "{user}" && ($.eventName = "Delete*" || $.eventName = "Put*") }}'
       for user in ("alice", "bob", "carol", "deploy", "ci")]
    + [f'{{ $.userIdentity.type = "{kind}" && $.eventName = "{name}" }}' for kind, name in (
        ("AssumedRole", "CreateRole"), ("IAMUser", "ConsoleLogin"), ("Root", "CreateAccessKey"),
        ("FederatedUser", "GetCallerIdentity"), ("AWSService", "Decrypt"), ("AssumedRole", "PutRolePolicy"),
        ("IAMUser", "ListBuckets"))]
    + ['{ $.errorCode = "AccessDenied*" }', '{ $.errorCode = "*UnauthorizedOperation" }',
       '{ $.sourceIPAddress = "203.0.113.*" }', '{ $.sourceIPAddress = "198.51.100.*" }',
       '{ $.userAgent = "*Boto3*" && $.errorCode = "*" }', '{ $.requestParameters.bucketName = "prod-*" }',
       '{ $.responseElements.ConsoleLogin = "Failure" }', '{ $.userIdentity.arn = "*:root" }',
       '{ $.awsRegion != "us-east-1" && $.awsRegion != "eu-west-1" }', '{ $.eventType = "AwsServiceEvent" }']
)


def records() -> list[dict[str, object]]:
    files = sorted((SAMPLES / "stratus-red-team").glob("*.json"))
    files += sorted((SAMPLES / "traildiscover" / "logExamples").glob("*.json.cloudtrail"))
    out: list[dict[str, object]] = []
    for path in files:
        data = orjson.loads(path.read_bytes())
        out.extend(data if isinstance(data, list) else [data])
    return out


def messages(count: int) -> list[LogEvent]:
    base = records()
    events = []
    for i, record in enumerate(islice(cycle(base), count)):
        events.append(LogEvent(1_765_000_000_000 + i, orjson.dumps({**record, "eventID": f"bench-{i}"}).decode()))
    return events


def filter_records() -> list[MetricFilterRecord]:
    patterns = [c.pattern for c in CONTROLS] + USER_PATTERNS
    return [MetricFilterRecord("bench", f"f{i:02d}", text,
                               [{"metricName": f"m{i:02d}", "metricNamespace": "Bench", "metricValue": "1"}], False, 0)
            for i, text in enumerate(patterns)]


def run(filters: CompiledFilters, events: list[LogEvent]) -> tuple[float, int]:
    started = time.perf_counter()
    produced = 0
    for start in range(0, len(events), BATCH):
        produced += len(filters.apply(events[start:start + BATCH]))
    return len(events) / (time.perf_counter() - started), produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    events = messages(args.events)
    indexed = compile_filters(filter_records())
    assert not indexed.skipped, indexed.skipped
    plain = CompiledFilters(indexed.filters, indexed.skipped, indexed=False)
    print(f"{len(indexed)} filters ({len(CONTROLS)} CIS + {len(USER_PATTERNS)} user), "
          f"{len(events):,} events, batches of {BATCH}")
    best_indexed = best_plain = 0.0
    for round_ in range(1, args.rounds + 1):
        rate_indexed, hits_indexed = run(indexed, events)
        rate_plain, hits_plain = run(plain, events)
        assert hits_indexed == hits_plain, (hits_indexed, hits_plain)
        best_indexed, best_plain = max(best_indexed, rate_indexed), max(best_plain, rate_plain)
        print(f"round {round_}: indexed {rate_indexed:,.0f} ev/s, every filter {rate_plain:,.0f} ev/s, "
              f"{hits_indexed:,} datapoints each")
    verdict = "meets" if best_indexed >= GOAL else "MISSES"
    print(f"best: indexed {best_indexed:,.0f} ev/s ({verdict} the {GOAL:,} goal), every filter {best_plain:,.0f} ev/s, "
          f"ratio {best_indexed / best_plain:.1f}x")


if __name__ == "__main__":
    main()
