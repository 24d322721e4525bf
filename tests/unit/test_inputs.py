"""Properties of the request checks and of what the data layer hands out: any text, any
bytes, any date of the calendar in any zone."""

from __future__ import annotations

import json
from datetime import UTC, date, timedelta
from urllib.parse import quote_from_bytes
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from wa_monitor.store.review_store import _json_loads
from wa_monitor.web.envelope import scrub, utf8
from wa_monitor.web.inputs import form_problems, json_problems, text_problem
from wa_monitor.web.queries import local_day_bounds

# Every code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
ZONES = [ZoneInfo(z) for z in ("Africa/Johannesburg", "Pacific/Kiritimati", "Pacific/Pago_Pago")]


def _storable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    return []


@given(any_text)
def test_text_is_refused_exactly_when_it_cannot_be_stored_or_answered(text: str) -> None:
    assert (text_problem(text) is None) == _storable(text)


@given(json_values)
def test_a_json_body_is_refused_exactly_when_one_of_its_strings_or_keys_is(value: object) -> None:
    problems = json_problems(json.loads(json.dumps(value)))
    assert (not problems) == all(_storable(s) for s in _strings(value))
    assert all(field.startswith("body") for field, _ in problems)


@given(st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=8)), max_size=5))
def test_a_query_string_is_refused_exactly_when_a_name_or_value_is_not_text(
    pairs: list[tuple[bytes, bytes]],
) -> None:
    raw = "&".join(
        f"{quote_from_bytes(k, safe='')}={quote_from_bytes(v, safe='')}" for k, v in pairs
    ).encode()

    def ok(data: bytes) -> bool:
        try:
            return "\x00" not in data.decode("utf-8")
        except UnicodeDecodeError:
            return False

    assert (not form_problems(raw, "query")) == all(ok(k) and ok(v) for k, v in pairs if k or v)


@given(any_text)
def test_answers_carry_any_text(text: str) -> None:
    assert utf8(text).decode() == scrub(text)
    if _storable(text.replace("\x00", "")):
        assert scrub(text) == text


@given(json_values)
def test_json_read_from_a_row_can_always_be_answered(value: object) -> None:
    # json.dumps writes lone surrogates as escapes, as an older version stored them.
    loaded = _json_loads(json.dumps(value))
    json.dumps(loaded, ensure_ascii=False).encode()
    if all(_storable(s.replace("\x00", "")) for s in _strings(value)):
        assert loaded == json.loads(json.dumps(value))


@given(st.dates(), st.sampled_from(ZONES))
def test_every_day_of_the_calendar_has_bounds_in_every_zone(day: date, zone: ZoneInfo) -> None:
    start, end = local_day_bounds(day, zone)
    assert start.tzinfo is UTC and end.tzinfo is UTC and start < end
    if date(2, 1, 1) < day < date(9999, 12, 1):  # away from the ends, a real day
        assert timedelta(hours=22) <= end - start <= timedelta(hours=26)
