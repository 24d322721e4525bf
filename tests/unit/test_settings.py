"""Settings from the environment and .env files."""

from __future__ import annotations

from pathlib import Path

import pytest

from wa_monitor.errors import ConfigError
from wa_monitor.settings import load_settings, mask_url, settings_from


def test_defaults() -> None:
    s = settings_from({})
    assert s.database_url == "sqlite:///wa-monitor.db"
    assert s.scan_interval == 15
    assert s.whatsapp_db_path is None
    assert s.bridge_url == "http://localhost:8080/api"
    with pytest.raises(ConfigError, match="WHATSAPP_DB_PATH is not set"):
        s.require_bridge()


def test_database_url_wins_over_the_seeds_name() -> None:
    assert settings_from({"NEON_DATABASE_URL": "postgresql://a/b"}).database_url == (
        "postgresql://a/b"
    )
    both = {"NEON_DATABASE_URL": "postgresql://a/b", "DATABASE_URL": "postgresql://c/d"}
    assert settings_from(both).database_url == "postgresql://c/d"


def test_env_file_under_the_environment(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    (store / "whatsapp.db").touch()
    env = tmp_path / ".env"
    env.write_text(
        f"# prod\nWHATSAPP_DB_PATH={store / 'messages.db'}\nSCAN_INTERVAL=5\nLOG_LEVEL=debug\n"
    )
    s = load_settings({"SCAN_INTERVAL": "2"}, env)
    assert s.scan_interval == 2  # the environment wins
    assert s.log_level == "DEBUG"
    assert s.whatsapp_store_path == store / "whatsapp.db"  # found beside messages.db


def test_bad_values_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from({"SCAN_INTERVAL": "soon", "LOG_LEVEL": "LOUD"})
    assert len(caught.value.problems) == 2
    with pytest.raises(ConfigError, match="env file not found"):
        load_settings({}, tmp_path / "missing.env")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://neondb_owner:s3cr3t@ep-x.aws.neon.invalid/db", "neondb_owner:***@ep-x"),
        ("failed: postgresql+psycopg://u:p%40ss@h:5432/d?sslmode=require", "u:***@h:5432"),
        ("sqlite:///wa-monitor.db", "sqlite:///wa-monitor.db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
    ],
)
def test_mask_url(text: str, masked: str) -> None:
    result = mask_url(text)
    assert masked in result
    assert "s3cr3t" not in result and "p%40ss" not in result
