"""trailkeeper: a self-hosted, tamper-evident, CloudTrail-compatible audit trail."""

__version__ = "0.1.0"
