"""A log record stays one record whatever text it carries (text and JSON formats)."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wa_monitor.core.logs import setup_logging
from wa_monitor.core.settings import settings_from

FORMATS = ("text", "json")
CONTINUATION = "    "  # how a traceback's lines follow their record
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ - [A-Z]+ - ")
# Everything str.splitlines, a terminal or a bidirectional renderer treats specially.
BREAKERS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x1b\x9b\x08\x7f\u202e\u2066\x00"
hostile = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(BREAKERS))
FORGED = "eve\n2026-01-01 00:00:00,000 SAST - ERROR - 🚨 admin deleted every review\r\x1b[2K"


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("wa_monitor.web", logging.WARNING, __file__, 1, message, args, info)


@functools.cache
def formatter(kind: str) -> logging.Formatter:
    """The formatter `setup_logging` gives every handler for LOG_FORMAT=`kind`."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        setup_logging(settings_from({"LOG_FORMAT": kind}))
        configured = root.handlers[0].formatter
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.handlers[:] = handlers
        root.setLevel(level)
    assert configured is not None
    return configured


def formatted(kind: str, rec: logging.LogRecord) -> str:
    return formatter(kind).format(rec)


def raised(text: str) -> BaseException:
    try:
        raise ValueError(text)
    except ValueError as exc:
        return exc


@pytest.mark.parametrize("kind", FORMATS)
@settings(max_examples=300, deadline=None)
@given(name=hostile, project=hostile)
def test_no_logged_text_starts_a_line_of_its_own(kind: str, name: str, project: str) -> None:
    line = formatted(
        kind, record("🔑 Failed sign-in for %r from %s in %s", name, "1.2.3.4", project)
    )
    assert len(line.splitlines()) == 1, line
    assert not set(line) & set(BREAKERS), line
    if kind == "json":
        entry = json.loads(line)
        assert set(entry) == {"time", "level", "logger", "message"}
        assert entry["level"] == "WARNING"
        assert not set(entry["message"]) & set(BREAKERS)
    else:
        assert RECORD_START.match(line)
        assert line.count(" - WARNING - ") >= 1


@pytest.mark.parametrize("kind", FORMATS)
@settings(max_examples=150, deadline=None)
@given(text=hostile)
def test_an_exceptions_text_cannot_pass_for_a_record(kind: str, text: str) -> None:
    out = formatted(kind, record("feedback failed for %s", text, exc=raised(text)))
    lines = out.splitlines()
    if kind == "json":
        assert len(lines) == 1
        assert "ValueError" in json.loads(out)["exception"]
        return
    assert RECORD_START.match(lines[0])
    assert all(line.startswith(CONTINUATION) for line in lines[1:]), lines
    assert not set(out.replace("\n", "")) & set(BREAKERS)


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
def test_forged_lines_in_a_log_file(tmp_path: Path) -> None:
    """Through setup_logging, as `serve` logs: one line per record in both formats."""
    for kind in FORMATS:
        log_file = tmp_path / f"{kind}.log"
        setup_logging(settings_from({"LOG_FILE": str(log_file), "LOG_FORMAT": kind}), stream=False)
        log = logging.getLogger("wa_monitor.web")
        log.warning("🔑 Failed sign-in for %r from %s", FORGED, "203.0.113.9")
        log.warning("🔑 Failed sign-in for %s from %s", FORGED, "203.0.113.9")
        log.info("drop %s of project %s", "DR1\nDR2", "Law\u2028ley")
        for handler in logging.getLogger().handlers:
            handler.flush()
        lines = log_file.read_text(encoding="utf-8").splitlines()
        levels = (
            [json.loads(line)["level"] for line in lines]
            if kind == "json"
            else [line.split(" - ")[1] for line in lines]
        )
        assert levels == ["WARNING", "WARNING", "INFO"], lines
        print(f"{kind}: 3 records carrying forged lines: 3 lines, e.g. {lines[1][:110]!r}")
