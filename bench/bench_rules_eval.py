"""Rule evaluation on one core (issue #12): every event offered to the default bus's rules and
to the Sigma detections, as the `event-rules` consumer does on the acknowledgement path.

    .venv/bin/python -m bench.bench_rules_eval --events 200000

Goals: with the 57 shipped SigmaHQ rules plus 100 event rules, >= 50,000 events/s; with 1,000
event rules, the figure drops by less than half.

The records are the public samples in ../shared/data/cloudtrail-samples (Stratus Red Team and
TrailDiscover) cycled to --events, each with its own eventID. The 100 event rules are the kinds
people write: one or a few event names (70), a service's writes (`source` plus `readOnly`,
10), a user type and an action (10), and 10 that pin neither field, so the index cannot skip
them (a prefix on eventName, an error-code `exists`, a CIDR on the source address, an
`anything-but` region...). The 1,000-rule set is the same 100 plus 900 rules pinning other
event names or sources: the common case the index is for (docs/event-rules.md). Also measured
in the same run: the same rules tried one by one on every event (the reference without the
index) and the ratio; matches must be equal.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import orjson

from trailkeeper.rules import eventpattern
from trailkeeper.rules.bus import RoutedRule, Routing
from trailkeeper.rules.envelope import RuleState, envelope, offered
from trailkeeper.rules.store import EventRule
from trailkeeper.rules.targets import Target

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "cloudtrail-samples"
GOAL = 50_000
NAMES = ["CreateUser", "DeleteUser", "CreateAccessKey", "DeleteBucket", "PutBucketAcl", "PutBucketPolicy",
         "RunInstances", "TerminateInstances", "CreateSnapshot", "ModifySnapshotAttribute", "GetSecretValue",
         "PutParameter", "CreateFunction20150331", "UpdateFunctionCode20150331v2", "AssumeRole",
         "GetFederationToken", "CreateLoginProfile", "UpdateLoginProfile", "DeactivateMFADevice", "DeleteFlowLogs",
         "DisableEbsEncryptionByDefault", "StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors",
         "ScheduleKeyDeletion", "DisableKey", "AuthorizeSecurityGroupIngress", "CreateNetworkAclEntry",
         "CreateRoute", "AttachUserPolicy", "AttachRolePolicy", "PutUserPolicy", "PutRolePolicy",
         "CreatePolicyVersion", "ConsoleLogin", "LeaveOrganization", "DeleteDetector", "SendCommand",
         "ModifyImageAttribute"]
SOURCES = ["s3", "ec2", "iam", "lambda", "secretsmanager", "ssm", "sts", "rds", "kms", "cloudtrail"]
UNPINNED = [
    {"detail": {"eventName": [{"prefix": "Delete"}], "readOnly": [False]}},
    {"detail": {"errorCode": [{"exists": True}], "userIdentity": {"type": ["Root"]}}},
    {"detail": {"sourceIPAddress": [{"cidr": "203.0.113.0/24"}]}},
    {"detail": {"awsRegion": [{"anything-but": ["us-east-1", "eu-west-1"]}], "readOnly": [False]}},
    {"detail": {"userAgent": [{"wildcard": "*Boto3*"}], "errorCode": [{"prefix": "AccessDenied"}]}},
    {"detail": {"userIdentity": {"arn": [{"suffix": ":root"}]}}},
    {"detail-type": ["AWS Console Sign In via CloudTrail"], "detail": {"responseElements": {"ConsoleLogin":
                                                                                            ["Failure"]}}},
    {"detail": {"requestParameters": {"bucketName": [{"prefix": "prod-"}]}}},
    {"$or": [{"detail": {"errorCode": ["UnauthorizedOperation"]}}, {"detail": {"errorCode": ["AccessDenied"]}}]},
    {"detail": {"eventName": [{"equals-ignore-case": "consolelogin"}], "additionalEventData": {"MFAUsed": ["No"]}}},
]


def records() -> list[dict[str, Any]]:
    files = sorted((SAMPLES / "stratus-red-team").glob("*.json"))
    files += sorted((SAMPLES / "traildiscover" / "logExamples").glob("*.json.cloudtrail"))
    out: list[dict[str, Any]] = []
    for path in files:
        data = orjson.loads(path.read_bytes())
        out.extend(data if isinstance(data, list) else [data])
    return out


def events(count: int) -> list[dict[str, Any]]:
    return [{**record, "eventID": f"bench-{i}"} for i, record in enumerate(islice(cycle(records()), count))]


def patterns(total: int) -> list[dict[str, Any]]:
    base: list[dict[str, Any]] = []
    for i in range(70):
        names = [NAMES[(i + k) % len(NAMES)] for k in range(1 + i % 3)]
        base.append({"detail": {"eventName": names}})
    base += [{"source": [f"aws.{s}"], "detail": {"readOnly": [False]}} for s in SOURCES]
    base += [{"detail": {"userIdentity": {"type": [kind]}, "eventName": [NAMES[i]]}}
             for i, kind in enumerate(["Root", "IAMUser", "AssumedRole", "FederatedUser", "AWSService"] * 2)]
    base += UNPINNED
    extra = [{"detail": {"eventName": [f"Custom{i}Action"]}} if i % 3 else {"source": [f"aws.custom{i}"]}
             for i in range(total - len(base))]
    return base + extra


def routing(pattern_docs: list[dict[str, Any]]) -> Routing:
    target = (Target("t", "arn:aws:sns:us-east-1:123456789012:bench"),)
    return Routing([RoutedRule(EventRule(f"r{i:04d}", json.dumps(p), RuleState.ENABLED, "", {}, "", 0.0), "arn",
                               eventpattern.parse(json.dumps(p)), target) for i, p in enumerate(pattern_docs)])


def plain(rules: Routing) -> Callable[[dict[str, Any], dict[str, Any]], int]:
    def count(record: dict[str, Any], event: dict[str, Any]) -> int:
        return sum(1 for r in rules.rules if offered(record, r.rule.state) and r.pattern.matches(event))
    return count


Detector = Callable[[dict[str, Any]], int]


def sigma_detector() -> tuple[Detector, Detector, int]:
    """The shipped Sigma rules: indexed, and tried one by one; how many loaded."""
    from trailkeeper.rules.sigma import load_directory, shipped_directory

    loaded = load_directory(shipped_directory())
    return (lambda record: len(loaded.matching(record)),
            lambda record: sum(1 for rule in loaded.rules if rule.matches(record)), len(loaded.rules))


def run(batch: list[dict[str, Any]], match: Callable[[dict[str, Any], dict[str, Any]], int], detect: Detector) -> \
        tuple[float, int]:
    started = time.perf_counter()
    hits = 0
    for record in batch:
        hits += match(record, envelope(record, record["eventID"])) + detect(record)
    return len(batch) / (time.perf_counter() - started), hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batch = events(args.events)
    detect, detect_plain, sigma_count = sigma_detector()
    results: dict[int, float] = {}
    for total in (100, 1000):
        rules = routing(patterns(total))
        indexed = lambda record, event, rules=rules: len(rules.matching(record, event))  # noqa: E731
        best = best_plain = 0.0
        for round_ in range(1, args.rounds + 1):
            rate, hits = run(batch, indexed, detect)
            rate_plain, hits_plain = run(batch, plain(rules), detect_plain)
            assert hits == hits_plain, (hits, hits_plain)
            best, best_plain = max(best, rate), max(best_plain, rate_plain)
            print(f"{sigma_count} Sigma + {total} event rules, round {round_}: indexed {rate:,.0f} ev/s, "
                  f"every rule {rate_plain:,.0f} ev/s, {hits:,} matches", flush=True)
        results[total] = best
        print(f"{sigma_count} Sigma + {total} event rules: best indexed {best:,.0f} ev/s, every rule "
              f"{best_plain:,.0f} ev/s, ratio {best / best_plain:.1f}x", flush=True)
    verdict = "meets" if results[100] >= GOAL else "MISSES"
    drop = 1 - results[1000] / results[100]
    print(f"100 event rules: {results[100]:,.0f} ev/s ({verdict} the {GOAL:,} goal); 1,000 event rules: "
          f"{results[1000]:,.0f} ev/s, a drop of {drop:.0%} ({'meets' if drop < 0.5 else 'MISSES'} < 50 %)")


if __name__ == "__main__":
    main()
