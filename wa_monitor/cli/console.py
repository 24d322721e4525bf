"""The terminal: what commands print, and how they report the project's errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape

from wa_monitor.core.errors import WaMonitorError

# Piped output keeps whole JIDs on one line (a terminal gets its own width).
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print the project's errors as one clear message and exit with their status."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WaMonitorError as exc:
            for line in str(exc).splitlines():
                err.print(f"[bold red]error:[/] {escape(line)}", markup=True, soft_wrap=True)
            sys.exit(exc.exit_code)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]
