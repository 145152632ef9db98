"""Rule files to compiled rules and refusals; one bad rule never stops the others."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule as ParsedRule
from sigma.rule.base import SigmaYAMLLoader

from trailkeeper.rules.sigma._compile import Placeholders, compile_rule
from trailkeeper.rules.sigma._errors import SigmaLoadError, Unsupported
from trailkeeper.rules.sigma._model import DEFAULT_LEVEL, Refusal, SigmaRule
from trailkeeper.rules.sigma._policy import alert_policy
from trailkeeper.rules.sigma._set import SigmaSet

NO_PLACEHOLDERS: Final[Placeholders] = MappingProxyType({})
RULE_SUFFIXES: Final = (".yml", ".yaml")
SAMPLE_KINDS: Final = ("positive", "negative")
TESTS_ATTRIBUTE: Final = "tests"
INTERNAL_ERROR: Final = "internal error while compiling the rule (please report it)"


@dataclass(frozen=True)
class Entry:
    """A loaded rule with what `run_rule_tests` needs: its file and its `tests:` block."""

    rule: SigmaRule
    file: Path | None
    tests: Any


def load_text(text: str, source: str, placeholders: Placeholders = NO_PLACEHOLDERS
              ) -> tuple[list[SigmaRule], list[Refusal]]:
    """The rules of one YAML text (one or more documents) and the refusals among them."""
    entries, refusals = _entries_of_text(text, source, placeholders, None)
    unique, duplicates = _unique_ids(entries)
    return [entry.rule for entry in unique], refusals + duplicates


def load_directory(path: Path, placeholders: Placeholders = NO_PLACEHOLDERS) -> SigmaSet:
    """Every rule under `path` (*.yml and *.yaml, recursively, sample files skipped), compiled
    and indexed, with a refusal for each rule or file that could not be loaded. Raises
    SigmaLoadError only when `path` itself cannot be read."""
    entries, refusals = load_entries(path, placeholders)
    return SigmaSet([entry.rule for entry in entries], refusals)


def load_entries(directory: Path, placeholders: Placeholders = NO_PLACEHOLDERS
                 ) -> tuple[list[Entry], list[Refusal]]:
    """Every rule file under `directory` (recursively), ids unique across all of them."""
    files, refusals = rule_files(directory)
    entries: list[Entry] = []
    for file in files:
        found, refused = _entries_of_file(file, placeholders)
        entries.extend(found)
        refusals.extend(refused)
    unique, duplicates = _unique_ids(entries)
    return unique, refusals + duplicates


def _entries_of_file(file: Path, placeholders: Placeholders) -> tuple[list[Entry], list[Refusal]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [], [Refusal(str(file), None, f"cannot read the file: {e}")]
    return _entries_of_text(text, str(file), placeholders, file)


def _entries_of_text(text: str, source: str, placeholders: Placeholders, file: Path | None
                     ) -> tuple[list[Entry], list[Refusal]]:
    try:
        documents = [document for document in yaml.load_all(text, Loader=SigmaYAMLLoader) if document is not None]
    except (yaml.YAMLError, RecursionError) as e:
        return [], [Refusal(source, None, f"not valid YAML: {_one_line(e)}")]
    bad = [i + 1 for i, document in enumerate(documents) if not isinstance(document, dict)]
    if bad:
        return [], [Refusal(source, None, f"YAML document(s) {bad} are not mappings, so not Sigma rules")]
    try:
        collection = SigmaCollection.from_dicts(documents, collect_errors=True, source=SigmaRuleLocation(Path(source)),
                                                collect_filters=True, resolve_references=False)
    except Exception as e:  # pySigma on untrusted YAML: any failure is this file's refusal, not ours
        return [], [Refusal(source, None, f"pySigma cannot parse the file: {_message(e)}")]
    return _entries_of_collection(collection, source, placeholders, file)


def _entries_of_collection(collection: SigmaCollection, source: str, placeholders: Placeholders,
                           file: Path | None) -> tuple[list[Entry], list[Refusal]]:
    entries: list[Entry] = []
    refusals: list[Refusal] = []
    for parsed in collection.rules:
        if isinstance(parsed, SigmaCorrelationRule):
            refusals.append(Refusal(source, _label(parsed.title, parsed.id),
                                    "correlation rules (event_count, value_count, temporal) are not supported; "
                                    "use the `trailkeeper: {threshold: ...}` attribute on a plain rule"))
            continue
        try:
            entries.append(Entry(_compiled(parsed, source, placeholders), file,
                                 parsed.custom_attributes.get(TESTS_ATTRIBUTE)))
        except Unsupported as e:
            refusals.append(Refusal(source, _label(parsed.title, parsed.id), str(e)))
        except Exception as e:  # a bug here must cost one rule, not the whole reload
            refusals.append(Refusal(source, _label(parsed.title, parsed.id),
                                    f"{INTERNAL_ERROR}: {type(e).__name__}: {e}"))
    for meta in collection.filters:
        refusals.append(Refusal(source, _label(meta.title, meta.id), "Sigma filters (meta-rules) are not supported"))
    in_rules = {id(error) for parsed in [*collection.rules, *collection.filters] for error in parsed.errors}
    refusals.extend(Refusal(source, None, _message(error)) for error in collection.errors if id(error) not in in_rules)
    return entries, refusals


def _compiled(parsed: ParsedRule, source: str, placeholders: Placeholders) -> SigmaRule:
    if parsed.errors:
        raise Unsupported("; ".join(_message(error) for error in parsed.errors))
    if parsed.id is None:
        raise Unsupported("the rule has no `id:`; give it a UUID so that its alerts can be told apart")
    try:
        root = compile_rule(parsed, placeholders)
    except SigmaError as e:  # the condition is parsed lazily, here
        raise Unsupported(_message(e)) from e
    policy = alert_policy(parsed.custom_attributes)
    return SigmaRule(
        id=str(parsed.id), title=parsed.title, level=parsed.level.name.lower() if parsed.level else DEFAULT_LEVEL,
        source=source, author=parsed.author or "", description=parsed.description or "",
        tags=tuple(str(tag) for tag in parsed.tags), falsepositives=tuple(str(fp) for fp in parsed.falsepositives),
        dedup_fields=policy.dedup_fields, threshold=policy.threshold,
        threshold_window_s=policy.threshold_window_s, dedup_window_s=policy.dedup_window_s, _root=root,
    )


def _unique_ids(entries: list[Entry]) -> tuple[list[Entry], list[Refusal]]:
    first: dict[str, SigmaRule] = {}
    unique: list[Entry] = []
    refusals: list[Refusal] = []
    for entry in entries:
        rule = entry.rule
        seen = first.setdefault(rule.id, rule)
        if seen is rule:
            unique.append(entry)
        else:
            refusals.append(Refusal(rule.source, _label(rule.title, rule.id),
                                    f"id {rule.id} is already the id of {seen.title!r} in {seen.source}"))
    return unique, refusals


def rule_files(directory: Path) -> tuple[list[Path], list[Refusal]]:
    """Rule files under `directory`, sorted; hidden entries and sample files are skipped."""
    _check_readable(directory)
    files: list[Path] = []
    refusals: list[Refusal] = []
    for path, error in _walk(directory):
        if error is not None:
            refusals.append(Refusal(str(path), None, f"cannot read the directory: {error}"))
        elif path.suffix in RULE_SUFFIXES and not _is_sample(path):
            files.append(path)
    return sorted(files), refusals


def _is_sample(path: Path) -> bool:
    return Path(path.stem).suffix in (".positive", ".negative")


def _walk(directory: Path) -> Iterator[tuple[Path, OSError | None]]:
    """Every non-hidden file under `directory`, or (subdirectory, error) where one is unreadable."""
    pending = [directory]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                children = sorted(listing, key=lambda child: child.name)
        except OSError as e:
            yield current, e
            continue
        for child in children:
            if child.name.startswith("."):
                continue
            if child.is_dir(follow_symlinks=False):
                pending.append(Path(child.path))
            elif child.is_file():
                yield Path(child.path), None


def _check_readable(directory: Path) -> None:
    try:
        with os.scandir(directory):
            pass
    except NotADirectoryError as e:
        raise SigmaLoadError(f"Sigma rule path {directory} is not a directory", hint="give the directory of the rule files") from e
    except OSError as e:
        raise SigmaLoadError(f"cannot read the Sigma rule directory {directory}: {e.strerror or e}",
                             hint="check that it exists and is readable") from e


def fingerprint(path: Path) -> str:
    """A cheap change detector for hot reload: a hash of every file's name, size and mtime."""
    _check_readable(path)
    digest = hashlib.sha256()
    for file, error in _walk(path):
        if error is not None:
            digest.update(f"unreadable {file}\n".encode())
            continue
        try:
            stat = file.stat()
        except OSError:
            continue  # removed while we looked: the next call sees the new state
        name = file.relative_to(path).as_posix()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def shipped_directory() -> Path:
    """The rules shipped in the package: SigmaHQ's CloudTrail rules and trailkeeper's own."""
    return Path(__file__).resolve().parent / "shipped"


def _label(title: str | None, rule_id: Any) -> str | None:
    if title and rule_id:
        return f"{title} ({rule_id})"
    return title or (str(rule_id) if rule_id else None)


def _message(error: BaseException) -> str:
    # A SigmaError's str() appends the file, which the Refusal already names.
    text = str(error.args[0]) if error.args else type(error).__name__
    return text if isinstance(error, SigmaError) else f"{type(error).__name__}: {text}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())

