"""Signals kept while the command is being imported, for `run` to act on later.

Importing the command (click, SQLAlchemy, FastAPI…) takes a fraction of a second, and a
signal in that window would end the process by the signal, not with the exit status
`run` promises (SIGTERM at any moment: exit 0). So `wa_monitor.cli.launch` catches the
signals before that import, with nothing but the standard library loaded, and keeps
them: `run` acts on them once its own handlers are in place; every other command gets
the default handling back, and a signal caught meanwhile is raised again, with its
usual effect. A module of its own, so the commands that take the signals do not import
the launcher that imports them.
"""

from __future__ import annotations

import signal
from types import FrameType

_CAUGHT = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)
_pending: list[int] = []
_catching = False


def _keep(signum: int, _frame: FrameType | None) -> None:
    _pending.append(signum)


def catch_early_signals() -> None:
    """Keep SIGTERM, SIGINT and SIGHUP for later instead of acting on them."""
    global _catching
    for signum in _CAUGHT:
        signal.signal(signum, _keep)
    _catching = True


def take_early_signals() -> list[int]:
    """The signals kept so far (the caller's handlers are in place by now)."""
    global _catching
    _catching = False
    taken = _pending[:]
    del _pending[: len(taken)]
    return taken


def release_early_signals() -> None:
    """Give the signals their default handling back; raise again one that was kept."""
    if not _catching:
        return
    for signum in _CAUGHT:
        default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, default)
    kept = take_early_signals()
    if kept:
        signal.raise_signal(kept[0])
