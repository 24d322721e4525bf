"""Fault 6: the projects file edited into an invalid state while `wa-monitor run` runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.bridgeio import post
from tests.faults.conftest import make_site
from tests.faults.support import PROJECT_NAMES, PROJECTS_YAML, figure, wait_until

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
