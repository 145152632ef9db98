"""CloudWatch Logs filter patterns: a parser that fails closed, and a fast evaluator.

    pattern = parse('{ $.errorCode = "AccessDenied*" }')
    pattern.match(message)            # Match(extracted_values={...}) or None
    pattern.value_of("$.latency", message)

Kinds (after trimming): empty or `" "` matches everything; `{...}` JSON; `[...]`
space-delimited; `%...%` a standalone regex; anything else terms. Whatever is malformed or
unsupported raises FilterPatternError with the 0-based position and the fix; nothing falls
back to "match everything". docs/filter-patterns.md lists every decision.
"""

from trailkeeper.monitoring.filterpattern._cursor import FilterPatternError
from trailkeeper.monitoring.filterpattern._index import PatternIndex
from trailkeeper.monitoring.filterpattern._match import Event, Match
from trailkeeper.monitoring.filterpattern._pattern import (
    MAX_PATTERN_LENGTH,
    MAX_REGEX_PATTERNS_PER_LOG_GROUP,
    MAX_REGEXES_PER_PATTERN,
    NO_DIMENSIONS_MESSAGE,
    FilterPattern,
    Kind,
    check_dimensions,
    check_metric_selector,
    parse,
)

__all__ = [
    "MAX_PATTERN_LENGTH",
    "MAX_REGEXES_PER_PATTERN",
    "MAX_REGEX_PATTERNS_PER_LOG_GROUP",
    "NO_DIMENSIONS_MESSAGE",
    "Event",
    "FilterPattern",
    "FilterPatternError",
    "Kind",
    "Match",
    "PatternIndex",
    "check_dimensions",
    "check_metric_selector",
    "parse",
]
