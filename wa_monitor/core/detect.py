"""Drop-number detection: pure functions over text.

Patterns run on RE2, whose matching time grows linearly with the text whatever the
pattern: a pattern such as `DR(\\d+)+X`, which makes a backtracking engine take 30 s
on a 31-character message, takes microseconds. RE2 cannot run backreferences or
lookaround, so a pattern using them is refused with the reason. Beyond that, RE2 reads
patterns as Python did, with two documented differences that no drop number depends
on: `\\s` does not match a vertical tab, and `$` matches only at the very end of the
message (Python also matched before a final newline; `\\s*$` allows one).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

import re2

DEFAULT_DROP_PATTERN = r"\bDR\d{8}\b"

# What a stored drop number may look like after normalisation: the review table's
# varchar(50), ASCII letters and digits only.
_CANONICAL = re.compile(r"[A-Z0-9][A-Z0-9\-_/]{0,49}", re.ASCII)
_WHITESPACE = re.compile(r"\s+")

# Bounds that keep every pattern cheap on every message. The field's patterns are
# 12-50 characters and compile to 16-50 RE2 instructions; at 200 instructions the worst
# case text costs about 0.2 s per MB of message (a normal message: microseconds).
MAX_PATTERN_LENGTH = 500
MAX_PROGRAM_SIZE = 200

# An inline flag group that turns on IGNORECASE somewhere: "(?i)", "(?ai:…)".
_INLINE_IGNORECASE = re.compile(r"\(\?[-aiLmsux]*i[-aiLmsux]*[:)]")
# `{,n}`, not escaped: Python read it as {0,n}, RE2 reads it as the text "{,n}".
_OPEN_MIN_REPEAT = re.compile(r"(?<!\\)(?:\\\\)*\{,\d*\}")

# What RE2 cannot run, found in Python's parse of the pattern, with the reason to give.
_UNSUPPORTED = {
    sre_constants.GROUPREF: "a backreference (\\1, (?P=name))",
    sre_constants.GROUPREF_EXISTS: "a conditional group ((?(1)…|…))",
    sre_constants.ASSERT: "a lookahead or lookbehind ((?=…), (?<=…))",
    sre_constants.ASSERT_NOT: "a negative lookahead or lookbehind ((?!…), (?<!…))",
    sre_constants.ATOMIC_GROUP: "an atomic group ((?>…))",
    sre_constants.POSSESSIVE_REPEAT: "a possessive quantifier (*+, ++, ?+)",
}


class PatternError(ValueError):
    """A drop pattern that cannot be run safely; the message says why and what to do."""


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would print its own copy of each error on stderr
    options.never_capture = True  # only the whole match is used: no submatch work
    return options


_RE2_OPTIONS = _options()
_UNANCHORED = re2._Anchor.UNANCHORED


@dataclass(frozen=True)
class DropPattern:
    """A compiled drop pattern, the literal every match must contain (for a pre-filter),
    and whether it ignores case (the pre-filter then compares without case)."""

    source: str
    matcher: Any  # re2._Regexp, compiled from the UTF-8 bytes of `source`
    literal: str | None
    ignore_case: bool = False

    def find(self, text: str | None) -> list[str]:
        """Distinct normalised drop numbers in `text`, in order of first appearance."""
        if not text:
            return []
        # Bytes, not str: RE2 works on UTF-8, and a str would be re-encoded and have its
        # offsets converted back at every match. Lone surrogates (a foreign-made store)
        # pass through as bytes that no drop number contains.
        data = text.encode("utf-8", "surrogatepass")
        # RE2's own Match, not google-re2's finditer, whose generator costs as much again
        # per message as the matching itself.
        match = self.matcher._regexp.Match
        found: dict[str, None] = {}
        pos, end = 0, len(data)
        while pos <= end:
            start, stop = match(_UNANCHORED, data, pos, end)[0]
            if start < 0:
                break
            drop = normalise(data[start:stop].decode("utf-8", "replace"))
            if drop is not None:
                found.setdefault(drop, None)
            pos = stop if stop > start else stop + 1
        return list(found)


def compile_pattern(source: str) -> DropPattern:
    """Compile a drop pattern for RE2 (`\\d` matches ASCII 0-9 only).

    Raises PatternError, saying why, when the pattern cannot be run safely: RE2 cannot
    run it (backreferences, lookaround), it is too large to match quickly, it would
    mean something else than it did to Python, or it matches the empty text.
    """
    if len(source) > MAX_PATTERN_LENGTH:
        raise PatternError(
            f"cannot be used: it is {len(source)} characters long; at most "
            f"{MAX_PATTERN_LENGTH} are allowed"
        )
    parsed, python_error = _python_parse(source)
    unsupported = _unsupported(parsed) if parsed is not None else None
    if unsupported:
        raise PatternError(
            f"cannot be used: it holds {unsupported}; drop patterns run on RE2, which "
            "matches in linear time and cannot run those: rewrite it without"
        )
    if _OPEN_MIN_REPEAT.search(source):
        raise PatternError(
            "cannot be used: RE2 reads `{,n}` as the text `{,n}`, not as a repeat; write `{0,n}`"
        )
    try:
        matcher = re2.compile(source.encode("utf-8", "surrogatepass"), _RE2_OPTIONS)
    except re2.error as exc:
        if python_error is not None:
            raise PatternError(f"does not compile: {python_error}") from None
        raise PatternError(_re2_reason(exc, source)) from None
    size = max(matcher.programsize, matcher.reverseprogramsize)
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"cannot be used: it compiles to {size} RE2 instructions, more than the "
            f"{MAX_PROGRAM_SIZE} that keep a long message fast to scan; use fewer or "
            "smaller `{m,n}` repeats and fewer `.`"
        )
    if _matches_empty(matcher, parsed):
        raise PatternError(
            "cannot be used: it matches the empty text, so it would match between any two "
            "characters; make the drop number required, e.g. `\\d{6,8}`, not `\\d*`"
        )
    return DropPattern(
        source=source,
        matcher=matcher,
        literal=_required_literal(parsed) if parsed is not None else None,
        ignore_case=_INLINE_IGNORECASE.search(source) is not None,
    )


def normalise(raw: str) -> str | None:
    """Upper case, whitespace removed; None when the result is not a canonical drop number."""
    drop = _WHITESPACE.sub("", raw)
    # ASCII before upper-casing: "ß".upper() is "SS" and "ſ" (which RE2 folds to "s")
    # becomes "S", drop numbers the message never held.
    if not drop.isascii():
        return None
    drop = drop.upper()
    if _CANONICAL.fullmatch(drop) is None:
        return None
    return drop


def required_literal(source: str) -> str | None:
    """The longest literal run that every match of `source` must contain, if any.

    Used to pre-filter rows in SQLite with a case-insensitive LIKE, so it only has to
    be a necessary condition: patterns with alternation at the top level or no literal
    of at least two characters give None (no pre-filter), and so do patterns Python's
    parser does not read as RE2 does.
    """
    parsed, _ = _python_parse(source)
    if parsed is None or _OPEN_MIN_REPEAT.search(source):
        return None
    return _required_literal(parsed)


def _python_parse(source: str) -> tuple[Any, str | None]:
    """Python's parse of `source` and its error; no parse when Python may read it otherwise
    than RE2.

    A warning (e.g. "possible nested set" for RE2's `[[:digit:]]`) means Python's
    reading differs from RE2's, so nothing is derived from it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return sre_parse.parse(source, re.ASCII), None
        except re.error as exc:
            return None, str(exc)
        except (Warning, RecursionError, OverflowError):
            return None, None


def _unsupported(parsed: Any) -> str | None:
    """The first construct of Python's parse that RE2 cannot run, described."""
    stack: list[Any] = [parsed]
    while stack:
        for op, av in stack.pop():
            if op in _UNSUPPORTED:
                return _UNSUPPORTED[op]
            stack.extend(_subpatterns(av))
    return None


def _subpatterns(av: Any) -> list[Any]:
    """The sub-patterns held by an opcode's argument (groups, branches, repeats)."""
    if isinstance(av, sre_parse.SubPattern):
        return [av]
    if isinstance(av, tuple | list):
        return [sub for item in av for sub in _subpatterns(item)]
    return []


def _re2_reason(exc: re2.error, source: str) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    hint = ""
    if "\\Z" in source:
        hint = "; write `\\z` for the end of the message"
    elif "(?x" in source or "(?#" in source:
        hint = "; RE2 has no verbose mode or comments: write the pattern on one line"
    return f"cannot be used: RE2 cannot run it ({detail}){hint}"


def _matches_empty(matcher: Any, parsed: Any) -> bool:
    if parsed is not None:
        return int(parsed.getwidth()[0]) == 0
    # Without Python's reading, try the places an empty match can hide.
    for probe in (b"", b" ", b"x", b"0", b"\n", b"x y"):
        for match in matcher.finditer(probe):
            if match.start() == match.end():
                return True
    return False


def _required_literal(parsed: Any) -> str | None:
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
