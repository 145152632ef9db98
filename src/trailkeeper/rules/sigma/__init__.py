"""Sigma detection rules for CloudTrail records (issue #12 item 3).

    rules = load_directory(shipped_directory())       # SigmaSet: rules + refusals
    for rule in rules.matching(record):               # indexed by eventName / eventSource
        alert(rule.id, rule.level, record)

pySigma parses and validates the YAML, modifiers and conditions; trailkeeper compiles the parsed
rule into its own matcher over the nested record (dotted paths, case-insensitive by default,
objects stringified as JSON, null = missing or JSON null). Anything it cannot evaluate
faithfully (aggregations, correlations, encoding modifiers, a non-CloudTrail log source, an
`expand` without configured values...) is refused at load with a reason naming the rule and the
file, never kept to match everything or nothing. docs/sigma.md has the semantics and decisions.
"""

from trailkeeper.rules.sigma._errors import SigmaLoadError
from trailkeeper.rules.sigma._load import (
    NO_PLACEHOLDERS,
    fingerprint,
    load_directory,
    load_text,
    shipped_directory,
)
from trailkeeper.rules.sigma._model import LEVELS, Refusal, SigmaRule
from trailkeeper.rules.sigma._ruletests import (
    COLUMNS,
    RuleTestReport,
    RuleTestResult,
    run_rule_tests,
)
from trailkeeper.rules.sigma._set import SigmaSet

__all__ = [
    "COLUMNS",
    "LEVELS",
    "NO_PLACEHOLDERS",
    "Refusal",
    "RuleTestReport",
    "RuleTestResult",
    "SigmaLoadError",
    "SigmaRule",
    "SigmaSet",
    "fingerprint",
    "load_directory",
    "load_text",
    "run_rule_tests",
    "shipped_directory",
]
