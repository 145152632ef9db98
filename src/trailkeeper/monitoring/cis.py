"""The 15 CIS AWS Foundations Benchmark monitoring controls, as data (spec monitoring.md §5).

Each control is a metric filter plus an alarm. Compliance scanners (Security Hub, prowler)
judge the filter by its *text*, so trailkeeper installs the exact published text: Security
Hub's for CloudWatch.1-14, the CIS 1.4 text for 4.15 (Security Hub has no control for it).
Other published spellings of the same control are recorded as accepted variants.
`text_matches` is the text check; behaviour over real events is tested separately.
docs/filter-patterns.md explains each choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from trailkeeper.monitoring.filterpattern import FilterPatternError, parse


@dataclass(frozen=True)
class CisControl:
    """One monitoring control. `cis_number` is the same from CIS v1.4 through v5.0."""

    security_hub_id: str | None  # "CloudWatch.N"; None for 4.15
    cis_v1_2: str | None  # "3.N"; None for 4.15
    cis_number: str  # "4.N"
    topic: str
    filter_name: str  # also the metric name
    pattern: str  # the text trailkeeper installs
    variants: tuple[str, ...] = ()  # other published texts text_matches accepts

    @property
    def metric_name(self) -> str:
        return self.filter_name

    @property
    def accepted_texts(self) -> tuple[str, ...]:
        return (self.pattern, *self.variants)


@dataclass(frozen=True)
class AlarmDefaults:
    """CIS remediation settings for every control's metric filter and alarm.

    CIS leaves TreatMissingData at AWS's default ("missing"); trailkeeper uses notBreaching
    because a minute without matching events is a count of zero, not an unknown.
    """

    namespace: str = "CISBenchmark"
    metric_value: str = "1"
    statistic: str = "Sum"
    period: int = 300
    threshold: float = 1.0
    comparison_operator: str = "GreaterThanOrEqualToThreshold"
    evaluation_periods: int = 1
    treat_missing_data: str = "notBreaching"


ALARM_DEFAULTS = AlarmDefaults()

# -- texts, byte-exact as published (tests compare them with the spec) ------------------------

_ROOT_USAGE = (
    '{$.userIdentity.type="Root" && $.userIdentity.invokedBy NOT EXISTS && '
    '$.eventType !="AwsServiceEvent"}'
)
CIS_1_4_ROOT_USAGE = (
    '{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && '
    '$.eventType != "AwsServiceEvent" }'
)
_UNAUTHORIZED_API_CALLS = (
    '{($.errorCode="*UnauthorizedOperation") || ($.errorCode="AccessDenied*")}'
)
# Known bad: the two != clauses are OR-ed in, so nearly every event matches.
# A regression fixture only; trailkeeper never installs it.
CIS_1_4_UNAUTHORIZED_ALWAYS_TRUE = (
    '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") || '
    '($.sourceIPAddress!="delivery.logs.amazonaws.com") || ($.eventName!="HeadBucket") }'
)
# prowler's copy of CIS 5.0 (quotes stripped). && binds tighter than ||, so it reads
# A || (B && C && D): the same events as the Security Hub text on the public corpora.
CIS_5_0_UNAUTHORIZED_API_CALLS = (
    "{ ($.errorCode =*UnauthorizedOperation) || ($.errorCode =AccessDenied*) && "
    "($.sourceIPAddress!=delivery.logs.amazonaws.com) && ($.eventName!=HeadBucket) }"
)
_CONSOLE_SIGNIN_WITHOUT_MFA = (
    '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && '
    '($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }'
)
CIS_1_2_CONSOLE_SIGNIN_WITHOUT_MFA = (
    '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }'
)
_IAM_POLICY_CHANGES = (
    "{($.eventName=DeleteGroupPolicy) || ($.eventName=DeleteRolePolicy) || "
    "($.eventName=DeleteUserPolicy) || ($.eventName=PutGroupPolicy) || "
    "($.eventName=PutRolePolicy) || ($.eventName=PutUserPolicy) || "
    "($.eventName=CreatePolicy) || ($.eventName=DeletePolicy) || "
    "($.eventName=CreatePolicyVersion) || ($.eventName=DeletePolicyVersion) || "
    "($.eventName=AttachRolePolicy) || ($.eventName=DetachRolePolicy) || "
    "($.eventName=AttachUserPolicy) || ($.eventName=DetachUserPolicy) || "
    "($.eventName=AttachGroupPolicy) || ($.eventName=DetachGroupPolicy)}"
)
_CLOUDTRAIL_CHANGES = (
    "{($.eventName=CreateTrail) || ($.eventName=UpdateTrail) || "
    "($.eventName=DeleteTrail) || ($.eventName=StartLogging) || "
    "($.eventName=StopLogging)}"
)
_CONSOLE_AUTH_FAILURES = '{($.eventName=ConsoleLogin) && ($.errorMessage="Failed authentication")}'
_CMK_DISABLE_OR_DELETION = (
    "{($.eventSource=kms.amazonaws.com) && (($.eventName=DisableKey) || "
    "($.eventName=ScheduleKeyDeletion))}"
)
_S3_BUCKET_POLICY_CHANGES = (
    "{($.eventSource=s3.amazonaws.com) && (($.eventName=PutBucketAcl) || "
    "($.eventName=PutBucketPolicy) || ($.eventName=PutBucketCors) || "
    "($.eventName=PutBucketLifecycle) || ($.eventName=PutBucketReplication) || "
    "($.eventName=DeleteBucketPolicy) || ($.eventName=DeleteBucketCors) || "
    "($.eventName=DeleteBucketLifecycle) || ($.eventName=DeleteBucketReplication))}"
)
_AWS_CONFIG_CHANGES = (
    "{($.eventSource=config.amazonaws.com) && "
    "(($.eventName=StopConfigurationRecorder) || ($.eventName=DeleteDeliveryChannel) || "
    "($.eventName=PutDeliveryChannel) || ($.eventName=PutConfigurationRecorder))}"
)
_SECURITY_GROUP_CHANGES = (
    "{($.eventName=AuthorizeSecurityGroupIngress) || "
    "($.eventName=AuthorizeSecurityGroupEgress) || "
    "($.eventName=RevokeSecurityGroupIngress) || "
    "($.eventName=RevokeSecurityGroupEgress) || ($.eventName=CreateSecurityGroup) || "
    "($.eventName=DeleteSecurityGroup)}"
)
_NACL_CHANGES = (
    "{($.eventName=CreateNetworkAcl) || ($.eventName=CreateNetworkAclEntry) || "
    "($.eventName=DeleteNetworkAcl) || ($.eventName=DeleteNetworkAclEntry) || "
    "($.eventName=ReplaceNetworkAclEntry) || ($.eventName=ReplaceNetworkAclAssociation)}"
)
_NETWORK_GATEWAY_CHANGES = (
    "{($.eventName=CreateCustomerGateway) || ($.eventName=DeleteCustomerGateway) || "
    "($.eventName=AttachInternetGateway) || ($.eventName=CreateInternetGateway) || "
    "($.eventName=DeleteInternetGateway) || ($.eventName=DetachInternetGateway)}"
)
_ROUTE_TABLE_CHANGES = (
    "{($.eventName=CreateRoute) || ($.eventName=CreateRouteTable) || "
    "($.eventName=ReplaceRoute) || ($.eventName=ReplaceRouteTableAssociation) || "
    "($.eventName=DeleteRouteTable) || ($.eventName=DeleteRoute) || "
    "($.eventName=DisassociateRouteTable)}"
)
_VPC_CHANGES = (
    "{($.eventName=CreateVpc) || ($.eventName=DeleteVpc) || "
    "($.eventName=ModifyVpcAttribute) || ($.eventName=AcceptVpcPeeringConnection) || "
    "($.eventName=CreateVpcPeeringConnection) || "
    "($.eventName=DeleteVpcPeeringConnection) || "
    "($.eventName=RejectVpcPeeringConnection) || ($.eventName=AttachClassicLinkVpc) || "
    "($.eventName=DetachClassicLinkVpc) || ($.eventName=DisableVpcClassicLink) || "
    "($.eventName=EnableVpcClassicLink)}"
)
_ORGANIZATIONS_CHANGES = (
    "{ ($.eventSource = organizations.amazonaws.com) && "
    '(($.eventName = "AcceptHandshake") || ($.eventName = "AttachPolicy") || '
    '($.eventName = "CreateAccount") || ($.eventName = "CreateOrganizationalUnit") || '
    '($.eventName = "CreatePolicy") || ($.eventName = "DeclineHandshake") || '
    '($.eventName = "DeleteOrganization") || '
    '($.eventName = "DeleteOrganizationalUnit") || ($.eventName = "DeletePolicy") || '
    '($.eventName = "DetachPolicy") || ($.eventName = "DisablePolicyType") || '
    '($.eventName = "EnablePolicyType") || '
    '($.eventName = "InviteAccountToOrganization") || '
    '($.eventName = "LeaveOrganization") || ($.eventName = "MoveAccount") || '
    '($.eventName = "RemoveAccountFromOrganization") || '
    '($.eventName = "UpdatePolicy") || ($.eventName = "UpdateOrganizationalUnit")) }'
)

# CIS 5.0 adds ModifySecurityGroupRules (an API from 2021 the older text misses). Security Hub
# fails CloudWatch.10 when terms are added, so this is an accepted variant, not the default.
CIS_5_0_SECURITY_GROUP_CHANGES = (
    _SECURITY_GROUP_CHANGES[:-1] + " || ($.eventName = ModifySecurityGroupRules)}"
)

CONTROLS: tuple[CisControl, ...] = (
    CisControl(
        "CloudWatch.1", "3.3", "4.3", "root account usage", "cis-4.3-root-usage",
        _ROOT_USAGE, (CIS_1_4_ROOT_USAGE,),
    ),
    CisControl(
        "CloudWatch.2", "3.1", "4.1", "unauthorized API calls", "cis-4.1-unauthorized-api-calls",
        _UNAUTHORIZED_API_CALLS, (CIS_5_0_UNAUTHORIZED_API_CALLS,),
    ),
    CisControl(
        "CloudWatch.3", "3.2", "4.2", "console sign-in without MFA",
        "cis-4.2-console-signin-without-mfa",
        _CONSOLE_SIGNIN_WITHOUT_MFA, (CIS_1_2_CONSOLE_SIGNIN_WITHOUT_MFA,),
    ),
    CisControl(
        "CloudWatch.4", "3.4", "4.4", "IAM policy changes", "cis-4.4-iam-policy-changes",
        _IAM_POLICY_CHANGES,
    ),
    CisControl(
        "CloudWatch.5", "3.5", "4.5", "CloudTrail configuration changes",
        "cis-4.5-cloudtrail-config-changes", _CLOUDTRAIL_CHANGES,
    ),
    CisControl(
        "CloudWatch.6", "3.6", "4.6", "console authentication failures",
        "cis-4.6-console-auth-failures", _CONSOLE_AUTH_FAILURES,
    ),
    CisControl(
        "CloudWatch.7", "3.7", "4.7", "disabling or scheduled deletion of CMKs",
        "cis-4.7-cmk-disable-or-deletion", _CMK_DISABLE_OR_DELETION,
    ),
    CisControl(
        "CloudWatch.8", "3.8", "4.8", "S3 bucket policy changes",
        "cis-4.8-s3-bucket-policy-changes", _S3_BUCKET_POLICY_CHANGES,
    ),
    CisControl(
        "CloudWatch.9", "3.9", "4.9", "AWS Config changes", "cis-4.9-aws-config-changes",
        _AWS_CONFIG_CHANGES,
    ),
    CisControl(
        "CloudWatch.10", "3.10", "4.10", "security group changes",
        "cis-4.10-security-group-changes",
        _SECURITY_GROUP_CHANGES, (CIS_5_0_SECURITY_GROUP_CHANGES,),
    ),
    CisControl(
        "CloudWatch.11", "3.11", "4.11", "NACL changes", "cis-4.11-nacl-changes", _NACL_CHANGES
    ),
    CisControl(
        "CloudWatch.12", "3.12", "4.12", "network gateway changes",
        "cis-4.12-network-gateway-changes", _NETWORK_GATEWAY_CHANGES,
    ),
    CisControl(
        "CloudWatch.13", "3.13", "4.13", "route table changes", "cis-4.13-route-table-changes",
        _ROUTE_TABLE_CHANGES,
    ),
    CisControl(
        "CloudWatch.14", "3.14", "4.14", "VPC changes", "cis-4.14-vpc-changes", _VPC_CHANGES
    ),
    CisControl(
        None, None, "4.15", "AWS Organizations changes", "cis-4.15-organizations-changes",
        _ORGANIZATIONS_CHANGES,
    ),
)  # fmt: skip


def find_control(key: str) -> CisControl:
    """Look a control up by Security Hub id ("CloudWatch.2"), CIS number ("4.1", or "3.1" in
    v1.2) or filter name."""
    for candidate in CONTROLS:
        keys = (candidate.security_hub_id, candidate.cis_v1_2, candidate.cis_number)
        if key in (*keys, candidate.filter_name):
            return candidate
    raise KeyError(
        f"no CIS monitoring control {key!r}: use CloudWatch.1-14, 3.1-3.14, 4.1-4.15 or a "
        "filter name"
    )


def text_matches(control: CisControl, stored_pattern: str) -> bool:
    """Whether a stored filterPattern is the control's text, the way a compliance scan sees it.

    Accepted: the installed text or one of the control's variants, written with any
    whitespace, redundant parentheses, quoted or unquoted values, and the operands of each
    `||` / `&&` in any order (like prowler's order-independent, whitespace-tolerant regexes).
    Refused (as Security Hub refuses "additional fields or terms"): an added, removed or
    changed clause, a changed operator or grouping (`A || B && C` is not `(A || B) && C`), and
    text that does not parse. The CIS 1.4 4.1 text is therefore refused for CloudWatch.2.
    """
    try:
        stored = parse(stored_pattern).normalized()
    except FilterPatternError:
        return False
    return any(_normalized(text) == stored for text in control.accepted_texts)


@lru_cache(maxsize=64)
def _normalized(text: str) -> str:
    return parse(text).normalized()
