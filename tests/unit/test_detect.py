"""Drop-number detection is a pure function of the text."""

from __future__ import annotations

import pytest

from wa_monitor.detect import DEFAULT_DROP_PATTERN, compile_pattern, normalise, required_literal

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
