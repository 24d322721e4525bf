"""A drop pattern that freezes a backtracking engine, under the real `wa-monitor run`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.bridgeio import post
from tests.faults.conftest import backend_of, make_site
from tests.faults.support import PROJECT_NAMES, PROJECTS_YAML, figure, wait_until

VELO = list(PROJECT_NAMES)[1]
# Before RE2, this pattern took 30 s on a 31-character message, and twice as long for
# every digit more: the scan never reached the next message.
PATTERN = r"DR(\d+)+X"
EVIL = "DR" + "1" * 40


@pytest.mark.timeout(300)
def test_a_catastrophic_drop_pattern_does_not_freeze_the_scan(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    site.config.write_text(
        PROJECTS_YAML.replace(
            '    description: "Velo Test group"\n',
            f"    description: \"Velo Test group\"\n    drop_pattern: '{PATTERN}'\n",
        )
    )
    post(site.messages_db, site.whatsapp_db, VELO, "DR1X warm-up")
    store = site.store()
    process = site.start()
    try:
        wait_until(lambda: store.reviews(), 60, "the warm-up drop", process=process)
        posted = time.monotonic()
        post(site.messages_db, site.whatsapp_db, VELO, *[EVIL] * 20, f"{EVIL}X and DR7X")
        wait_until(
            lambda: {"DR7X", f"{EVIL}X"} <= {r["drop_number"] for r in store.reviews()},
            30,
            "the drops after 20 hostile messages",
            process=process,
        )
        took = time.monotonic() - posted
        assert process.stop() == 0
        log = process.log()
    finally:
        process.ensure_dead()
        store.dispose()
    figure(
        f"fault 9 catastrophic drop pattern ({backend_of(db_url)}): `{PATTERN}` on 20 "
        f"messages of {len(EVIL)} characters (a backtracking engine: 30 s at 31, doubling "
        f"with each more): the drops after them recorded {took:.2f} s after the post"
    )
    assert "Traceback" not in log
