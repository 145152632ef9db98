"""The EventBridge event-pattern language: a parser that fails closed and a compiled matcher.

    pattern = parse('{"source": ["aws.cloudtrail"], "detail": {"eventName": ["StopLogging"]}}')
    pattern.matches(event)            # True or False

Every invalid pattern raises EventPatternError (code InvalidEventPatternException) naming
each problem and its path; nothing falls back to "match everything". docs/event-patterns.md
lists the rules and every decision trailkeeper takes where AWS is silent.
"""

from trailkeeper.rules.eventpattern._errors import EventPatternError
from trailkeeper.rules.eventpattern._pattern import (
    MAX_NESTING_DEPTH,
    MAX_PATTERN_LENGTH,
    EventPattern,
    parse,
)

__all__ = [
    "MAX_NESTING_DEPTH",
    "MAX_PATTERN_LENGTH",
    "EventPattern",
    "EventPatternError",
    "parse",
]
