"""Shared fixtures (the helpers themselves live in tests/pipeline.py)."""

from tests.pipeline import pipeline

__all__ = ["pipeline"]
