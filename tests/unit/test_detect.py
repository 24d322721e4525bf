"""Drop-number detection is a pure function of the text, in time linear in the text."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wa_monitor.core.detect import (
    DEFAULT_DROP_PATTERN,
    PatternError,
    compile_pattern,
    normalise,
    required_literal,
)

DEFAULT = compile_pattern(DEFAULT_DROP_PATTERN)
VARIANTS = compile_pattern(r"(?i)\bDR\s?\d{6,8}\b")


@pytest.mark.parametrize(
    ("text", "drops"),
    [
        ("DR12345678", ["DR12345678"]),
        ("Done: DR12345678, photos attached", ["DR12345678"]),
        ("DR12345678 and DR87654321 and DR12345678", ["DR12345678", "DR87654321"]),
        ("DR1234567 has seven digits", []),
        ("DR123456789 has nine digits", []),
        ("XDR12345678 is glued to a word", []),
        ("dr12345678 lower case needs a project pattern", []),
        ("DR１２３４５６７８ full-width digits", []),
        ("DR١٢٣٤٥٦٧٨ Arabic-Indic digits", []),
        ("", []),
        (None, []),
        ("nul\x00DR12345678\x00", ["DR12345678"]),
    ],
)
def test_default_pattern(text: str | None, drops: list[str]) -> None:
    assert DEFAULT.find(text) == drops


@pytest.mark.parametrize(
    ("text", "drops"),
    [
        ("DR1752169", ["DR1752169"]),
        ("DR 1752169", ["DR1752169"]),
        ("dr470114 done", ["DR470114"]),
        ("Dr 12345678 and DR12345678", ["DR12345678"]),
    ],
)
def test_field_variants_are_normalised(text: str, drops: list[str]) -> None:
    # FIELD_NOTES bug 9.
    assert VARIANTS.find(text) == drops


def test_a_huge_message_is_scanned() -> None:
    text = "chatter " * 200_000 + "DR12345678"
    assert DEFAULT.find(text) == ["DR12345678"]


def test_normalise_rejects_non_canonical_results() -> None:
    assert normalise(" dr 123\t45 ") == "DR12345"
    assert normalise("DRé1234") is None
    assert normalise("DR<script>") is None
    assert normalise("D" * 51) is None


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        (r"\bDR\d{8}\b", "DR"),
        (r"(?i)\bDR\s?\d{6,8}\b", "DR"),
        (r"(DROP-\d+)", "DROP-"),
        (r"\b(DR|FD)\d{8}\b", None),
        (r"\d{8}", None),
        (r"X\d+", None),
    ],
)
def test_prefilter_literal(pattern: str, literal: str | None) -> None:
    assert required_literal(pattern) == literal


def test_prefilter_literal_is_in_every_match() -> None:
    samples = ["DR 1752169", "dr470114", "DR12345678"]
    literal = required_literal(VARIANTS.source)
    assert literal is not None
    for sample in samples:
        assert VARIANTS.find(sample)
        assert literal.lower() in sample.lower()  # SQLite's LIKE is case-insensitive


# -- patterns run in linear time, or are refused with the reason ---------------------------

# Classic catastrophic-backtracking patterns and the texts that make a backtracking
# engine take exponential time (`DR(\d+)+X` on 31 characters took 30 s before RE2).
REDOS = [
    (r"DR(\d+)+X", "DR" + "1" * 29),
    (r"\bDR(\d+)*X", "DR" + "1" * 40),
    (r"(?i)(dr|d|r)+\d{8}X", "dr" * 30),
    (r"(\w+\s?)+DR\d{8}", "word " * 30 + "!"),
    (r"DR(\d|\d\d)+X", "DR" + "1" * 60),
]


@pytest.mark.timing
@pytest.mark.timeout(60)  # a backtracking engine would run for hours, not fail
@pytest.mark.parametrize(("pattern", "text"), REDOS, ids=[p for p, _ in REDOS])
def test_catastrophic_patterns_match_in_linear_time(pattern: str, text: str) -> None:
    compiled = compile_pattern(pattern)
    started = time.perf_counter()
    for n in (1, 10, 100):  # and on a message a hundred times longer
        assert compiled.find(text * n + " DR12345678") == []
    took = time.perf_counter() - started
    assert took < 0.5, f"{pattern} on {len(text) * 111:,} characters took {took:.2f} s"


REFUSED = [
    (r"(DR)\d+\1", "holds a backreference"),
    (r"(?P<d>DR)(?P=d)", "holds a backreference"),
    (r"DR(?=\d{8})\d+", "holds a lookahead or lookbehind"),
    (r"(?<=#)DR\d{8}", "holds a lookahead or lookbehind"),
    (r"DR(?!0)\d{8}", "holds a negative lookahead or lookbehind"),
    (r"(?>DR)\d{8}", "holds an atomic group"),
    (r"DR\d++", "holds a possessive quantifier"),
    (r"(DR)?(?(1)\d{8}|X)", "holds a conditional group"),
    (r"DR\d{,8}", "write `{0,n}`"),
    (r"\d*", "matches the empty text"),
    (r"(?i)\b(dr)?\b", "matches the empty text"),
    (r"DR.{60}\d", "RE2 instructions"),
    (r"\pN{8}", "RE2 instructions"),
    ("DR" * 300, "at most 500 are allowed"),
    (r"DR\d{8}\Z", "write `\\z` for the end of the message"),
    (r"(?x) DR \d{8}", "no verbose mode"),
    (r"(DR\d{8}", "does not compile: missing )"),
]


@pytest.mark.parametrize(("pattern", "reason"), REFUSED, ids=[p[:24] for p, _ in REFUSED])
def test_a_pattern_that_cannot_run_safely_is_refused_with_the_reason(
    pattern: str, reason: str
) -> None:
    with pytest.raises(PatternError) as refused:
        compile_pattern(pattern)
    assert reason in str(refused.value)


def test_lower_case_letters_that_fold_to_non_ascii_give_no_drop() -> None:
    # RE2 folds case in Unicode (U+017F ſ is s, U+212A Kelvin is k): such a match is not a
    # drop number, as it was not one to Python's ASCII matching; nor does ß become SS.
    assert compile_pattern(r"(?i)\bDRS\d{4}\b").find("DR\u017f1234 DRs5678") == ["DRS5678"]
    assert compile_pattern(r"(?i)\bK\d{6}\b").find("\u212a123456 k654321") == ["K654321"]
    assert normalise("DRß123") is None


# The engine the patterns ran on before RE2, as the oracle: every field pattern must find
# exactly what it found, in any text. A vertical tab is left out: RE2's `\s` does not
# match it (the one difference of `\s`, documented in detect.py).
OLD_ENGINE_PATTERNS = [
    DEFAULT_DROP_PATTERN,
    r"(?i)\bDR\s?\d{6,8}\b",
    r"\bDR\d{7,8}\b",
    r"\b(DR|DX)-?\d{5,9}\b",
    r"(?i)drop\s*#?\s*\d{4,}",
    r"(DROP-\d+)",
    r"\b(DR|FD)\d{8}\b",
    r"(?i)\b(?:DR|FD|DROP)[\s#:-]{0,3}\d{6,10}\b",
]
_fragments = st.sampled_from(
    [
        "DR12345678", "dr 1752169", "DR 1752169", "Dr470114", "DR١٢٣٤٥٦٧٨", "ＤＲ１２３４５６７８",
        "DR\x0012345678", "DR1234567\u200b8", "\u202eDR87654321", "DX-123456", "drop #1234",
        "FD12345678", "DROP-42", "DR:1234567", "𝐃𝐑12345678", "\ud800", "é", "ß", "ſ", "_",
        "\n", "\t", " ", "-", "#", "0", "DR", "dr",
    ]
)  # fmt: skip
_texts = st.lists(
    st.one_of(st.text(st.characters(blacklist_characters="\x0b"), max_size=20), _fragments),
    max_size=16,
).map("".join)


def _old_find(regex: re.Pattern[str], text: str) -> list[str]:
    found: dict[str, None] = {}
    for match in regex.finditer(text):
        drop = normalise(match.group(0))
        if drop is not None:
            found.setdefault(drop, None)
    return list(found)


@settings(max_examples=400, deadline=None)
@given(text=_texts)
@example(text="DR 1752169 and dr470114, DR12345678.")
@example(text="\ud800DR12345678\ud800")
def test_re2_finds_what_the_old_engine_found(text: str) -> None:
    for source in OLD_ENGINE_PATTERNS:
        old = re.compile(source, re.ASCII)
        assert compile_pattern(source).find(text) == _old_find(old, text), source


def test_the_field_patterns_keep_their_prefilter_literal() -> None:
    literals = {source: compile_pattern(source).literal for source in OLD_ENGINE_PATTERNS[:3]}
    assert set(literals.values()) == {"DR"}
    assert compile_pattern(r"(?i)\bDR\s?\d{6,8}\b").ignore_case
    assert not compile_pattern(DEFAULT_DROP_PATTERN).ignore_case
    # What Python's parser reads otherwise than RE2 derives no literal (no pre-filter).
    assert compile_pattern(r"DR[[:digit:]]{8}").literal is None
