"""The `trailkeeper` command: a thin layer over trailkeeper.client and the server/offline
modules, one module per command group (setup, events, identities, trails, monitoring, alerting); `root` holds the
group and the shared settings, `parsing` the value parsers."""

from trailkeeper.cli import alerting, events, identities, monitoring, setup, trails
from trailkeeper.cli.parsing import load_records, parse_attribute, parse_duration, parse_time
from trailkeeper.cli.root import DEFAULT_ENDPOINT, main
from trailkeeper.config import DEFAULT_DATA_DIR

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_ENDPOINT",
    "alerting",
    "events",
    "identities",
    "load_records",
    "main",
    "monitoring",
    "parse_attribute",
    "parse_duration",
    "parse_time",
    "setup",
    "trails",
]
