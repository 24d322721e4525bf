"""Property-based tests: detection and message parsing never crash, whatever the bridge
stores, and only canonical ASCII drop numbers come out."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from wa_monitor.core.detect import DEFAULT_DROP_PATTERN, compile_pattern, normalise
from wa_monitor.core.reviews import Post, local_date, resubmission_line
from wa_monitor.monitor.scan import clean_text, message_key, prefilter
from wa_monitor.sim import format_bridge_timestamp
from wa_monitor.sources.bridge import (
    _BLOB_CONTENT,
    _HAS_NUL,
    _glob_escape,
    as_text,
    parse_timestamp,
    sender_user,
)
from wa_monitor.sources.protocol import Prefilter
from wa_monitor.store.schema import UTCDateTime

CANONICAL = re.compile(r"[A-Z0-9][A-Z0-9\-_/]{0,49}", re.ASCII)
PATTERNS = [
    compile_pattern(DEFAULT_DROP_PATTERN),
    compile_pattern(r"(?i)\bDR\s?\d{6,8}\b"),
    compile_pattern(r"\b(DR|DX)-?\d{5,9}\b"),
    compile_pattern(r"(?i)drop\s*#?\s*\d{4,}"),
]
SAST = ZoneInfo("Africa/Johannesburg")

# Text as the bridge may store it: any code point (NUL, controls, RTL marks, emoji, lone
# surrogates that a foreign-made store can hold), drop-like fragments mixed in.
fragments = st.sampled_from(
    [
        "DR12345678", "dr 1752169", "DR١٢٣٤٥٦٧٨", "ＤＲ１２３４５６７８", "DR\x0012345678",
        "DR1234567\u200b8", "\u202eDR87654321", "DR12345678\u0301", "DX-123456", "drop #1234",
        "𝐃𝐑12345678", "DR1234567８", "\x00", "\r\n", "\t", "<script>", "'; --", "%", "_",
    ]
)  # fmt: skip
any_text = st.lists(
    st.one_of(st.text(alphabet=st.characters(codec=None), max_size=40), fragments), max_size=12
).map("".join)


@settings(max_examples=600, deadline=None)
@given(text=any_text)
@example(text="nul\x00DR12345678\x00")
@example(text="x" * 1_000_000 + " DR12345678")
def test_detection_never_crashes_and_yields_only_canonical_ascii(text: str) -> None:
    for pattern in PATTERNS:
        found = pattern.find(text)
        assert len(found) == len(set(found))
        for drop in found:
            assert drop.isascii() and CANONICAL.fullmatch(drop), drop


@settings(max_examples=300, deadline=None)
@given(
    before=any_text,
    after=any_text,
    digits=st.text(alphabet="0123456789", min_size=8, max_size=8),
)
def test_a_drop_between_separators_is_always_found(before: str, after: str, digits: str) -> None:
    text = f"{before} DR{digits} {after}"
    assert f"DR{digits}" in PATTERNS[0].find(text)


@settings(max_examples=300, deadline=None)
@given(
    text=any_text.map(lambda t: t.encode("utf-8", "replace").decode("utf-8")),
    as_blob=st.booleans(),
)
@example(text="nul\x00DR12345678", as_blob=False)
@example(text="dr12345678", as_blob=False)
@example(text="DR12345678", as_blob=True)
def test_the_sqlite_prefilter_never_hides_a_drop(text: str, as_blob: bool) -> None:
    """A row the regex finds a drop in must pass the SQL pre-filter (LIKE or GLOB), whether
    its content is stored as TEXT or, as a fork may write it, as a BLOB (never LIKE-matched)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE m (content TEXT)")
        conn.execute("INSERT INTO m VALUES (?)", (text.encode() if as_blob else text,))
        for pattern in PATTERNS:
            if not pattern.find(text):
                continue
            pre = prefilter(pattern)
            if pre is None:
                continue
            assert isinstance(pre, Prefilter)
            if pre.case_sensitive:
                sql, arg = "content GLOB ?", f"*{_glob_escape(pre.text)}*"
            else:
                sql, arg = "content LIKE ?", f"%{pre.text}%"
            where = f"{sql} OR {_HAS_NUL} OR {_BLOB_CONTENT}"  # as BridgeStore.read_range
            hit = conn.execute(f"SELECT count(*) FROM m WHERE {where}", (arg,)).fetchone()[0]  # noqa: S608
            assert hit, (pattern.source, text)
    finally:
        conn.close()


@settings(max_examples=500, deadline=None)
@given(raw=st.text(alphabet=st.characters(codec=None), max_size=60))
def test_normalise_returns_canonical_ascii_or_none(raw: str) -> None:
    drop = normalise(raw)
    assert drop is None or (drop.isascii() and CANONICAL.fullmatch(drop))


timestamp_like = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda d, f, o: f"{d:%Y-%m-%d %H:%M:%S}{f}{o}",
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
        st.sampled_from(["", ".1", ".123456", ".123456789", ".", ".x"]),
        st.sampled_from(["", "+02:00", "Z", "-23:59", "+24:00", " +0200 SAST", "+0200", "+99:99"]),
    ),
    st.sampled_from(["0000-00-00 00:00:00", "2025-02-30 10:00:00+02:00", "\x00", "  ", "T"]),
)


# Any value SQLite can hand back for a timestamp: text, numbers (epoch times in any unit,
# negative, infinite, NaN), BLOBs holding text or garbage, and instants at the calendar's
# ends, where converting to another zone overflows.
sqlite_timestamp = st.one_of(
    st.none(),
    timestamp_like,
    timestamp_like.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(
        [
            "9999-12-31 23:59:59+00:00",
            "9999-12-31 23:59:59-05:00",
            "9999-12-31 23:59:59",
            "0001-01-01 00:00:00+05:00",
            "0001-01-01 00:00:00",
            "1731172530",
            "1731172530.5",
            "-5",
            "1e400",
        ]
    ),
)
EXTREME_ZONES = [
    SAST,
    UTC,
    timezone(timedelta(hours=23, minutes=59)),
    timezone(-timedelta(hours=23, minutes=59)),
]


@settings(max_examples=800, deadline=None)
@given(value=sqlite_timestamp)
@example(value="9999-12-31 23:59:59+00:00")
@example(value="0001-01-01 00:00:00+05:00")
@example(value=float("inf"))
def test_parse_timestamp_never_crashes_and_never_yields_an_unusable_time(value: object) -> None:
    """Whatever the column holds: None, or an instant every later step can use (stored as
    UTC on either backend, shown in the business zone, its review date taken) without
    overflowing."""
    parsed = parse_timestamp(value, SAST)
    if parsed is None:
        return
    assert parsed.tzinfo is not None
    assert datetime(1, 1, 2, tzinfo=UTC) <= parsed <= datetime(9999, 12, 31, tzinfo=UTC)
    post = Post("g@g.us", "m", "DR12345678", "P", "2782", "Name", parsed)
    for target in EXTREME_ZONES:  # each of these raises OverflowError beyond the calendar
        local_date(parsed, target)
        resubmission_line(post, target)
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        UTCDateTime().process_bind_param(parsed, dialect)


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.none(),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
        st.binary(max_size=30),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_any_sqlite_value_reads_as_text(value: object) -> None:
    text = as_text(value)
    if value is None:
        assert text is None
        return
    assert isinstance(text, str)
    if isinstance(value, bytes):
        assert text == value.decode("utf-8", "replace")


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
    nanos=st.one_of(st.none(), st.integers(0, 999_999_999)),
    zone=st.sampled_from([SAST, ZoneInfo("Europe/London"), UTC, timezone(timedelta(hours=-3))]),
)
def test_bridge_timestamps_round_trip(when: datetime, nanos: int | None, zone: object) -> None:
    text = format_bridge_timestamp(when.replace(microsecond=0), zone, nanos)  # type: ignore[arg-type]
    parsed = parse_timestamp(text)
    assert parsed is not None
    expected = when.replace(microsecond=(nanos or 0) // 1000)
    assert parsed == expected, text


jid_user = st.one_of(
    st.from_regex(r"\A[0-9]{6,15}\Z"), st.text(alphabet=st.characters(codec=None), max_size=20)
)


JID_FORMS = [
    "{u}", "{u}@s.whatsapp.net", "{u}:12@s.whatsapp.net", "{u}@lid", "{u}:3@lid", "{u}@g.us",
    "{u}@c.us", "{u}@broadcast", "@{u}", "{u}@", "",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(user=jid_user, form=st.sampled_from(JID_FORMS))
def test_sender_user_handles_every_jid_form(user: str, form: str) -> None:
    raw = form.format(u=user)
    result = sender_user(raw)
    assert "@" not in result
    if user.isdigit() and user.isascii() and form.startswith("{u}"):
        assert result == user


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(alphabet=st.characters(codec=None), max_size=400))
def test_ids_and_names_are_made_safe_for_any_column(value: str) -> None:
    key = message_key(value)
    assert len(key) <= 100 and key.isprintable()
    assert key == value or key.startswith("sha256:")
    cleaned = clean_text(value, 100)
    assert len(cleaned) <= 100 and cleaned.isprintable() and "\x00" not in cleaned
