"""Drop-number detection: pure functions over text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

DEFAULT_DROP_PATTERN = r"\bDR\d{8}\b"

# What a stored drop number may look like after normalisation: the review table's
# varchar(50), ASCII letters and digits only.
_CANONICAL = re.compile(r"[A-Z0-9][A-Z0-9\-_/]{0,49}", re.ASCII)
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class DropPattern:
    """A compiled drop pattern and the literal every match must contain (for a pre-filter)."""

    source: str
    regex: re.Pattern[str]
    literal: str | None

    def find(self, text: str | None) -> list[str]:
        """Distinct normalised drop numbers in `text`, in order of first appearance."""
        if not text:
            return []
        found: dict[str, None] = {}
        for match in self.regex.finditer(text):
            drop = normalise(match.group(0))
            if drop is not None:
                found.setdefault(drop, None)
        return list(found)


def compile_pattern(source: str) -> DropPattern:
    """Compile a drop pattern with ASCII semantics (`\\d` matches 0-9 only).

    Raises re.error when the pattern does not compile.
    """
    regex = re.compile(source, re.ASCII)
    return DropPattern(source=source, regex=regex, literal=required_literal(source))


def normalise(raw: str) -> str | None:
    """Upper case, whitespace removed; None when the result is not a canonical drop number."""
    drop = _WHITESPACE.sub("", raw).upper()
    if not drop.isascii() or _CANONICAL.fullmatch(drop) is None:
        return None
    return drop


def required_literal(source: str) -> str | None:
    """The longest literal run that every match of `source` must contain, if any.

    Used to pre-filter rows in SQLite with a case-insensitive LIKE, so it only has to
    be a necessary condition: patterns with alternation at the top level or no literal
    of at least two characters give None (no pre-filter).
    """
    try:
        parsed = sre_parse.parse(source, re.ASCII)
    except re.error:
        return None
    best = ""
    run: list[str] = []
    for op, arg in _top_level(parsed):
        if op is sre_parse.LITERAL and arg < 128:
            run.append(chr(arg))
            continue
        if op in (sre_parse.AT,):  # zero-width anchors such as \b do not break a run
            continue
        best = max(best, "".join(run), key=len)
        run = []
    best = max(best, "".join(run), key=len)
    # LIKE treats % and _ as wildcards; a literal holding them is not worth escaping.
    if len(best) < 2 or "%" in best or "_" in best:
        return None
    return best


def _top_level(parsed: Any) -> list[tuple[Any, Any]]:
    items: list[tuple[Any, Any]] = list(parsed)
    # A pattern wrapped in one group, e.g. "(DR\d{8})", has its literals one level down.
    if len(items) == 1 and items[0][0] is sre_parse.SUBPATTERN:
        return _top_level(items[0][1][-1])
    return items
