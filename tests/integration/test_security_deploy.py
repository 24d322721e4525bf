"""Secrets stay out of the repository; the service runs unprivileged and only reads the
bridge's store."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from configparser import ConfigParser
from pathlib import Path

import pytest

from tests.helpers import VELO, Bridge
from wa_monitor.core.errors import BridgeStoreError

ROOT = Path(__file__).resolve().parents[2]
# A URL with a password; placeholders and the tests' own throwaway values are allowed.
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.\-]*://[^:/@\s\"'`]+:([^@\s\"'`]+)@", re.I)
PLACEHOLDERS = re.compile(
    r"^(\*+|CHANGE_ME|PASSWORD|password|pass|pw|secret|USER|x+|\$\{?\w+\}?|<[^>]+>|"
    r"Sup3rS3cret|s3cret|hunter2|\{[^}]*\}|%s)$"
)
PRIVATE_KEY = re.compile(r"-----BEGIN (RSA |EC |OPENSSH |)PRIVATE KEY-----")
TEST_DIRS = ("tests/",)


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / line for line in out.splitlines() if line]


def test_no_secret_is_committed() -> None:
    findings = []
    files = tracked_files()
    for path in files:
        relative = path.relative_to(ROOT).as_posix()
        if not path.is_file() or path.suffix in {".png", ".jpg", ".ico", ".woff2"}:
            continue
        name = path.name
        if name == ".env" or (name.endswith(".env") and not name.endswith(".example")):
            findings.append(f"{relative}: an env file is committed")
        text = path.read_text(encoding="utf-8", errors="replace")
        if PRIVATE_KEY.search(text):
            findings.append(f"{relative}: a private key")
        for match in URL_PASSWORD.finditer(text):
            secret = match.group(1)
            if PLACEHOLDERS.match(secret) or relative.startswith(TEST_DIRS):
                continue
            findings.append(f"{relative}: a password in {match.group(0)[:30]}…")
        for line in text.splitlines():
            m = re.match(r"\s*(SECRET_KEY|DATABASE_URL|NEON_DATABASE_URL)\s*=\s*(\S+)", line)
            if (
                m
                and m.group(1) == "SECRET_KEY"
                and len(m.group(2)) >= 16
                and "CHANGE" not in m.group(2)
                and not relative.startswith(TEST_DIRS)
            ):
                findings.append(f"{relative}: a SECRET_KEY value")
    print(f"{len(files)} tracked files searched for passwords in URLs, keys and env files")
    assert not findings, findings


def test_the_systemd_unit_runs_unprivileged_with_a_read_only_bridge_store() -> None:
    unit = ROOT / "deploy" / "systemd" / "wa-monitor@.service"
    parser = ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text(encoding="utf-8"))
    service = parser["Service"]
    assert service.get("User") not in (None, "", "root")
    assert service.get("NoNewPrivileges") == "yes"
    assert service.get("ProtectSystem") == "strict"
    assert service.get("CapabilityBoundingSet", "x") == ""
    read_only = service.get("ReadOnlyPaths", "")
    assert "whatsapp-bridge/store" in read_only
    writable = service.get("ReadWritePaths", "")
    assert "whatsapp-bridge" not in writable


def test_the_monitor_cannot_write_the_bridge_store(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path / "store")
    bridge.post(VELO, "DR12345678")
    reader = bridge.reader()
    try:
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            reader.conn.execute("DELETE FROM messages")
        # Even with query_only switched off, the file is opened read-only (mode=ro).
        reader.conn.execute("PRAGMA query_only = OFF")
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
            reader.conn.execute("DELETE FROM messages")
    finally:
        reader.close()
    check = sqlite3.connect(bridge.messages_db)
    try:
        assert check.execute("SELECT count(*) FROM messages").fetchone() == (1,)
    finally:
        check.close()


def test_a_missing_store_is_not_created_by_the_monitor(tmp_path: Path) -> None:
    from wa_monitor.sources.bridge import BridgeStore

    path = tmp_path / "store" / "messages.db"
    with pytest.raises(BridgeStoreError, match="not found"):
        BridgeStore(path).open()
    assert not path.exists()
