"""Text from outside (a WhatsApp sender's name, a user name typed into the sign-in form)
cannot forge log lines of `wa-monitor run` and `wa-monitor serve`, in text or JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.faults.bridgeio import message, post
from tests.faults.conftest import backend_of, make_site
from tests.faults.support import PROJECT_NAMES, figure, wait_until
from tests.faults.test_sign_in import attempt, login_form, serving
from wa_monitor.sim import Member, StoreWriter

VELO = list(PROJECT_NAMES)[1]
RECORD = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - "
)
# Each pretends to be a record of its own, after a line break of one kind or another.
FAKE = "2026-01-01 00:00:00,000 SAST - ERROR - ❌ review database wiped by {}"
BREAKS = {"LF": "\n", "CR LF": "\r\n", "U+2028": "\u2028", "NEL": "\x85", "VT": "\x0b"}


def records(text: str, log_format: str) -> list[str]:
    """The log's records' messages, checking that every line is one record."""
    messages = []
    for line in text.splitlines():
        if log_format == "json":
            entry = json.loads(line)
            assert set(entry) <= {"time", "level", "logger", "message", "exception"}, line
            messages.append(entry["message"])
        elif line.startswith("    "):
            continue  # a traceback's line, indented under its record
        else:
            assert RECORD.match(line), f"a line that is not a record: {line!r}"
            messages.append(line.split(" - ", 2)[2])
    return messages


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_senders_name_cannot_forge_monitor_log_lines(
    tmp_path: Path, db_url: str, log_format: str
) -> None:
    site = make_site(tmp_path, db_url, None, None)
    names = {kind: f"Thabo{brk}{FAKE.format(kind)}\x1b[1A\r" for kind, brk in BREAKS.items()}
    post(site.messages_db, site.whatsapp_db, VELO, "DR41000000")  # creates the stores
    with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
        writer.add_members(
            Member(f"2782000010{n}", push_name=name) for n, name in enumerate(names.values())
        )
    store = site.store()
    process = site.start(LOG_FORMAT=log_format)
    try:
        wait_until(lambda: len(store.reviews()) == 1, 60, "the first drop", process=process)
        # Each hostile sender resubmits the drop: the monitor logs who did.
        with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
            for n in range(len(names)):
                writer.write(
                    message(writer, VELO, "DR41000000 again", 10 + n, sender=f"2782000010{n}")
                )
        wait_until(
            lambda: process.log().count("Resubmission of DR41000000") >= len(names),
            60,
            "the resubmissions in the log",
            process=process,
        )
        assert process.stop() == 0
        text = process.log()
    finally:
        process.ensure_dead()
        store.dispose()
    messages = records(text, log_format)
    forged = [m for m in messages if m.startswith("❌ review database wiped")]
    resubmissions = [m for m in messages if m.startswith("🔄 Resubmission of DR41000000")]
    assert forged == [], forged
    assert len(resubmissions) == len(names), resubmissions
    figure(
        f"log forging, `run` {backend_of(db_url)} ({log_format}): {len(names)} senders named "
        f"with a fake record after {', '.join(BREAKS)} (+ ESC[1A, CR): "
        f"{len(text.splitlines())} lines, every one a record; 0 forged; e.g. "
        f"{resubmissions[0][-70:]!r}"
    )


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_user_name_cannot_forge_serve_log_lines(
    tmp_path: Path, db_url: str, log_format: str
) -> None:
    with (
        serving(tmp_path, db_url, LOG_FORMAT=log_format) as site,
        httpx.Client(base_url=site.base, follow_redirects=False) as client,
    ):
        csrf = login_form(client)
        for kind, brk in BREAKS.items():
            name = f"eve{brk}{FAKE.format(kind)}"
            assert attempt(client, csrf, name, "guess").status_code in (401, 429)
        text = site.log_file.read_text(encoding="utf-8")
    messages = records(text, log_format)
    failed = [m for m in messages if "sign-in" in m.lower()]
    assert [m for m in messages if m.startswith("❌ review database wiped")] == []
    assert len(failed) == len(BREAKS), failed
    figure(
        f"log forging, `serve` {backend_of(db_url)} ({log_format}): {len(BREAKS)} sign-ins "
        f"as user names with a fake record after {', '.join(BREAKS)}: "
        f"{len(text.splitlines())} lines, every one a record; 0 forged"
    )
