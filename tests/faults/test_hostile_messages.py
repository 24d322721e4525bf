"""Bad input, fuzzed through the whole monitor: whatever the bridge stores, a scan never
crashes, every drop the detector sees is recorded, and only canonical ASCII is stored."""

from __future__ import annotations

import re
import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import PROJECTS_YAML, VELO, config_from
from wa_monitor.bridge import BridgeStore
from wa_monitor.monitor import Monitor
from wa_monitor.simulate import create_bridge_store
from wa_monitor.store import ReviewStore

CANONICAL = re.compile(r"[A-Z0-9][A-Z0-9\-_/]{0,49}", re.ASCII)
CONFIG = config_from(PROJECTS_YAML)
PATTERN = CONFIG.by_group()[VELO].pattern

hostile_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
        st.sampled_from(
            [
                "DR12345678",
                "\x00",
                "DR8765432\x001",
                "<script>alert(1)</script>",
                "'; DROP --",
                "\u202e",
                "DR١٢٣٤٥٦٧٨",
                " DR11112222 ",
                "𝐃𝐑12345678",
                "\x00DR99990000",
            ]
        ),
    ),
    max_size=8,
).map("".join)
user = st.one_of(st.from_regex(r"\A[0-9]{6,15}\Z"), st.text(max_size=12))
sender = st.builds(
    lambda u, form: form.format(u=u),
    user,
    st.sampled_from(["{u}", "{u}@s.whatsapp.net", "{u}:7@s.whatsapp.net", "{u}@lid", "", "@"]),
)
timestamp = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.sampled_from(
        [
            "2025-11-09 19:15:30+02:00",
            "2025-11-09 19:15:30.123456789+02:00",
            "garbage",
            "2025-13-45 99:99:99",
            "2025-11-09T17:15:30Z",
            "\x00",
        ]
    ),
)
message = st.tuples(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),  # id
    sender,
    st.one_of(st.none(), hostile_text),
    timestamp,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(message, min_size=1, max_size=12), big=st.booleans())
def test_any_bridge_content_is_scanned_without_loss(
    db_url: str, messages: list[tuple[str, str, str | None, str | None]], big: bool
) -> None:
    store = ReviewStore(db_url)
    with store.engine.begin() as c:  # each example starts from an empty review table
        for table in ("drop_submissions", "qa_photo_reviews", "scan_cursors"):
            c.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "messages.db"
        create_bridge_store(path)
        conn = sqlite3.connect(path)
        try:
            rows = [(mid, VELO, s, c, t, False, "") for mid, s, c, t in messages]
            if big:  # a 1 MB message with a drop at its very end
                rows.append(
                    ("BIG", VELO, "27820000000", "x" * 1_000_000 + " DR10101010", None, 0, "")
                )
            conn.executemany(
                "INSERT OR REPLACE INTO messages (id, chat_jid, sender, content, timestamp, "
                "is_from_me, media_type) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.commit()
            stored = conn.execute("SELECT content FROM messages").fetchall()
        finally:
            conn.close()
        bridge = BridgeStore(path)
        bridge.open()
        try:
            Monitor(CONFIG, bridge, store).scan()
            reviews = store.reviews()
        finally:
            bridge.close()
            store.dispose()
    recorded = {r["drop_number"] for r in reviews}
    for r in reviews:
        assert r["drop_number"].isascii() and CANONICAL.fullmatch(r["drop_number"])
        assert "\x00" not in r["user_name"] and "\x00" not in (r["submitted_by"] or "")
    expected = {d for (content,) in stored for d in PATTERN.find(content)}
    missing = expected - recorded
    assert not missing, (missing, stored)


def test_invalid_utf8_in_the_store_does_not_stop_the_scan(db_url: str, tmp_path: Path) -> None:
    """Go strings are bytes: a row that is not UTF-8 must not block every later drop."""
    path = tmp_path / "messages.db"
    create_bridge_store(path)
    bad = "CAST(x'445231313131313131318081ff' AS TEXT)"  # "DR11111111" + invalid bytes
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "INSERT INTO messages (id, chat_jid, sender, content, timestamp) VALUES "  # noqa: S608
            f"(CAST(x'41ff' AS TEXT), ?, CAST(x'3237ff' AS TEXT), {bad}, CAST(x'32ff' AS TEXT))",
            (VELO,),
        )
        conn.execute(
            "INSERT INTO messages (id, chat_jid, sender, content, timestamp) VALUES "
            "('B2', ?, '27820000001', 'DR22222222 after the bad row', '2025-11-09 19:15:30+02:00')",
            (VELO,),
        )
        conn.commit()
    finally:
        conn.close()
    bridge = BridgeStore(path)
    bridge.open()
    store = ReviewStore(db_url)
    try:
        summary = Monitor(CONFIG, bridge, store).scan()
        drops = sorted(r["drop_number"] for r in store.reviews())
    finally:
        bridge.close()
        store.dispose()
    assert drops == ["DR11111111", "DR22222222"]
    assert summary.messages == 2
