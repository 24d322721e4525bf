"""Logging for operators: the classic line format, rotation, optional JSON, secrets masked."""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path

from wa_monitor.settings import Settings, mask_url

TEXT_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


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
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


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


def setup_logging(settings: Settings, *, stream: bool = True) -> list[str]:
    """Configure the root logger; returns problems worth telling the operator."""
    problems: list[str] = []
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):
            handler.close()  # a reconfiguration must not leak the old log file
    root.setLevel(settings.log_level)
    formatter: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
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
