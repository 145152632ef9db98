"""Rule tests: every rule's positive samples must match it and its negative samples must not.

Samples come from a top-level `tests:` block in the rule (pySigma keeps unknown attributes)

    tests:
      positive: [{eventName: StopLogging, ...}]
      negative: [{eventName: StartLogging, ...}]

and from files beside the rule file, `<stem>.positive.json` and `<stem>.negative.json`, each
one JSON record or an array of records (they apply to every rule of that file). Pure: reads
files, prints nothing; `trailkeeper rules test` renders the report.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trailkeeper.rules.sigma._compile import Placeholders
from trailkeeper.rules.sigma._load import (
    NO_PLACEHOLDERS,
    SAMPLE_KINDS,
    TESTS_ATTRIBUTE,
    Entry,
    load_entries,
)
from trailkeeper.rules.sigma._model import Refusal

COLUMNS: Final = ("rule", "level", "positives passed", "positives failed", "negatives passed",
                  "negatives failed", "covered", "source")


@dataclass(frozen=True)
class Sample:
    kind: str  # positive | negative
    origin: str  # "tests block" or the sample file's path
    index: int  # position in its origin, from 0
    record: Mapping[str, Any]

    @property
    def label(self) -> str:
        name = self.record.get("eventName")
        return f"{self.kind} #{self.index} of {self.origin}" + (f" ({name})" if isinstance(name, str) else "")


@dataclass(frozen=True)
class RuleTestResult:
    """One rule's outcome. `failures` names each failed sample; `problems` are samples that
    could not be read (a malformed `tests:` block or sample file)."""

    rule_id: str
    title: str
    level: str
    source: str
    positives_passed: int
    positives_failed: int
    negatives_passed: int
    negatives_failed: int
    failures: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def covered(self) -> bool:
        """At least one positive and one negative sample."""
        return self.positives_passed + self.positives_failed > 0 and self.negatives_passed + self.negatives_failed > 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.problems

    def row(self) -> tuple[str, str, int, int, int, int, bool, str]:
        """Values in the order of COLUMNS."""
        return (self.title, self.level, self.positives_passed, self.positives_failed, self.negatives_passed,
                self.negatives_failed, self.covered, self.source)


@dataclass(frozen=True)
class RuleTestReport:
    results: tuple[RuleTestResult, ...]
    refusals: tuple[Refusal, ...]

    @property
    def loaded(self) -> int:
        return len(self.results)

    @property
    def covered(self) -> int:
        return sum(1 for result in self.results if result.covered)

    @property
    def coverage(self) -> float:
        """Covered rules over loaded rules (0.0 when none loaded)."""
        return self.covered / self.loaded if self.results else 0.0

    @property
    def failed(self) -> int:
        """Failed samples across all rules."""
        return sum(result.positives_failed + result.negatives_failed for result in self.results)

    @property
    def ok(self) -> bool:
        """No failed sample, no unreadable sample and no refused rule."""
        return all(result.ok for result in self.results) and not self.refusals

    def rows(self) -> list[tuple[str, str, int, int, int, int, bool, str]]:
        return [result.row() for result in self.results]


def run_rule_tests(directory: Path, placeholders: Placeholders = NO_PLACEHOLDERS) -> RuleTestReport:
    """Load every rule under `directory` and run its samples."""
    entries, refusals = load_entries(directory, placeholders)
    return RuleTestReport(tuple(_run(entry) for entry in entries), tuple(refusals))


def _run(entry: Entry) -> RuleTestResult:
    samples, problems = samples_of(entry)
    rule = entry.rule
    counts = {"positive": [0, 0], "negative": [0, 0]}  # kind -> [passed, failed]
    failures: list[str] = []
    for sample in samples:
        passed = rule.matches(sample.record) == (sample.kind == "positive")
        counts[sample.kind][0 if passed else 1] += 1
        if not passed:
            verb = "does not match" if sample.kind == "positive" else "matches"
            failures.append(f"{sample.label} {verb}")
    return RuleTestResult(rule.id, rule.title, rule.level, rule.source, counts["positive"][0], counts["positive"][1],
                          counts["negative"][0], counts["negative"][1], tuple(failures), tuple(problems))


def samples_of(entry: Entry) -> tuple[list[Sample], list[str]]:
    """The rule's samples from its `tests:` block and its sample files, with any problems."""
    samples, problems = _block_samples(entry.tests)
    if entry.file is not None:
        for kind in SAMPLE_KINDS:
            path = entry.file.with_name(f"{entry.file.stem}.{kind}.json")
            found, problem = _file_samples(path, kind)
            samples.extend(found)
            problems.extend([problem] if problem else [])
    return samples, problems


def _block_samples(block: Any) -> tuple[list[Sample], list[str]]:
    if block is None:
        return [], []
    where = f"`{TESTS_ATTRIBUTE}:` block"
    if not isinstance(block, Mapping) or set(block) - set(SAMPLE_KINDS):
        return [], [f"{where} must be a mapping with keys positive and negative"]
    samples: list[Sample] = []
    problems: list[str] = []
    for kind in SAMPLE_KINDS:
        records = block.get(kind) or []
        if not isinstance(records, list) or not all(isinstance(record, Mapping) for record in records):
            problems.append(f"{where}: {kind} must be a list of records (mappings)")
            continue
        samples.extend(Sample(kind, "tests block", i, _json_like(record)) for i, record in enumerate(records))
    return samples, problems


def _file_samples(path: Path, kind: str) -> tuple[list[Sample], str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], None
    except (OSError, UnicodeDecodeError) as e:
        return [], f"{path}: cannot read: {e}"
    try:
        document = json.loads(text)
    except ValueError as e:
        return [], f"{path}: not valid JSON: {e}"
    records = document if isinstance(document, list) else [document]
    if not all(isinstance(record, dict) for record in records):
        return [], f"{path}: must hold a JSON object (a record) or an array of them"
    return [Sample(kind, str(path), i, record) for i, record in enumerate(records)], None


def _json_like(value: Any) -> Any:
    """YAML reads unquoted timestamps as datetimes; records hold them as ISO 8601 text."""
    if isinstance(value, dt.datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _json_like(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_like(item) for item in value]
    return value
