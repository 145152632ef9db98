"""The Object Lock conformance probe (integrity-and-compliance.md §5.3).

A store is called WORM only after it has been seen to refuse what WORM forbids: deleting a
locked version, shortening its retention, deleting a version under legal hold or under the
bucket's default retention, and overwriting a key with If-None-Match. The probe writes only
under `trailkeeper-probe/<uuid>/`. Locked probe versions cannot be removed (that is the
point); they carry retain-until = now + 1 day, so they linger for a day. The objects of the
legal-hold, default-retention and create-only steps carry no explicit retention: they are
removed at the end unless the bucket's default retention holds them (then for that period).

Step 6 needs a bucket default retention. Without one it is reported as not run and not
required: trailkeeper's lock policy puts an explicit retention on every file it writes.
Step 7 (GOVERNANCE can be bypassed) is informational and never required.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from trailkeeper.errors import StorageError
from trailkeeper.storage.s3 import S3Client, error_code

PROBE_ROOT = "trailkeeper-probe"
LOCK_PERIOD = timedelta(days=1)
SHORTENED_PERIOD = timedelta(hours=1)
BODY = b"trailkeeper object lock probe\n"


@dataclass(frozen=True)
class ProbeStep:
    name: str
    passed: bool
    detail: str
    required: bool = True


@dataclass(frozen=True)
class ProbeReport:
    bucket: str
    prefix: str
    steps: list[ProbeStep]
    worm: bool
    # "key version-id: why" for probe versions the store (rightly) refused to remove.
    leftovers: list[str] = field(default_factory=list)


class _StepFailed(Exception):
    """A step's expectation was not met; the message is the step's detail."""


@dataclass
class _Probe:
    client: S3Client
    bucket: str
    now: datetime
    prefix: str
    # (key, version id or "" in an unversioned bucket), for the cleanup.
    created: list[tuple[str, str]] = field(default_factory=list)
    default_retention: dict[str, Any] | None = None

    # -- S3 calls -------------------------------------------------------

    def put(self, name: str, **extra: Any) -> tuple[str, str]:
        key = self.prefix + name
        version = self.client.put_object(Bucket=self.bucket, Key=key, Body=BODY, **extra).get(
            "VersionId"
        )
        self.created.append((key, version or ""))
        if not version:
            raise _StepFailed(
                f"PutObject of {key} returned no VersionId: the bucket is not versioned"
            )
        return key, version

    def put_locked(self, name: str) -> tuple[str, str]:
        return self.put(
            name, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=self.now + LOCK_PERIOD
        )

    def refused(self, call: Callable[[], Any]) -> str:
        """Run `call`, expecting the store to refuse; returns 'HTTP status code'."""
        try:
            call()
        except ClientError as e:
            code, status = error_code(e)
            return f"HTTP {status} {code}"
        raise _StepFailed("the store allowed it")

    def readable(self, key: str, version: str) -> None:
        which = {"VersionId": version} if version else {}
        body = self.client.get_object(Bucket=self.bucket, Key=key, **which)["Body"].read()
        if body != BODY:
            raise _StepFailed(f"version {version} of {key} no longer returns the probe bytes")

    def delete_version(self, key: str, version: str, **extra: Any) -> Any:
        which = {"VersionId": version} if version else {}
        return self.client.delete_object(Bucket=self.bucket, Key=key, **which, **extra)

    # -- steps ----------------------------------------------------------

    def versioning(self) -> str:
        status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if status != "Enabled":
            raise _StepFailed(f"versioning is {status or 'off'}, not Enabled")
        config = self.client.get_object_lock_configuration(Bucket=self.bucket)[
            "ObjectLockConfiguration"
        ]
        if config.get("ObjectLockEnabled") != "Enabled":
            raise _StepFailed("Object Lock is not enabled on the bucket")
        self.default_retention = config.get("Rule", {}).get("DefaultRetention")
        return f"versioning Enabled, Object Lock Enabled, default retention {self.default_retention or 'none'}"

    def locked_delete(self) -> str:
        key, version = self.put_locked("locked")
        how = self.refused(lambda: self.delete_version(key, version))
        self.readable(key, version)
        return (
            f"DeleteObject(VersionId) of a COMPLIANCE version refused ({how}); bytes still readable"
        )

    def shorten_retention(self) -> str:
        key, version = self.put_locked("shorten")
        earlier = self.now + SHORTENED_PERIOD
        how = self.refused(
            lambda: self.client.put_object_retention(
                Bucket=self.bucket,
                Key=key,
                VersionId=version,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": earlier},
            )
        )
        kept = self.client.get_object_retention(Bucket=self.bucket, Key=key, VersionId=version)
        until = kept["Retention"]["RetainUntilDate"]
        if until <= earlier:
            raise _StepFailed(f"the call failed ({how}) but retention now ends {until.isoformat()}")
        return f"shortening COMPLIANCE retention refused ({how}); retain-until still {until.isoformat()}"

    def delete_marker(self) -> str:
        key, version = self.put_locked("marker")
        deleted = self.client.delete_object(Bucket=self.bucket, Key=key)
        marker = deleted.get("VersionId")
        if not deleted.get("DeleteMarker") or not marker:
            raise _StepFailed("DeleteObject without VersionId did not answer with a delete marker")
        self.created.append((key, marker))
        listed = self.client.list_object_versions(Bucket=self.bucket, Prefix=key)
        versions = {v["VersionId"] for v in listed.get("Versions", []) if v["Key"] == key}
        markers = {m["VersionId"] for m in listed.get("DeleteMarkers", []) if m["Key"] == key}
        if marker not in markers or version not in versions:
            raise _StepFailed(f"ListObjectVersions shows versions {versions} and markers {markers}")
        self.readable(key, version)
        return "DeleteObject without VersionId added a delete marker; the locked version is listed and readable"

    def legal_hold(self) -> str:
        key, version = self.put("hold")
        self.client.put_object_legal_hold(
            Bucket=self.bucket, Key=key, VersionId=version, LegalHold={"Status": "ON"}
        )
        how = self.refused(lambda: self.delete_version(key, version))
        self.readable(key, version)
        self.client.put_object_legal_hold(
            Bucket=self.bucket, Key=key, VersionId=version, LegalHold={"Status": "OFF"}
        )
        also = " (the bucket default retention applies too)" if self.default_retention else ""
        return f"deleting a version under legal hold refused ({how}){also}"

    def default_retention_step(self) -> str:
        key, version = self.put("default")
        how = self.refused(lambda: self.delete_version(key, version))
        self.readable(key, version)
        return (
            f"deleting a version under default retention {self.default_retention} refused ({how})"
        )

    def governance(self) -> str:
        key, version = self.put(
            "governance",
            ObjectLockMode="GOVERNANCE",
            ObjectLockRetainUntilDate=self.now + LOCK_PERIOD,
        )
        how = self.refused(lambda: self.delete_version(key, version))
        try:
            self.delete_version(key, version, BypassGovernanceRetention=True)
        except ClientError as e:
            code, status = error_code(e)
            raise _StepFailed(
                f"delete without bypass refused ({how}); with bypass also refused (HTTP {status} {code})"
            ) from e
        return (
            f"delete without bypass refused ({how}); with x-amz-bypass-governance-retention "
            "the version was deleted: GOVERNANCE is not WORM"
        )

    def create_only(self) -> str:
        # Create-only writes matter with or without Object Lock, so this step needs neither
        # versioning nor a lock: its object is removed again unless a default retention holds it.
        key = self.prefix + "create-only"
        first = self.client.put_object(Bucket=self.bucket, Key=key, Body=BODY, IfNoneMatch="*")
        version = str(first.get("VersionId") or "")
        self.created.append((key, version))
        how = self.refused(
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=key, Body=b"overwrite", IfNoneMatch="*"
            )
        )
        if not how.startswith("HTTP 412"):
            raise _StepFailed(f"overwrite refused with {how}, expected 412 PreconditionFailed")
        self.readable(key, version)
        return f"PutObject If-None-Match: * on an existing key refused ({how})"

    # -- cleanup --------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Delete every probe version and marker the store lets go; list the rest (locked)."""
        leftovers: list[str] = []
        for key, version in reversed(self.created):
            try:
                self.delete_version(key, version)
            except ClientError as e:
                code, status = error_code(e)
                if status != 404:
                    leftovers.append(f"{key} {version}: HTTP {status} {code}")
        return leftovers


def run_probe(client: S3Client, bucket: str, now: datetime) -> ProbeReport:
    """Run §5.3 steps 1-8 against `bucket`; `worm` is True only if every required step passed.

    Raises StorageError if the endpoint cannot be reached at all (no conclusion possible)."""
    probe = _Probe(client, bucket, now, f"{PROBE_ROOT}/{uuid.uuid4()}/")
    steps = [_run("1 versioning Enabled and Object Lock on", probe.versioning)]
    steps.append(_run("2 locked version: delete refused", probe.locked_delete))
    steps.append(_run("3 locked version: shorter retention refused", probe.shorten_retention))
    steps.append(_run("4 delete without version: delete marker only", probe.delete_marker))
    steps.append(_run("5 legal hold: delete refused", probe.legal_hold))
    steps.append(_default_retention(probe))
    steps.append(
        _run("7 GOVERNANCE: bypass allowed (informational)", probe.governance, required=False)
    )
    steps.append(_run("8 If-None-Match overwrite: 412", probe.create_only))
    leftovers = _guard(probe.cleanup)
    worm = all(step.passed for step in steps if step.required)
    return ProbeReport(bucket, probe.prefix, steps, worm, leftovers)


def _default_retention(probe: _Probe) -> ProbeStep:
    name = "6 default retention: delete refused"
    if not probe.default_retention:
        return ProbeStep(
            name,
            False,
            "not run: the bucket has no default retention rule (trailkeeper sets retention on "
            "every file; add a COMPLIANCE default with put-object-lock-configuration to test it)",
            required=False,
        )
    return _run(name, probe.default_retention_step)


def _run(name: str, step: Callable[[], str], required: bool = True) -> ProbeStep:
    try:
        return ProbeStep(name, True, _guard(step), required)
    except _StepFailed as e:
        return ProbeStep(name, False, str(e), required)
    except ClientError as e:
        code, status = error_code(e)
        message = e.response.get("Error", {}).get("Message", "")
        return ProbeStep(
            name, False, f"unexpected S3 error HTTP {status} {code}: {message}", required
        )


def _guard(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except BotoCoreError as e:
        raise StorageError(
            f"the Object Lock probe cannot reach the S3 endpoint: {type(e).__name__}: {e}",
            "check that the object store is running and [s3] endpoint_url is right",
        ) from e
