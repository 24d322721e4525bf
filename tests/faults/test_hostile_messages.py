"""Bad input, fuzzed through the whole monitor: whatever the bridge stores, a scan never
crashes, every drop the detector sees is recorded, and only canonical ASCII is stored.

The whole-row test writes rows in which every column may hold any SQLite storage class
(NULL, INTEGER, REAL, TEXT, BLOB), at rowids with gaps up to 2^63-1, in stores with the
bridge's schema and in foreign-made ones without declared types."""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.support import figure
from tests.helpers import OTHER, PROJECTS_YAML, VELO, config_from
from tests.helpers import submissions as read_submissions
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sim import MESSAGES_SCHEMA, create_bridge_store
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.review_store import ReviewStore

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


# -- whole rows: any storage class in any column -------------------------------------------

COLUMNS = (
    "id", "chat_jid", "sender", "content", "timestamp", "is_from_me", "media_type",
    "filename", "url", "media_key", "file_sha256", "file_enc_sha256", "file_length",
)  # fmt: skip
# A store made by something other than the bridge: no declared types, so no affinity turns
# numbers into text, and every column keeps whatever storage class was written.
UNTYPED_SCHEMA = (
    "CREATE TABLE chats (jid, name, last_message_time);"
    f"CREATE TABLE messages ({', '.join(COLUMNS)}, PRIMARY KEY (id, chat_jid));"
)
T_NORMAL = "2025-11-09 19:15:30+02:00"
EARLIEST, LATEST = datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)

sqlite_value = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20),
    hostile_text,
    st.binary(max_size=20),
    hostile_text.map(lambda t: t.encode("utf-8")),  # text, drops included, in a BLOB
)
odd_timestamp = st.one_of(
    sqlite_value,
    timestamp,
    st.sampled_from(
        [
            1731172530,  # epoch seconds
            1731172530123,  # epoch milliseconds
            -5,
            1731172530.5,
            float("inf"),
            float("nan"),
            b"2025-11-09 19:15:30+02:00",
            "9999-12-31 23:59:59+00:00",
            "9999-12-31 23:59:59-05:00",
            "0001-01-01 00:00:00+05:00",
            "1731172530",
        ]
    ),
)
odd_chat = st.one_of(
    st.sampled_from(
        [VELO, VELO.encode(), OTHER, OTHER.encode(), VELO + " ", b"\xff" + VELO.encode()]
    ),
    sqlite_value,
)
odd_row = st.fixed_dictionaries(
    {
        "id": sqlite_value,
        "chat_jid": odd_chat,
        "sender": st.one_of(sender, sender.map(lambda t: t.encode("utf-8")), sqlite_value),
        "content": st.one_of(sqlite_value, hostile_text),
        "timestamp": odd_timestamp,
        **{c: sqlite_value for c in COLUMNS[5:]},
    }
)
# Gaps of every size between rowids: neighbours, a million, 10^12, up to 2^63-1 itself.
rowid_step = st.one_of(
    st.integers(1, 3),
    st.integers(1, 10**6),
    st.just(10**12),
    st.integers(1, 2**62),
    st.just(2**63 - 1),  # clamped: the last rows get the largest rowids
)
# None: a normal drop message (as the bridge writes it); otherwise a hostile row.
row_plan = st.lists(st.one_of(st.none(), odd_row), min_size=1, max_size=14)


def _storage_class(value: object) -> str:
    return {type(None): "NULL", int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}[
        type(value)
    ]


def _as_read(value: object) -> str | None:
    """The text a reader can get out of a stored value (the test's own decoding)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _write_rows(
    path: Path, typed: bool, plan: list[dict[str, Any] | None], steps: list[int]
) -> tuple[dict[str, str], int]:
    """Write `plan` at rowids growing by `steps`; returns the normal drops (id → drop)."""
    schema = MESSAGES_SCHEMA if typed else UNTYPED_SCHEMA
    conn = sqlite3.connect(path, isolation_level=None)
    normal: dict[str, str] = {}
    rowid = 0
    try:
        conn.executescript(schema)
        conn.execute("BEGIN")
        for index, (row, step) in enumerate(zip(plan, steps, strict=True)):
            rowid = min(rowid + step, 2**63 - 1 - (len(plan) - index - 1))
            if row is None:
                message_id, drop = f"NORMAL-{index:03d}", f"DR7{index:07d}"
                normal[message_id] = drop
                conn.execute(
                    "INSERT OR REPLACE INTO messages (rowid, id, chat_jid, sender, content, "
                    "timestamp) VALUES (?, ?, ?, '27820000001', ?, ?)",
                    (rowid, message_id, VELO, f"Pole done {drop}", T_NORMAL),
                )
            else:
                marks = ", ".join("?" * (len(COLUMNS) + 1))
                conn.execute(
                    f"INSERT OR IGNORE INTO messages (rowid, {', '.join(COLUMNS)}) "  # noqa: S608
                    f"VALUES ({marks})",
                    (rowid, *(row[c] for c in COLUMNS)),
                )
        conn.execute("COMMIT")
        # A hostile row with the key of an earlier one was ignored: the end is what is stored.
        last = int(conn.execute("SELECT max(rowid) FROM messages").fetchone()[0])
    finally:
        conn.close()
    return normal, last


def _stored(path: Path) -> list[tuple[object, object]]:
    """(chat, content) of every stored row; text as its bytes, whatever its encoding."""
    conn = sqlite3.connect(path)
    conn.text_factory = bytes
    try:
        return [tuple(r) for r in conn.execute("SELECT chat_jid, content FROM messages")]
    finally:
        conn.close()


def test_whole_rows_of_any_storage_class_never_stop_or_stall_a_scan(db_url: str) -> None:
    """Rows where any column holds anything, mixed with normal drops: every normal drop is
    recorded exactly once, every drop in readable text is found, the cursor reaches the end
    and a second scan finds the store unchanged (no endless rescan)."""
    stats: Counter[str] = Counter()

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(plan=row_plan, typed=st.booleans(), data=st.data())
    def check(plan: list[dict[str, Any] | None], typed: bool, data: st.DataObject) -> None:
        steps = data.draw(st.lists(rowid_step, min_size=len(plan), max_size=len(plan)))
        store = ReviewStore(db_url)
        with store.engine.begin() as c:  # each example starts from an empty review table
            for table in ("drop_submissions", "qa_photo_reviews", "scan_cursors"):
                c.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "messages.db"
            normal, last = _write_rows(path, typed, plan, steps)
            stored = _stored(path)
            bridge = BridgeStore(path)
            bridge.open()
            try:
                monitor = Monitor(CONFIG, bridge, store)
                first = monitor.scan()
                again = Monitor(CONFIG, bridge, store).scan()
                reviews = store.reviews()
                submissions = read_submissions(store)
                cursors = store.load_cursors()
            finally:
                bridge.close()
                store.dispose()
        stats["examples"] += 1
        stats["normal drops"] += len(normal)
        stats["rows"] += len(plan)
        stats["typed stores" if typed else "untyped stores"] += 1
        for row in plan:
            for column in ("id", "chat_jid", "sender", "content", "timestamp"):
                if row is not None:
                    stats[f"{_storage_class(row[column])}"] += 1
        stats["at 2^63-1"] += last == 2**63 - 1
        recorded = {r["drop_number"] for r in reviews}
        logged = Counter((s["chat_jid"], s["message_id"], s["drop_number"]) for s in submissions)
        for message_id, drop in normal.items():
            assert drop in recorded, (drop, plan)
            assert logged[(VELO, message_id, drop)] == 1, (message_id, drop, plan)
        expected = {
            d
            for chat, content in stored
            if chat == VELO.encode()  # the group's JID as TEXT or as a BLOB
            for d in PATTERN.find(_as_read(content))
        }
        assert expected <= recorded, (expected - recorded, stored)
        for r in reviews:
            assert CANONICAL.fullmatch(r["drop_number"]), r
            assert EARLIEST <= r["whatsapp_message_date"] <= LATEST, r
            assert "\x00" not in r["user_name"] and "\x00" not in (r["submitted_by"] or "")
        assert cursors[VELO].last_rowid == last
        assert not first.skipped, first.skipped  # every value here has a reading
        assert not first.rescanned and not again.rescanned
        assert again.drops == 0 and not again.skipped

    check()
    figure(
        f"whole rows ({'sqlite' if db_url.startswith('sqlite') else 'postgresql'}): "
        f"{stats['examples']} generated stores ({stats['typed stores']} with the bridge's "
        f"schema, {stats['untyped stores']} without types), {stats['rows']} rows, read "
        f"columns by storage class NULL {stats['NULL']}, INTEGER {stats['INTEGER']}, REAL "
        f"{stats['REAL']}, TEXT {stats['TEXT']}, BLOB {stats['BLOB']}; rowid gaps up to "
        f"2^62, {stats['at 2^63-1']} stores ending at rowid 2^63-1: {stats['normal drops']} "
        "normal drops each recorded exactly once, every drop in readable text found, no "
        "crash, no rescan"
    )
