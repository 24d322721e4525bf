"""Fault 6: the projects file edited into an invalid or hostile state while `wa-monitor run`
runs, and given to every command that reads it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.bridgeio import post
from tests.faults.conftest import make_site
from tests.faults.support import (
    PROJECT_NAMES,
    PROJECTS_YAML,
    WA_MONITOR,
    Site,
    figure,
    wait_until,
)

LAWLEY, VELO = list(PROJECT_NAMES)[:2]

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

BAD_EDITS = {
    "YAML syntax error": PROJECTS_YAML.replace("  - name: Velo Test", "  - name: [Velo Test"),
    "a group JID that is not one": PROJECTS_YAML.replace(VELO, "120363-not-a-jid"),
    "an unknown key": PROJECTS_YAML.replace("timezone:", "timezon:"),
    "half-written file": PROJECTS_YAML[: len(PROJECTS_YAML) // 3],
    "empty file": "",
}


@postgresql_only
def test_invalid_projects_file_keeps_the_last_good_config(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    post(site.messages_db, site.whatsapp_db, VELO, "DR30000000 before")
    store = site.store()
    process = site.start()
    results: list[str] = []

    def reviews() -> set[str]:
        return {r["drop_number"] for r in store.reviews()}

    try:
        wait_until(lambda: "DR30000000" in reviews(), 60, "the first drop", process=process)
        for n, (what, text) in enumerate(BAD_EDITS.items(), start=1):
            before = process.log().count("rejected, still monitoring")
            site.config.write_text(text)
            wait_until(
                lambda before=before: process.log().count("rejected, still monitoring") > before,
                30,
                f"the {what} to be rejected",
                process=process,
            )
            rejected = [ln for ln in process.log().splitlines() if "rejected, still" in ln][-1]
            reason = rejected.split("last good file: ", 1)[-1].replace(str(site.config), "")
            # Still monitoring with the last good config: a drop in Velo Test is recorded.
            drop = f"DR3000000{n}"
            post(site.messages_db, site.whatsapp_db, VELO, f"{drop} during the bad edit")
            wait_until(lambda drop=drop: drop in reviews(), 30, f"{drop}", process=process)
            # ... and the rejection is logged once, not at every poll.
            polls_later = time.monotonic()
            while time.monotonic() - polls_later < 0.5:
                time.sleep(0.05)  # some polls of the unchanged bad file
            assert process.log().count("rejected, still monitoring") == before + 1
            results.append(f"{what} → {reason[:90]!r}")
        # A valid edit that stops Velo Test is applied.
        site.config.write_text(PROJECTS_YAML.replace("enabled: true", "enabled: false", 2))
        process.wait_log("projects file reloaded")
        site.config.unlink()
        process.wait_log("is gone or unreadable")
        post(site.messages_db, site.whatsapp_db, VELO, "DR39999999 after stopping Velo")
        post(site.messages_db, site.whatsapp_db, list(PROJECT_NAMES)[2], "DR38888888 Mohadin")
        wait_until(lambda: "DR38888888" in reviews(), 30, "a drop of a kept group", process=process)
        assert "DR39999999" not in reviews()
        assert process.stop() == 0
        log = process.log()
    finally:
        process.ensure_dead()
        store.dispose()
    figure(
        f"fault 6 projects file: {len(BAD_EDITS)} invalid edits while running, each rejected "
        f"with one log line naming the problem, drops still recorded with the last good "
        f"config: " + "; ".join(results) + "; a later valid edit applied, the file deleted: "
        "kept the last good config"
    )
    assert "Traceback" not in log


# -- a hostile projects file: the service keeps its last good config; the commands say why -

LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{x}: &{x} [{', '.join(['*' + w] * 9)}]\n" for w, x in zip("abcde", "bcdef", strict=True)
)  # 9**6 = 531,441 strings once expanded
HOSTILE_FILES: dict[str, bytes] = {
    "an alias bomb": (LAUGHS + PROJECTS_YAML).encode(),
    "60,000 nested [": b"[" * 60_000,
    "60,000 nested {": b"{" * 60_000,
    "a !!python/object tag": b"x: !!python/object:os.system {}\n" + PROJECTS_YAML.encode(),
    "a 5,000-digit number": PROJECTS_YAML.replace(
        "enabled: true", "enabled: " + "9" * 5000, 1
    ).encode(),
    "a date that does not exist": (PROJECTS_YAML + "    since: 2025-02-30\n").encode(),
    "a duplicated key": (PROJECTS_YAML + "projects: []\n").encode(),
    "NUL bytes": PROJECTS_YAML.encode() + b"\x00" * 64,
    "binary": bytes(range(256)) * 64,
    "invalid UTF-8": PROJECTS_YAML.encode().replace(b"Lawley", b"Law\xe9ley"),
    "a 2 MB file": (PROJECTS_YAML + "#" * 2_000_000 + "\n").encode(),
    "a drop pattern RE2 cannot run": (PROJECTS_YAML + "drop_pattern: '(DR)\\d+\\1'\n").encode(),
}
# What the path may turn into instead of a file.
SPECIAL_PATHS = {
    "a directory": lambda path: path.mkdir(),
    "a FIFO": lambda path: os.mkfifo(path),
    "a symlink to /dev/zero": lambda path: path.symlink_to("/dev/zero"),
}


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:", 1)[1].split()[0]) / 1024


def replace_config(path: Path, what: str) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    if what in SPECIAL_PATHS:
        SPECIAL_PATHS[what](path)
    else:
        path.write_bytes(HOSTILE_FILES[what])


@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_hostile_projects_file_keeps_the_service_on_its_last_good_config(
    tmp_path: Path, db_url: str
) -> None:
    site = make_site(tmp_path, db_url, None, None)
    post(site.messages_db, site.whatsapp_db, VELO, "DR40000000 before")
    store = site.store()
    process = site.start()
    results: list[str] = []
    rejected = "rejected, still monitoring"

    def reviews() -> set[str]:
        return {r["drop_number"] for r in store.reviews()}

    try:
        wait_until(lambda: "DR40000000" in reviews(), 60, "the first drop", process=process)
        baseline = rss_mb(process.pid)
        peak = baseline
        for n, what in enumerate([*HOSTILE_FILES, *SPECIAL_PATHS], start=1):
            before = process.log().count(rejected)
            written = time.monotonic()
            replace_config(site.config, what)
            wait_until(
                lambda before=before: process.log().count(rejected) > before,
                30,
                f"{what} to be rejected",
                process=process,
            )
            took = time.monotonic() - written
            line = [ln for ln in process.log().splitlines() if rejected in ln][-1]
            reason = line.split("last good file: ", 1)[-1].replace(str(site.config), "")
            drop = f"DR4000{n:04d}"
            post(site.messages_db, site.whatsapp_db, VELO, f"{drop} during {what}")
            wait_until(lambda drop=drop: drop in reviews(), 30, drop, process=process)
            peak = max(peak, rss_mb(process.pid))
            assert process.log().count(rejected) == before + 1  # one line, not one a poll
            assert len(line) < 500, line
            results.append(f"{what} → {reason[:70]!r} ({took:.1f} s)")
        replace_config(site.config, "a directory")
        site.config.rmdir()
        site.config.write_text(PROJECTS_YAML.replace("enabled: true", "enabled: false", 1))
        process.wait_log("projects file reloaded")
        assert process.stop() == 0
        log = process.log()
    finally:
        process.ensure_dead()
        store.dispose()
    figure(
        f"fault 6b hostile projects file ({len(results)} states written while running): each "
        f"rejected with one log line, drops still recorded with the last good config, RSS "
        f"{baseline:.0f} MB before, {peak:.0f} MB at most; a later valid edit applied; "
        + "; ".join(results)
    )
    assert "Traceback" not in log
    assert peak - baseline < 30, f"RSS grew from {baseline:.0f} to {peak:.0f} MB"


def run_command(
    site: Site, args: list[str], prefix: tuple[str, ...] = ()
) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [*prefix, *WA_MONITOR, *args],
        cwd=site.root,
        env=site.env(),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode, done.stderr, time.monotonic() - started


COMMANDS = [
    ["check-config"],
    ["projects", "list"],
    ["projects", "add", "--name", "New", "--group-jid", "120363400000000099@g.us"],
    ["projects", "disable", "Lawley"],
]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_command_refuses_a_hostile_projects_file_with_exit_2_and_its_line(
    tmp_path: Path, db_url: str
) -> None:
    site = make_site(tmp_path, db_url, None, None)
    slowest = check_config = 0.0
    told: list[str] = []
    for what in [*HOSTILE_FILES, *SPECIAL_PATHS]:
        replace_config(site.config, what)
        for args in COMMANDS:
            status, stderr, took = run_command(site, args)
            slowest = max(slowest, took)
            if args == ["check-config"]:
                check_config = max(check_config, took)
            assert status == 2, (what, args, stderr)
            assert stderr.startswith(f"error: {site.config}"), (what, args, stderr)
            assert "Traceback" not in stderr, (what, args, stderr)
        if what in HOSTILE_FILES and not what.startswith("a 2 MB"):
            assert stderr.startswith(f"error: {site.config}:"), stderr  # with its line
        told.append(f"{what} → {stderr.split(str(site.config), 1)[1][:60]!r}")
    figure(
        f"fault 6c hostile projects file and commands: {len(told)} kinds of file × "
        f"check-config, projects list/add/disable: exit 2, `file:line` (the file alone when "
        f"the whole file is refused), no traceback; check-config answered in {check_config:.2f} s "
        f"at most (the process included), the slowest command in {slowest:.2f} s; "
        + "; ".join(told)
    )


# Root reads any file; without the capabilities that let it (setpriv), it cannot either.
NO_DAC = (
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
)


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root, and no setpriv"
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unreadable_projects_file_is_named_as_such(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    site.config.chmod(0)
    prefix = ("setpriv", *NO_DAC) if os.geteuid() == 0 else ()
    results = []
    for args in COMMANDS:
        status, stderr, _ = run_command(site, args, prefix)
        assert status == 2, (args, stderr)
        assert "permission denied reading the projects file" in stderr, (args, stderr)
        assert "Traceback" not in stderr, stderr
        results.append(f"{args[-1] if len(args) < 3 else args[1]}: exit {status}")
    figure(
        "fault 6d an unreadable projects file (mode 000"
        + (", root without CAP_DAC_OVERRIDE" if prefix else "")
        + "): 'permission denied reading the projects file', "
        + "; ".join(results)
    )
