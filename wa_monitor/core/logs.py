"""Logging for operators: the classic line format, rotation, optional JSON, secrets masked.

A text line's time is in the business zone with its abbreviation (what the dashboard and
the CLI show); a JSON record's stays UTC ISO 8601, for machines.

Whatever a record holds (a user name typed into the sign-in form, a project name, a drop
number from a request, an exception's message), it stays one record: no logged text can
start a line of its own, rewrite the line on a terminal, or reorder it.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.handlers
import re
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from wa_monitor.core.config import host_zone_name
from wa_monitor.core.settings import Settings, mask_url
from wa_monitor.core.times import log_stamp

TEXT_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
# What ends a line for a file reader or `str.splitlines` (LF, CR, VT, FF, FS-RS, NEL,
# U+2028/9), rewrites one on a terminal (ESC, CSI, BS, DEL…), or reorders its text
# (bidirectional overrides and isolates). Tab stays.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r"}
# A traceback's lines follow its record indented: none of them can pass for a record.
CONTINUATION = "    "


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    """`text` with every character that could break, rewrite or reorder a line escaped."""
    return _UNSAFE.sub(_escape, text)


class LineFormatter(logging.Formatter):
    """The text format, one line per record plus its traceback's lines, indented; its
    time in `zone` (the business zone) with the zone's abbreviation."""

    def __init__(self, fmt: str = TEXT_FORMAT, zone: tzinfo = UTC) -> None:
        super().__init__(fmt)
        self.zone = zone

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return log_stamp(record.created, self.zone)

    def format(self, record: logging.LogRecord) -> str:
        flat = copy.copy(record)
        flat.msg, flat.args = one_line(record.getMessage()), None
        first, *rest = super().format(flat).split("\n")
        return "\n".join([first, *(CONTINUATION + one_line(line) for line in rest)])


class MaskSecrets(logging.Filter):
    """Masks passwords of URLs in every record, whatever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class MaskedFormatter(logging.Formatter):
    """Masks URL passwords in the whole formatted line, tracebacks included."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_url(self.inner.format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": one_line(record.getMessage()),  # the same text as a text line
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # json escapes what is below U+0020; the rest of _UNSAFE can only be inside a
        # string here, where \uXXXX reads back as the same text.
        return _UNSAFE.sub(
            lambda m: f"\\u{ord(m.group()):04x}", json.dumps(entry, ensure_ascii=False)
        )


class SafeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file that never stops the service: a full disk drops lines, not drops."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            print(f"wa-monitor: cannot write the log file {self.baseFilename}", file=sys.stderr)


class SafeDailyFileHandler(logging.handlers.TimedRotatingFileHandler):
    """Rotated at midnight, LOG_BACKUPS days kept; never stops the service either."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not self.failed:
            self.failed = True
            print(f"wa-monitor: cannot write the log file {self.baseFilename}", file=sys.stderr)


def _host_zone() -> tzinfo:
    """The zone a projects file without `timezone:` has: the host's."""
    return ZoneInfo(host_zone_name())


def file_handler(settings: Settings, path: Path) -> logging.Handler:
    """The log file handler LOG_ROTATE asks for; both keep at most LOG_BACKUPS old files."""
    if getattr(settings, "log_rotate", "size") == "daily":
        return SafeDailyFileHandler(
            path, when="midnight", backupCount=max(1, settings.log_backups), encoding="utf-8"
        )
    # backupCount=0 would never roll over: the file would grow without bound.
    return SafeRotatingFileHandler(
        path,
        maxBytes=settings.log_max_bytes,
        backupCount=max(1, settings.log_backups),
        encoding="utf-8",
    )


def use_zone(zone: tzinfo) -> None:
    """Text lines from now on in `zone`: a service that reads its projects file late
    (after its signal handling is in place) tells the logs its business zone then."""
    for handler in logging.getLogger().handlers:
        outer = handler.formatter
        inner = outer.inner if isinstance(outer, MaskedFormatter) else outer
        if isinstance(inner, LineFormatter):
            inner.zone = zone


def setup_logging(
    settings: Settings, *, stream: bool = True, zone: tzinfo | None = None
) -> list[str]:
    """Configure the root logger; returns problems worth telling the operator.

    `zone`: the business zone of text lines (the projects file's); default the host's.
    """
    problems: list[str] = []
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):
            handler.close()  # a reconfiguration must not leak the old log file
    root.setLevel(settings.log_level)
    formatter: logging.Formatter = (
        JsonFormatter()
        if settings.log_format == "json"
        else LineFormatter(TEXT_FORMAT, zone or _host_zone())
    )
    handlers: list[logging.Handler] = []
    if stream:
        handlers.append(logging.StreamHandler(sys.stderr))
    if settings.log_file is not None:
        path = Path(settings.log_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(file_handler(settings, path))
        except OSError as exc:
            problems.append(
                f"cannot open the log file {path} ({exc.strerror}); logging to stderr only"
            )
    for handler in handlers:
        handler.setFormatter(MaskedFormatter(formatter))
        handler.addFilter(MaskSecrets())
        root.addHandler(handler)
    # Libraries talk at WARNING and above only.
    for noisy in ("alembic", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for problem in problems:
        logging.getLogger("wa_monitor").warning("⚠️ %s", problem)
    return problems
