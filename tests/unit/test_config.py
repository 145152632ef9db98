"""Typed configuration: named defaults, TOML file, environment, refusal of inconsistent settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from trailkeeper.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_FLUSH_INTERVAL,
    ENV_DATA_DIR,
    load_config,
    parse_duration,
)
from trailkeeper.errors import ConfigError


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_DATA_DIR, raising=False)
    monkeypatch.chdir(tmp_path)
    config = load_config()
    assert config.data_dir == DEFAULT_DATA_DIR
    assert config.default_flush_interval == DEFAULT_FLUSH_INTERVAL
    assert config.retention == timedelta(days=90)


def test_env_and_explicit_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path / "from-env"))
    assert load_config().data_dir == tmp_path / "from-env"
    assert load_config(tmp_path / "explicit").data_dir == tmp_path / "explicit"


def test_toml_file_in_data_dir_with_sections(tmp_path: Path) -> None:
    (tmp_path / "trailkeeper.toml").write_text(
        '[delivery]\ndefault_flush_interval = "5s"\nmax_batch_events = 500\n[history]\nretention = "400d"\n'
    )
    config = load_config(tmp_path)
    assert config.default_flush_interval == timedelta(seconds=5)
    assert config.max_batch_events == 500
    assert config.retention == timedelta(days=400)


@pytest.mark.parametrize("toml, fragment", [
    ('default_flush_interval = "2h"', "flush_interval must not exceed digest_interval"),
    ('default_digest_interval = "90s"', "whole number of minutes"),
    ('default_digest_interval = "30s"', "at least 60s"),
    ("max_batch_events = 0", "max_batch_events"),
    ('retention = "2h"', "retention must be at least 1 day"),
    ("port = 70000", "port 70000"),
    ('no_such_setting = 1', "unknown setting"),
    ('max_batch_events = "many"', "expected an integer"),
    ('default_flush_interval = "soon"', "cannot read"),
    ("receive_buffer_bytes = 100", "receive_buffer_bytes must be 0"),
])
def test_inconsistent_settings_are_refused_with_a_reason(tmp_path: Path, toml: str, fragment: str) -> None:
    (tmp_path / "trailkeeper.toml").write_text(toml + "\n")
    with pytest.raises(ConfigError, match=fragment):
        load_config(tmp_path)


def test_every_problem_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "trailkeeper.toml").write_text('max_batch_events = 0\nretention = "1h"\n')
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path)
    assert "max_batch_events" in str(refused.value) and "retention" in str(refused.value)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path, tmp_path / "absent.toml")


@pytest.mark.parametrize("text, seconds", [("90", 90), ("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800), (45, 45)])
def test_durations(text: object, seconds: int) -> None:
    assert parse_duration(text, "x") == timedelta(seconds=seconds)
