"""`--config PATH` and `--env-file PATH`: before the command, after it, or both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import PROJECTS_YAML

WA_MONITOR = [sys.executable, "-m", "wa_monitor"]


def run(root: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "NEON_", "WHATSAPP_", "WA_MONITOR_", "SCAN_"))
    }
    env.update(extra)
    return subprocess.run(
        [*WA_MONITOR, *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "projects.yaml").write_text(PROJECTS_YAML)
    (tmp_path / "one.yaml").write_text(PROJECTS_YAML.replace("name: Lawley", "name: Lawley One"))
    (tmp_path / "two.yaml").write_text(PROJECTS_YAML.replace("name: Lawley", "name: Lawley Two"))
    return tmp_path


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["check-config", "--config", "one.yaml"], "Lawley One"),
        (["--config", "one.yaml", "check-config"], "Lawley One"),
        (["--config", "one.yaml", "check-config", "--config", "two.yaml"], "Lawley Two"),
        (["projects", "list", "--config", "one.yaml"], "Lawley One"),
        (["--config", "one.yaml", "projects", "list"], "Lawley One"),
        (["projects", "--config", "one.yaml", "list"], "Lawley One"),
        (["--config", "two.yaml", "projects", "list", "--config", "one.yaml"], "Lawley One"),
        (["projects", "list"], "Lawley\n"),
    ],
)
def test_config_is_taken_before_or_after_the_command(
    root: Path, args: list[str], shown: str
) -> None:
    result = run(root, *args)
    assert result.returncode == 0, result.stderr
    assert shown.strip() in result.stdout
    for other in {"Lawley One", "Lawley Two"} - {shown}:
        assert other not in result.stdout


@pytest.mark.parametrize(
    ("args", "interval"),
    [
        (["settings", "--env-file", "a.env"], "41"),
        (["--env-file", "a.env", "settings"], "41"),
        (["--env-file", "a.env", "settings", "--env-file", "b.env"], "42"),
    ],
)
def test_env_file_is_taken_before_or_after_a_command(
    root: Path, args: list[str], interval: str
) -> None:
    (root / "a.env").write_text("SCAN_INTERVAL=41\n")
    (root / "b.env").write_text("SCAN_INTERVAL=42\n")
    result = run(root, *args, COLUMNS="200")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if "SCAN_INTERVAL" in line)
    assert interval in line
    assert ({"41", "42"} - {interval}).pop() not in line


@pytest.mark.parametrize(
    "args",
    [
        ["db", "upgrade", "--env-file", "b.env"],
        ["--env-file", "a.env", "db", "upgrade", "--env-file", "b.env"],
    ],
)
def test_env_file_after_a_nested_command_names_the_database(root: Path, args: list[str]) -> None:
    (root / "a.env").write_text(f"NEON_DATABASE_URL=sqlite:///{root / 'a.db'}\n")
    (root / "b.env").write_text(f"NEON_DATABASE_URL=sqlite:///{root / 'b.db'}\n")
    result = run(root, *args)
    assert result.returncode == 0, result.stderr
    assert (root / "b.db").exists()
    assert not (root / "a.db").exists()


@pytest.mark.parametrize(
    "command", [["check-config"], ["projects", "list"], ["db", "upgrade"], ["users", "add"]]
)
def test_help_of_a_command_lists_both_options(root: Path, command: list[str]) -> None:
    result = run(root, *command, "--help", COLUMNS="120")
    assert result.returncode == 0, result.stderr
    assert "--config PATH" in result.stdout
    assert "--env-file PATH" in result.stdout
