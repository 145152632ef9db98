"""The one error loading raises, and the internal signal for a rule that is refused."""

from __future__ import annotations

from trailkeeper.errors import TrailkeeperError


class SigmaLoadError(TrailkeeperError):
    """A rule directory cannot be read at all (missing, not a directory, no permission).

    Problems with single rules never raise: they become `Refusal`s."""


class Unsupported(Exception):
    """One reason a rule cannot be compiled; the loader turns it into a Refusal."""
