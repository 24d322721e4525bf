"""`replay --record` on both review backends: drops a loosened pattern finds below the
scan's cursor are recorded exactly as a monitor scanning from scratch records them,
once, audited, with their photos linked by the monitor's own linker."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import LAWLEY, T0, VELO, Bridge, make_monitor, review_state, submissions
from tests.integration.test_ops_tools import Env, cli, yaml_for
from wa_monitor.core.config import load_config
from wa_monitor.monitor.photo_linker import PhotoLinker
from wa_monitor.monitor.projects_edit import audit_rows, os_actor
from wa_monitor.ops.replay import recorded_runs
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import config_audit, group_messages

# Accepts the 7-digit numbers of FIELD_NOTES 3.9 besides the default's 8 digits.
LOOSE = r"\bDR\s?\d{7,8}\b"


def _history(bridge: Bridge) -> None:
    """A day of posts: two drops only the loose pattern sees (one posted twice, with
    photos after it), and one both patterns see."""
    bridge.post(LAWLEY, "DR 1752169 done", when=T0)
    for minute in (1, 2):
        bridge.post(LAWLEY, None, media_type="image", when=T0 + timedelta(minutes=minute))
    bridge.post(LAWLEY, "DR12345678 pole", when=T0 + timedelta(hours=1))
    bridge.post(VELO, "DR 1752170", when=T0 + timedelta(hours=1, minutes=5))
    bridge.post(LAWLEY, "DR 1752169 fixed the cable", when=T0 + timedelta(hours=2))
    bridge.post(LAWLEY, None, media_type="image", when=T0 + timedelta(hours=2, minutes=1))
    bridge.post(LAWLEY, "DR12345678 again", when=T0 + timedelta(hours=3))


def _link(bridge: Bridge, store: ReviewStore, config_path: Path) -> None:
    """One round of the monitor's media worker: read the group rows, link the photos."""
    config = load_config(config_path)
    PhotoLinker(store, bridge.reader(), lambda: config).run_until_done()


def _links(store: ReviewStore) -> dict[str, tuple[Any, ...]]:
    g = group_messages
    with store.begin() as conn:
        rows = conn.execute(
            sa.select(g.c.message_id, g.c.drop_number, g.c.round, g.c.link_reason, g.c.review_id)
        ).all()
    return {r[0]: (r[1], r[2], r[3], r[4] is not None) for r in rows}


def _logged(store: ReviewStore) -> list[dict[str, Any]]:
    skip = ("id", "recorded_at")
    return [{k: v for k, v in row.items() if k not in skip} for row in submissions(store)]


def _audits(store: ReviewStore) -> int:
    with store.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(config_audit)).scalar() or 0)


@pytest.fixture
def reference_db(tmp_path: Path, sqlite_template: Path) -> str:
    """A second review database, for a monitor that had the loose pattern all along."""
    path = tmp_path / "reference.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def bridge(tmp_path: Path) -> Bridge:
    b = Bridge(tmp_path / "store")
    b.writer.add_chat(LAWLEY, "Lawley Activation 3")
    b.writer.add_chat(VELO, "Velo Test")
    return b


def test_replay_records_what_a_loosened_pattern_finds_below_the_cursor_once_and_audited(
    db_url: str, store: ReviewStore, reference_db: str, bridge: Bridge, tmp_path: Path
) -> None:
    projects = (("Lawley", LAWLEY), ("Velo Test", VELO))
    env = Env(tmp_path / "prod", db_url).write(
        yaml_for(*projects), WHATSAPP_DB_PATH=str(bridge.messages_db)
    )
    _history(bridge)
    make_monitor(bridge, db_url, load_config(env.config)).scan()
    _link(bridge, store, env.config)
    # The pattern is loosened; the monitor carries on from its cursor and finds nothing.
    env.config.write_text(yaml_for(*projects, pattern=LOOSE))
    rescan = make_monitor(bridge, db_url, load_config(env.config)).scan()
    assert rescan.drops == 0
    _link(bridge, store, env.config)

    base = ["--env-file", str(env.env_file), "--config", str(env.config), "replay"]
    since = (T0 - timedelta(hours=1)).isoformat()
    dry = cli(*base, "--since", since, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would record new: DR1752169 in Lawley" in dry.output
    assert "--record" in dry.output and "`scan` records" not in dry.output

    recorded = cli(*base, "--since", since, "--record")
    assert recorded.exit_code == 0, recorded.output
    assert "recorded new: DR1752169 in Lawley (2025-11-09 19:15 SAST" in recorded.output
    assert "recorded resubmission: DR1752169 in Lawley" in recorded.output
    assert "recorded new: DR1752170 in Velo Test" in recorded.output
    assert "recorded 2 new, 1 resubmission(s)" in recorded.output
    _link(bridge, store, env.config)

    # What a monitor with the loose pattern from the start records, and how it links.
    reference = ReviewStore(reference_db)
    try:
        make_monitor(bridge, reference_db, load_config(env.config)).scan()
        _link(bridge, reference, env.config)
        assert review_state(store) == review_state(reference)
        assert _logged(store) == _logged(reference)
        assert _links(store) == _links(reference)
    finally:
        reference.dispose()
    photos = [link for link in _links(store).values() if link[0] == "DR1752169"]
    assert len(photos) == 2 + 3  # its two posts and the three photos after them

    # Audited: who, how many, with which pattern; the projects file's history untouched.
    (run,) = recorded_runs(store)
    assert run["actor"] == os_actor()
    assert "2 new, 1 resubmission(s)" in run["diff"]
    assert f"Lawley: 1 new, 1 resubmission(s), pattern {LOOSE}" in run["diff"]
    assert f"Velo Test: 1 new, 0 resubmission(s), pattern {LOOSE}" in run["diff"]
    assert all(r["source"] != "replay" for r in audit_rows(store, env.config))

    # Idempotent: a second run records nothing and audits nothing.
    before = (review_state(store), _logged(store), _audits(store))
    again = cli(*base, "--since", since, "--record", "--json")
    assert again.exit_code == 0, again.output
    data = json.loads(again.output)
    assert data["recorded"] == {"new": 0, "resubmission": 0, "audited": False}
    assert data["would_record"] == []
    assert (review_state(store), _logged(store), _audits(store)) == before


def test_replay_asks_for_exactly_one_of_dry_run_and_record(
    db_url: str, store: ReviewStore, bridge: Bridge, tmp_path: Path
) -> None:
    env = Env(tmp_path / "prod", db_url).write(
        yaml_for(("Lawley", LAWLEY)), WHATSAPP_DB_PATH=str(bridge.messages_db)
    )
    bridge.post(LAWLEY, "DR12345678", when=T0)
    base = ["--env-file", str(env.env_file), "--config", str(env.config), "replay", "--since", "7d"]
    for flags in ((), ("--dry-run", "--record")):
        refused = cli(*base, *flags)
        assert refused.exit_code == 2, refused.output
        assert "--dry-run" in refused.output and "--record" in refused.output
    assert submissions(store) == []
