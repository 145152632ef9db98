"""The services trailkeeper answers, assembled into the registry the server routes by.

S3 (REST-XML, the read-only gateway over trail destinations) and CloudTrail Data (REST-JSON,
`PutAuditEvents`) are routed by method and path inside their adapters (`api/s3.py`,
`lake.py`); their specs name how they are signed and under which event source their calls are
recorded.
"""

from __future__ import annotations

from trailkeeper import audit
from trailkeeper.api.alerts import ALERTS
from trailkeeper.api.cloudwatch import CLOUDWATCH
from trailkeeper.api.events import EVENTS
from trailkeeper.api.kms import KMS
from trailkeeper.api.logs import LOGS
from trailkeeper.api.operations import CLOUDTRAIL, IAM, TRAILKEEPER
from trailkeeper.api.registry import Registry, ServiceSpec
from trailkeeper.api.sns import SNS

S3: ServiceSpec[None] = ServiceSpec(name="s3", title="S3", signing_name="s3", protocol="rest-xml", event_source=audit.S3_SOURCE,
                 api_version="2006-03-01")
CLOUDTRAIL_DATA: ServiceSpec[None] = ServiceSpec(name="cloudtrail-data", title="CloudTrail Data", signing_name="cloudtrail-data",
                              protocol="rest-json", event_source=audit.CLOUDTRAIL_DATA_SOURCE,
                              api_version="2021-08-11")

DEFAULT_REGISTRY = Registry([CLOUDTRAIL, IAM, KMS, TRAILKEEPER, S3, CLOUDTRAIL_DATA, LOGS, CLOUDWATCH, SNS, EVENTS, ALERTS])
