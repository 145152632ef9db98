"""Offline validator: checks a trail's digest chain and log files in an ObjectStore.

Unlike the AWS CLI's backward walk (which follows `previousDigestS3Object` and so
cannot see deleted newest digests, collapses consecutive deletions and never
lists log folders), this validator derives the digest windows that *must* exist
from the trail's logging history, lists what does exist, and reports every
difference with a reason code (integrity-and-compliance.md §3, §4). It never
stops at the first problem.
"""


from trailkeeper.validate.report import (
    BACKFILL_TIMESTAMP_META,
    DEFAULT_DELIVERY_ALLOWANCE,
    DEFAULT_DIGEST_INTERVAL,
    STATE_FORMAT,
    Code,
    GapNotice,
    Kind,
    Mode,
    PendingNotice,
    ReportEntry,
    Status,
    TrailInfo,
    ValidationReport,
    VerifiedHead,
)
from trailkeeper.validate.run import merge_reports, validate_trail
from trailkeeper.validate.state import StateConflictError, VerifiedState
from trailkeeper.validate.windows import Window, expected_windows

__all__ = [
    "BACKFILL_TIMESTAMP_META",
    "DEFAULT_DELIVERY_ALLOWANCE",
    "DEFAULT_DIGEST_INTERVAL",
    "STATE_FORMAT",
    "Code",
    "GapNotice",
    "Kind",
    "Mode",
    "PendingNotice",
    "ReportEntry",
    "StateConflictError",
    "Status",
    "TrailInfo",
    "ValidationReport",
    "VerifiedHead",
    "VerifiedState",
    "Window",
    "expected_windows",
    "merge_reports",
    "validate_trail",
]
