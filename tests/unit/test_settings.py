"""Settings from the environment and .env files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wa_monitor.cli.main import main
from wa_monitor.core.config import resolve_config_path
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.settings import SETTINGS, load_settings, mask_url, settings_from


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


def test_every_setting_is_a_field_read_from_its_variable() -> None:
    env = {s.name: s.default for s in SETTINGS if s.default is not None}
    env.update(WHATSAPP_DB_PATH="/srv/messages.db", SECRET_KEY="s3cr3t-key", METRICS_PORT="9100")
    s = settings_from(env)
    assert s.whatsapp_db_path == Path("/srv/messages.db")
    assert s.metrics_port == 9100
    assert s.allow_shared_database is False
    assert settings_from({"ALLOW_SHARED_DATABASE": " Yes"}).allow_shared_database is True
    assert "s3cr3t-key" not in repr(s)  # the secret key stays out of tracebacks and logs


def test_the_projects_file_setting_names_the_file_the_commands_read() -> None:
    assert settings_from({}).config_path == resolve_config_path(None, {})
    env = {"WA_MONITOR_CONFIG": "/etc/wa-monitor/projects.yaml"}
    assert settings_from(env).config_path == resolve_config_path(None, env)


def test_the_settings_command_lists_every_setting_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setenv("SECRET_KEY", "s3cr3t-key")
    monkeypatch.setenv("DATABASE_URL", "postgresql://owner:pw-123@db.invalid/reviews")
    monkeypatch.setenv("WA_MONITOR_CONFIG", "/etc/wa-monitor/projects.yaml")
    result = CliRunner().invoke(main, ["settings"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    listed = {line.split()[1] for line in result.output.splitlines() if line.startswith("│")}
    assert listed >= {s.name for s in SETTINGS}
    assert "WA_MONITOR_CONFIG" in listed
    assert "/etc/wa-monitor/projects.yaml" in result.output
    assert "s3cr3t-key" not in result.output and "pw-123" not in result.output
    assert "owner:***@db.invalid" in result.output
