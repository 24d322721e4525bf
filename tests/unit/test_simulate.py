"""The simulated bridge store looks like the real one, and its truth matches its rows."""

from __future__ import annotations

import hashlib
import itertools
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.sim import (
    ALL_DROP_FORMATS,
    DEFAULT_DROP_PATTERN,
    DEMO_GROUPS,
    VARIANT_DROP_PATTERN,
    LiveSimulator,
    MessageRow,
    SimEvent,
    SimTruth,
    SteppingClock,
    StoreWriter,
    bench_groups,
    create_bridge_store,
    format_bridge_timestamp,
    generate_store,
    normalise_drop,
    parse_bridge_timestamp,
)

SAST = ZoneInfo("Africa/Johannesburg")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,9})?[+-]\d\d:\d\d$")
FRACTION = re.compile(r"(\.\d{6})\d+")
MESSAGE_ID = re.compile(r"^(?:[0-9A-F]{20}|[0-9A-F]{32})$")
LOOSE_DROP = re.compile(r"(?i)\bdr\s?\d")


def parse(text: str) -> datetime:
    """What a reader does: trim the fraction to 6 digits, then fromisoformat."""
    return datetime.fromisoformat(FRACTION.sub(r"\1", text))


@dataclass
class Store:
    messages_db: Path
    whatsapp_db: Path
    truth: SimTruth


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    base = tmp_path_factory.mktemp("sim")
    truth = generate_store(base / "messages.db", base / "whatsapp.db", n_messages=20_000, seed=11)
    return Store(base / "messages.db", base / "whatsapp.db", truth)


def rows(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def text_rows(db: Path) -> list[tuple[int, str, str, str, str | None, str, str]]:
    """(rowid, chat_jid, id, sender, content, timestamp, media_type) in rowid order."""
    return [
        (
            int(str(r[0])),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            None if r[4] is None else str(r[4]),
            str(r[5]),
            str(r[6]),
        )
        for r in rows(
            db,
            "SELECT rowid, chat_jid, id, sender, content, timestamp, media_type FROM messages "
            "ORDER BY rowid",
        )
    ]


def expected_drops(
    messages_db: Path, whatsapp_db: Path, pattern: str
) -> dict[tuple[str, str], tuple[int, datetime, datetime, str, str]]:
    """An independent reading of the store: (group, drop) → posts, first, last, phone, name."""
    lids = dict(rows(whatsapp_db, "SELECT lid, pn FROM whatsmeow_lid_map"))
    names: dict[object, str] = {}
    for jid, full, push, given in rows(
        whatsapp_db, "SELECT their_jid, full_name, push_name, first_name FROM whatsmeow_contacts"
    ):
        name = full or push or given
        if isinstance(name, str):
            names[jid] = name
    regex = re.compile(pattern)
    posts: dict[tuple[str, str], set[str]] = {}
    first: dict[tuple[str, str], datetime] = {}
    last: dict[tuple[str, str], tuple[datetime, str, str]] = {}
    for _rowid, chat, msg_id, sender, content, ts, _media in text_rows(messages_db):
        if not content:
            continue
        when = parse(ts)
        phone = str(lids.get(sender.split("@", 1)[0], sender.split("@", 1)[0]))
        name = names.get(f"{phone}@s.whatsapp.net", phone)
        for match in regex.finditer(content):
            key = (chat, normalise_drop(match.group(0)))
            posts.setdefault(key, set()).add(msg_id)
            first[key] = min(first.get(key, when), when)
            if key not in last or when > last[key][0]:
                last[key] = (when, phone, name)
    return {k: (len(v), first[k], *last[k]) for k, v in posts.items()}


def truth_table(truth: SimTruth) -> dict[tuple[str, str], tuple[int, datetime, datetime, str, str]]:
    return {
        key: (t.posts, t.first_posted, t.last_posted, t.last_phone, t.last_name)
        for key, t in truth.drops.items()
    }


# -- schema ---------------------------------------------------------------------------


def test_schema_is_exactly_the_bridges(tmp_path: Path) -> None:
    messages_db, whatsapp_db = tmp_path / "store" / "messages.db", tmp_path / "whatsapp.db"
    create_bridge_store(messages_db, whatsapp_db)
    create_bridge_store(messages_db, whatsapp_db)  # IF NOT EXISTS: a second run is harmless

    assert rows(messages_db, "PRAGMA table_info(chats)") == [
        (0, "jid", "TEXT", 0, None, 1),
        (1, "name", "TEXT", 0, None, 0),
        (2, "last_message_time", "TIMESTAMP", 0, None, 0),
    ]
    assert rows(messages_db, "PRAGMA table_info(messages)") == [
        (0, "id", "TEXT", 0, None, 1),
        (1, "chat_jid", "TEXT", 0, None, 2),
        (2, "sender", "TEXT", 0, None, 0),
        (3, "content", "TEXT", 0, None, 0),
        (4, "timestamp", "TIMESTAMP", 0, None, 0),
        (5, "is_from_me", "BOOLEAN", 0, None, 0),
        (6, "media_type", "TEXT", 0, None, 0),
        (7, "filename", "TEXT", 0, None, 0),
        (8, "url", "TEXT", 0, None, 0),
        (9, "media_key", "BLOB", 0, None, 0),
        (10, "file_sha256", "BLOB", 0, None, 0),
        (11, "file_enc_sha256", "BLOB", 0, None, 0),
        (12, "file_length", "INTEGER", 0, None, 0),
    ]
    assert rows(messages_db, "PRAGMA foreign_key_list(messages)") == [
        (0, 0, "chats", "chat_jid", "jid", "NO ACTION", "NO ACTION", "NONE")
    ]
    # Only the primary keys' automatic indexes: no index on chat_jid.
    assert rows(messages_db, "SELECT name FROM sqlite_master WHERE type = 'index'") == [
        ("sqlite_autoindex_chats_1",),
        ("sqlite_autoindex_messages_1",),
    ]
    assert rows(messages_db, "PRAGMA journal_mode") == [("delete",)]

    assert rows(whatsapp_db, "PRAGMA table_info(whatsmeow_lid_map)") == [
        (0, "lid", "TEXT", 0, None, 1),
        (1, "pn", "TEXT", 1, None, 0),
    ]
    assert [r[3] for r in rows(whatsapp_db, "PRAGMA index_list(whatsmeow_lid_map)")] == [
        "u",
        "pk",
    ]
    assert rows(whatsapp_db, "PRAGMA table_info(whatsmeow_contacts)") == [
        (0, "our_jid", "TEXT", 0, None, 1),
        (1, "their_jid", "TEXT", 0, None, 2),
        (2, "first_name", "TEXT", 0, None, 0),
        (3, "full_name", "TEXT", 0, None, 0),
        (4, "push_name", "TEXT", 0, None, 0),
        (5, "business_name", "TEXT", 0, None, 0),
    ]


def test_older_bridge_has_no_lid_map_and_no_lid_senders(tmp_path: Path) -> None:
    truth = generate_store(
        tmp_path / "m.db", tmp_path / "w.db", n_messages=2_000, seed=5, with_lid_map=False
    )
    tables = {r[0] for r in rows(tmp_path / "w.db", "SELECT name FROM sqlite_master")}
    assert "whatsmeow_lid_map" not in tables
    assert "whatsmeow_contacts" in tables
    users = {r[3].split("@", 1)[0] for r in text_rows(tmp_path / "m.db")}
    assert all(re.fullmatch(r"27\d{9}", u) for u in users)
    assert all(m.lid is None for m in truth.members)


def test_generated_store_keeps_the_rollback_journal(store: Store) -> None:
    assert rows(store.messages_db, "PRAGMA journal_mode") == [("delete",)]
    assert not store.messages_db.with_name("messages.db-wal").exists()


# -- determinism ----------------------------------------------------------------------


def dump(messages_db: Path, whatsapp_db: Path) -> tuple[list[tuple[object, ...]], ...]:
    return (
        rows(messages_db, "SELECT rowid, * FROM messages ORDER BY rowid"),
        rows(messages_db, "SELECT * FROM chats ORDER BY jid"),
        rows(whatsapp_db, "SELECT * FROM whatsmeow_contacts ORDER BY their_jid"),
        rows(whatsapp_db, "SELECT * FROM whatsmeow_lid_map ORDER BY lid"),
    )


def test_same_seed_same_store_different_seed_different_store(tmp_path: Path) -> None:
    results = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        (tmp_path / name).mkdir()
        truth = generate_store(
            tmp_path / name / "m.db", tmp_path / name / "w.db", n_messages=3_000, seed=seed
        )
        results.append((dump(tmp_path / name / "m.db", tmp_path / name / "w.db"), truth))
    (a, truth_a), (b, truth_b), (c, truth_c) = results
    assert a == b
    assert truth_a == truth_b
    assert len(a[0]) == 3_000
    assert a[0][-1][0] == 3_000 + truth_a.redeliveries  # the last rowid
    assert a[0] != c[0]
    assert truth_a.drops != truth_c.drops


# What seed 1 writes (5,000 messages, every drop format): the benchmarks cache stores by
# size and seed and compare figures across versions of the code, so a change to what a
# seed writes must be deliberate. Python's random streams are stable for a given seed.
PINNED_ROWS_SHA256 = "de620569259380a7812f9b5301aa42d88ef9e135940af1b32575ea4eaf582cc1"


def test_a_seed_writes_the_rows_it_always_wrote(tmp_path: Path) -> None:
    truth = generate_store(
        tmp_path / "m.db",
        tmp_path / "w.db",
        n_messages=5_000,
        seed=1,
        drop_formats=ALL_DROP_FORMATS,
    )
    digest = hashlib.sha256(repr(dump(tmp_path / "m.db", tmp_path / "w.db")).encode()).hexdigest()
    assert (digest, len(truth.drops)) == (PINNED_ROWS_SHA256, 48)


# -- truth ----------------------------------------------------------------------------


def test_truth_matches_an_independent_reading_of_the_store(store: Store) -> None:
    expected = expected_drops(store.messages_db, store.whatsapp_db, DEFAULT_DROP_PATTERN)
    assert truth_table(store.truth) == expected
    assert len(expected) > 100
    # Resubmissions and re-posts by someone else exist, so "latest" is exercised.
    assert sum(1 for t in store.truth.drops.values() if t.resubmitted) > 20


def test_totals_match_the_table(store: Store) -> None:
    truth = store.truth
    [(count, max_rowid)] = rows(store.messages_db, "SELECT count(*), max(rowid) FROM messages")
    assert count == truth.messages == 20_000
    # INSERT OR REPLACE gives every re-delivery a fresh rowid and deletes the old row.
    assert isinstance(max_rowid, int)
    assert max_rowid - count == truth.redeliveries > 0
    [(media,)] = rows(store.messages_db, "SELECT count(*) FROM messages WHERE media_type != ''")
    assert media == truth.media_rows
    assert 0.07 < truth.media_rows / truth.messages < 0.13
    assert 0.007 < truth.drop_posts / truth.messages < 0.013
    by_group = Counter(r[1] for r in text_rows(store.messages_db))
    assert set(by_group) == {g.jid for g in DEMO_GROUPS}
    assert max(by_group.values()) > 1.5 * min(by_group.values())  # busy and quiet groups


def test_default_pattern_finds_every_drop_and_chatter_names_none(store: Store) -> None:
    strict = re.compile(DEFAULT_DROP_PATTERN)
    for *_, content, _ts, _media in text_rows(store.messages_db):
        if content:
            loose = {normalise_drop(m.group(0)) for m in re.finditer(r"(?i)\bdr\s?\d+", content)}
            assert loose == set(strict.findall(content)), content


def test_chats_rows_name_each_group_with_its_latest_message(store: Store) -> None:
    latest: dict[str, datetime] = {}
    for _rowid, chat, *_, ts, _media in text_rows(store.messages_db):
        when = parse(ts)
        latest[chat] = max(latest.get(chat, when), when)
    chats = rows(store.messages_db, "SELECT jid, name, last_message_time FROM chats")
    assert {jid: name for jid, name, _ in chats} == {g.jid: g.name for g in DEMO_GROUPS}
    assert {jid: parse(str(last)) for jid, _, last in chats} == latest


# -- what a reader must cope with -----------------------------------------------------


def test_timestamps_are_go_sqlite3_text_in_the_bridge_zone(store: Store) -> None:
    texts = [r[5] for r in text_rows(store.messages_db)]
    assert all(TIMESTAMP.match(t) for t in texts)
    parsed = [parse(t) for t in texts]
    assert all(p.utcoffset() == timedelta(hours=2) for p in parsed)
    fractions = [t for t in texts if "." in t]
    assert 0.01 < len(fractions) / len(texts) < 0.06
    assert any(len(t.split(".")[1]) > 6 + 6 for t in fractions)  # 7-9 digits + "+02:00"
    assert all(not t.split(".")[1][:-6].endswith("0") for t in fractions)  # Go trims zeros
    assert store.truth.first_time == min(parsed)


def test_timestamps_follow_the_zones_daylight_saving(tmp_path: Path) -> None:
    london = ZoneInfo("Europe/London")
    generate_store(
        tmp_path / "m.db",
        None,
        n_messages=2_000,
        seed=2,
        tz="Europe/London",
        start=datetime(2025, 10, 25, 20, 0, tzinfo=london),
        mean_gap_s=60,
    )
    texts = [r[5] for r in text_rows(tmp_path / "m.db")]
    assert {t[-6:] for t in texts} == {"+01:00", "+00:00"}
    for text in texts:
        when = parse(text)
        assert when.utcoffset() == when.astimezone(london).utcoffset(), text


def test_format_and_parse_bridge_timestamps() -> None:
    when = datetime(2025, 11, 9, 17, 15, 30, tzinfo=UTC)
    assert format_bridge_timestamp(when, SAST) == "2025-11-09 19:15:30+02:00"
    text = format_bridge_timestamp(when, SAST, nanos=123_456_789)
    assert text == "2025-11-09 19:15:30.123456789+02:00"
    assert format_bridge_timestamp(when, SAST, nanos=120_000_000) == "2025-11-09 19:15:30.12+02:00"
    assert parse_bridge_timestamp(text) == when.replace(microsecond=123_456)
    assert parse_bridge_timestamp("2025-11-09 19:15:30.5+02:00") == when.replace(
        microsecond=500_000
    )


def test_senders_mix_user_parts_and_jids_and_lids_are_mapped(store: Store) -> None:
    lids = dict(rows(store.whatsapp_db, "SELECT lid, pn FROM whatsmeow_lid_map"))
    phones = {m.phone for m in store.truth.members}
    senders = {r[3] for r in text_rows(store.messages_db)}
    forms = Counter(
        "lid-jid"
        if s.endswith("@lid")
        else "phone-jid"
        if s.endswith("@s.whatsapp.net")
        else "lid"
        if s in lids
        else "phone"
        for s in senders
    )
    assert all(forms[f] > 0 for f in ("lid-jid", "phone-jid", "lid", "phone")), forms
    for sender in senders:
        user = sender.split("@", 1)[0]
        assert user in lids or user in phones, sender
        if sender.endswith("@lid") or len(user) == 15:
            assert user in lids, sender
    assert set(lids.values()) <= phones
    # LIDs are digits too: a phone-number test cannot tell them apart.
    assert all(str(lid).isdigit() for lid in lids)
    members_with_lid = sum(1 for m in store.truth.members if m.lid is not None)
    assert 0.15 < members_with_lid / len(store.truth.members) < 0.45


def test_contacts_have_full_push_first_or_no_name(store: Store) -> None:
    contacts = {
        r[0]: r[1:]
        for r in rows(
            store.whatsapp_db,
            "SELECT their_jid, full_name, push_name, first_name FROM whatsmeow_contacts",
        )
    }
    assert all(str(jid).endswith("@s.whatsapp.net") for jid in contacts)
    kinds = Counter(
        "full" if c[0] else "push" if c[1] else "first" if c[2] else "?" for c in contacts.values()
    )
    assert kinds["full"] and kinds["push"] and kinds["first"] and not kinds["?"]
    unnamed = [m for m in store.truth.members if m.jid not in contacts]
    assert any(m.display_name == m.phone for m in unnamed)


def test_media_rows_have_empty_or_null_content(store: Store) -> None:
    media = rows(
        store.messages_db,
        "SELECT content, media_type, filename, url, length(media_key), file_length "
        "FROM messages WHERE media_type != ''",
    )
    assert {r[0] for r in media} == {"", None}
    types = Counter(r[1] for r in media)
    assert set(types) <= {"image", "video", "audio", "document"}
    assert types["image"] > 0.6 * len(media) and types["video"] and types["document"]
    assert all(r[2] and str(r[3]).startswith("https://mmg.whatsapp.net/") for r in media)
    assert all(r[4] == 32 and isinstance(r[5], int) and r[5] > 0 for r in media)
    text = rows(
        store.messages_db,
        "SELECT DISTINCT media_type, filename, url, media_key, file_length FROM messages "
        "WHERE media_type = ''",
    )
    assert text == [("", "", "", None, 0)]


def test_drop_posts_are_followed_by_photos(store: Store) -> None:
    table = text_rows(store.messages_db)
    strict = re.compile(DEFAULT_DROP_PATTERN)
    posts = followed = 0
    for here, after in itertools.pairwise(table):
        if here[4] and strict.search(here[4]) and "@" not in here[3]:
            posts += 1
            followed += after[1] == here[1] and after[3] == here[3] and after[6] == "image"
    assert posts > 100
    assert followed > 0.8 * posts


def test_message_ids_are_random_hex_not_ordered_in_time(store: Store) -> None:
    table = text_rows(store.messages_db)
    ids = [r[2] for r in table]
    assert all(MESSAGE_ID.match(i) for i in ids)
    lengths = Counter(len(i) for i in ids)
    assert lengths[20] > lengths[32] > 0
    rising = sum(a < b for a, b in itertools.pairwise(ids))
    assert 0.3 < rising / len(ids) < 0.7
    # An "id > last id" cursor after the 1000th message misses later messages.
    cursor = ids[999]
    assert sum(1 for i in ids[1000:] if i <= cursor) > 100


def test_history_synced_rows_are_old_with_new_rowids(store: Store) -> None:
    newest_so_far: datetime | None = None
    late = 0
    for _rowid, _chat, _id, sender, _content, ts, _media in text_rows(store.messages_db):
        when = parse(ts)
        if "@" in sender:
            assert newest_so_far is not None and when < newest_so_far, ts
            late += 1
        newest_so_far = when if newest_so_far is None else max(newest_so_far, when)
    truth = store.truth
    assert truth.history_synced > 0
    assert 0.8 * truth.history_synced < late <= truth.history_synced + truth.redeliveries


# -- the writer -----------------------------------------------------------------------


def row(msg_id: str, when: datetime, content: str, sender: str = "27821234567") -> MessageRow:
    ts = format_bridge_timestamp(when, SAST)
    return MessageRow(
        msg_id, DEMO_GROUPS[0].jid, sender, content, ts, False, "", "", "", None, None, None, 0
    )


def test_redelivery_and_history_sync_through_the_writer(tmp_path: Path) -> None:
    base = datetime(2025, 11, 9, 8, 0, tzinfo=SAST)
    db = tmp_path / "messages.db"
    with StoreWriter(db) as writer:
        writer.add_chat(DEMO_GROUPS[0].jid, DEMO_GROUPS[0].name)
        first = writer.write(row("3EB0AAAAAAAAAAAAAAAA", base, "DR12345678 done"))
        written = writer.write_many(
            [row(f"3EB0{i:016X}", base + timedelta(minutes=i), "Pole 14 done") for i in (1, 2)]
        )
        assert written == 2
        again = writer.redeliver(DEMO_GROUPS[0].jid, "3EB0AAAAAAAAAAAAAAAA")
        old = row("ABCDEF0123456789ABCD", base - timedelta(hours=3), "DR87654321", "1@lid")
        writer.history_sync([old])
        with pytest.raises(KeyError):
            writer.redeliver(DEMO_GROUPS[0].jid, "NOPE")
    table = rows(db, "SELECT rowid, id, content, timestamp FROM messages ORDER BY rowid")
    assert again > first
    assert [r[1] for r in table].count("3EB0AAAAAAAAAAAAAAAA") == 1
    assert table[-2] == (
        again,
        "3EB0AAAAAAAAAAAAAAAA",
        "DR12345678 done",
        "2025-11-09 08:00:00+02:00",
    )
    assert table[-1][1:] == ("ABCDEF0123456789ABCD", "DR87654321", "2025-11-09 05:00:00+02:00")
    # The chat's last message time never goes back for a late old message.
    assert rows(db, "SELECT last_message_time FROM chats") == [("2025-11-09 08:02:00+02:00",)]
    assert rows(db, "PRAGMA journal_mode") == [("delete",)]


# -- drop formats ---------------------------------------------------------------------


def test_real_world_drop_formats_only_on_request(tmp_path: Path) -> None:
    truth = generate_store(
        tmp_path / "m.db",
        tmp_path / "w.db",
        n_messages=6_000,
        seed=9,
        drop_rate=0.05,
        drop_formats=ALL_DROP_FORMATS,
    )
    expected = expected_drops(tmp_path / "m.db", tmp_path / "w.db", VARIANT_DROP_PATTERN)
    assert truth_table(truth) == expected
    lengths = Counter(len(drop) - 2 for _, drop in truth.drops)
    assert lengths[8] and lengths[7] and lengths[6] and set(lengths) == {6, 7, 8}
    contents = [str(r[4]) for r in text_rows(tmp_path / "m.db") if r[4]]
    assert any(re.search(r"\bDR \d{6,8}\b", c) for c in contents)
    assert any(re.search(r"\bdr\d{6,8}\b", c) for c in contents)
    strict = expected_drops(tmp_path / "m.db", tmp_path / "w.db", DEFAULT_DROP_PATTERN)
    assert len(strict) < len(expected)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        generate_store(tmp_path / "m.db", None, n_messages=1, start=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="drop format"):
        generate_store(tmp_path / "m.db", None, n_messages=1, drop_formats=["DR9"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="drop_rate"):
        generate_store(tmp_path / "m.db", None, n_messages=1, drop_rate=1.5)


# -- groups ---------------------------------------------------------------------------


def test_demo_and_bench_groups() -> None:
    assert (DEMO_GROUPS[0].jid, DEMO_GROUPS[0].name) == (
        "120363418298130331@g.us",
        "Lawley Activation 3 group",
    )
    assert {g.jid for g in DEMO_GROUPS} == {
        "120363418298130331@g.us",
        "120363421664266245@g.us",
        "120363421532174586@g.us",
        "120363408849234743@g.us",
    }
    groups = bench_groups(50)
    assert groups == bench_groups(50)
    assert len({g.jid for g in groups}) == len({g.name for g in groups}) == 50
    assert all(re.fullmatch(r"1203634\d{11}@g\.us", g.jid) for g in groups)
    assert not {g.jid for g in groups} & {g.jid for g in DEMO_GROUPS}


def test_many_groups_all_get_messages(tmp_path: Path) -> None:
    groups = bench_groups(20)
    truth = generate_store(tmp_path / "m.db", tmp_path / "w.db", groups=groups, n_messages=8_000)
    counts = Counter(r[1] for r in text_rows(tmp_path / "m.db"))
    assert set(counts) == {g.jid for g in groups}
    assert truth_table(truth) == expected_drops(
        tmp_path / "m.db", tmp_path / "w.db", DEFAULT_DROP_PATTERN
    )


# -- live simulation ------------------------------------------------------------------


def run_live(tmp_path: Path, seed: int, steps: int) -> tuple[list[SimEvent], LiveSimulator]:
    clock = SteppingClock(datetime(2025, 11, 9, 7, 0, tzinfo=SAST), timedelta(seconds=20))
    with StoreWriter(tmp_path / "messages.db", tmp_path / "whatsapp.db") as writer:
        sim = LiveSimulator(writer, DEMO_GROUPS, seed=seed, clock=clock)
        events = sim.run(steps)
    return events, sim


def test_live_simulator_events_are_what_it_wrote(tmp_path: Path) -> None:
    events, sim = run_live(tmp_path, seed=21, steps=600)
    db, wa = tmp_path / "messages.db", tmp_path / "whatsapp.db"
    assert {e.kind for e in events} == {
        "chatter",
        "drop",
        "resubmission",
        "photo",
        "redelivery",
        "history_sync",
    }
    lids = dict(rows(wa, "SELECT lid, pn FROM whatsmeow_lid_map"))
    posted: set[tuple[str, str]] = set()
    max_rowid = 0
    newest = events[0].timestamp
    for i, event in enumerate(events):
        # Every write, re-deliveries included, gets a new, higher rowid.
        assert event.rowid > max_rowid
        max_rowid = event.rowid
        if event.kind == "drop" and i + 1 < len(events):
            assert all(normalise_drop(d) == d for d in event.drop_numbers)
            nxt = events[i + 1]
            assert (nxt.kind, nxt.group, nxt.member) == ("photo", event.group, event.member)
        if event.kind == "resubmission":
            assert {(event.group.jid, d) for d in event.drop_numbers} <= posted
        if event.kind == "redelivery":
            assert any(e.message_id == event.message_id for e in events[:i])
        if event.kind == "history_sync":
            assert "@" in event.sender and event.timestamp < newest
        if event.lid_sender:
            assert event.member.lid in lids
            assert lids[event.member.lid] == event.member.phone
        posted.update((event.group.jid, d) for d in event.drop_numbers)
        newest = max(newest, event.timestamp)
    # Every message is in the table exactly once, under the rowid of its latest write.
    latest_rowid = {(e.group.jid, e.message_id): e.rowid for e in events}
    table = {
        (str(r[1]), str(r[2])): r[0] for r in rows(db, "SELECT rowid, chat_jid, id FROM messages")
    }
    assert table == latest_rowid
    truth = sim.truth()
    assert truth.messages == len(table)
    assert truth.redeliveries == sum(e.kind == "redelivery" for e in events) > 0
    assert truth.history_synced == sum(e.kind == "history_sync" for e in events) > 0
    assert truth_table(truth) == expected_drops(db, wa, DEFAULT_DROP_PATTERN)


def test_live_simulator_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, _ = run_live(tmp_path / "a", seed=4, steps=150)
    second, _ = run_live(tmp_path / "b", seed=4, steps=150)
    assert first == second
    assert dump(tmp_path / "a" / "messages.db", tmp_path / "a" / "whatsapp.db") == dump(
        tmp_path / "b" / "messages.db", tmp_path / "b" / "whatsapp.db"
    )
