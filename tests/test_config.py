"""config.yaml: defaults, the environment override, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot_analytics import Analytics, ConfigError, load_config
from bot_analytics.config import DEFAULT_DATABASE_URL, parse_settings

ROOT = Path(__file__).resolve().parent.parent


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_config()
    assert s.database.url == DEFAULT_DATABASE_URL == "sqlite:///bot_analytics.sqlite3"
    assert s.database.migrate_on_start is True
    assert (s.writer.queue_size, s.writer.flush_at, s.writer.flush_interval) == (10_000, 500, 1.0)
    assert s.metrics.session_timeout_minutes == 30


def test_minimal_config_and_environment_override(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("database: {url: 'postgresql+psycopg://u@h/db'}\n")
    s = load_config(f)
    assert s.database.url == "postgresql+psycopg://u@h/db"
    assert s.database.migrate_on_start is False  # server databases migrate as a deploy step
    monkeypatch.setenv("BOT_ANALYTICS_DATABASE_URL", "sqlite:///other.db")
    assert load_config(f).database.url == "sqlite:///other.db"


def test_the_shipped_sample_config_is_valid() -> None:
    s = load_config(ROOT / "config.yaml")
    assert "escalate" in s.intents.rules
    assert s.intents.callback_prefixes == {"buy:": "purchase"}


def test_typo_names_the_key_the_file_and_a_suggestion(tmp_path: Path) -> None:
    f = tmp_path / "bot.yaml"
    f.write_text("writer:\n  flush_att: 10\n")
    with pytest.raises(ConfigError) as err:
        load_config(f)
    msg = str(err.value)
    assert str(f) in msg and "writer.flush_att" in msg and "did you mean 'flush_at'" in msg


def test_wrong_value_names_the_key(tmp_path: Path) -> None:
    f = tmp_path / "bot.yaml"
    f.write_text("writer:\n  queue_size: lots\n")
    with pytest.raises(ConfigError, match=r"'writer.queue_size'.*integer"):
        load_config(f)


def test_broken_yaml_and_missing_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("writer: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML at line 2"):
        load_config(f)
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(f)


def test_bad_intent_pattern_and_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"intents.rules.refund.patterns: invalid regular"):
        Analytics(parse_settings({"intents": {"rules": {"refund": {"patterns": ["(unclosed"]}}}}))
    monkeypatch.delenv("BOT_ANALYTICS_SECRET", raising=False)
    with pytest.raises(ConfigError, match="BOT_ANALYTICS_SECRET"):
        Analytics(parse_settings({"privacy": {"pseudonymize_members": True}}))
