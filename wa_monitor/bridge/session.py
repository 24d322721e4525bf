"""One WhatsApp session per process, and its connection state for operators.

- `SessionLock`: an exclusive `flock` on `whatsapp.db.lock` beside whatsapp.db, held for
  the process's life. Two processes on one session make WhatsApp drop the connection
  every minute or two; a second `wa-monitor bridge run` refuses to start, naming the PID.
- `StatusFile`: `bridge-status.json` in the store folder, rewritten atomically at every
  change of state: `{"state", "since", "updated_at", "pid", "detail", "account",
  "pairing_failures"}`. `state` is one of STATES; the monitor's `status`/`doctor` read it.
- `Session`: what each connection event means (pairing failures counted, logged out and
  refused-client-version turned into the message that says what to do).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from wa_monitor.core.errors import WaMonitorError

log = logging.getLogger("wa_monitor.bridge")

State = Literal[
    "starting",
    "pairing",
    "connected",
    "disconnected",
    "logged_out",
    "outdated",
    "banned",
    "stopped",
]
STATES: Final = (
    "starting",
    "pairing",
    "connected",
    "disconnected",
    "logged_out",
    "outdated",
    "banned",
    "stopped",
)
STATUS_FILE: Final = "bridge-status.json"
LOCK_FILE: Final = "whatsapp.db.lock"
# WhatsApp locks a number's pairing for a while after 5+ failed attempts.
PAIRING_LOCK_AFTER: Final = 5

LOGGED_OUT: Final = (
    "WhatsApp logged this bridge out: pair again with `wa-monitor bridge pair` "
    "(or `wa-monitor bridge pair --phone NUMBER` for a pairing code)"
)
OUTDATED: Final = (
    "WhatsApp refuses this client version (405): upgrade wa-monitor (neonize), then start "
    "the bridge again"
)


class BridgeError(WaMonitorError):
    """The bridge cannot start or had to stop; the message says what to do."""


class SessionBusy(BridgeError):
    """Another process holds this store's WhatsApp session."""


class SessionEnded(BridgeError):
    """WhatsApp ended the session (logged out, client refused, banned): restarting the
    bridge cannot help until an operator acts, so its exit status is its own (3), which
    the systemd unit does not restart on."""

    exit_code = 3


class SessionLock:
    """An exclusive lock on one store's WhatsApp session, for the life of the process."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> SessionLock:
        """Take the lock, or raise SessionBusy at once naming the process that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BridgeError(
                f"{self.path}: cannot create the session lock ({exc.strerror}); check that "
                "BRIDGE_STORE is a folder this user can write"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"PID {holder}" if holder else "another process"
            raise SessionBusy(
                f"{self.path.parent}: this WhatsApp session is already in use by {who} "
                f"(lock {self.path}); stop that bridge first (e.g. `systemctl stop "
                "wa-monitor-bridge@…`): two processes on one session make WhatsApp drop the "
                "connection every 1–2 minutes"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (the file stays: removing it would race a starting process)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> SessionLock:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class Status:
    """The bridge's last recorded connection state."""

    state: str
    since: str
    updated_at: str
    pid: int
    detail: str = ""
    account: str = ""
    pairing_failures: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "updated_at": self.updated_at,
            "pid": self.pid,
            "detail": self.detail,
            "account": self.account,
            "pairing_failures": self.pairing_failures,
        }


def read_status(folder: Path) -> Status | None:
    """The status file of a store folder; None if there is none or it cannot be read."""
    try:
        data = json.loads((folder / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("state") not in STATES:
        return None
    try:
        return Status(
            state=str(data["state"]),
            since=str(data.get("since") or ""),
            updated_at=str(data.get("updated_at") or ""),
            pid=int(data.get("pid") or 0),
            detail=str(data.get("detail") or ""),
            account=str(data.get("account") or ""),
            pairing_failures=int(data.get("pairing_failures") or 0),
        )
    except (TypeError, ValueError):
        return None


class StatusFile:
    """bridge-status.json, each write a whole file renamed into place."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / STATUS_FILE
        self._lock = threading.Lock()

    def write(self, status: Status) -> None:
        text = json.dumps(status.as_json(), indent=2) + "\n"
        with self._lock:
            try:
                fd, temporary = tempfile.mkstemp(prefix=".status-", dir=self.path.parent)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.chmod(temporary, 0o644)
                os.replace(temporary, self.path)
            except OSError as exc:
                log.warning("⚠️ bridge: cannot write %s (%s)", self.path, exc.strerror)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Session:
    """The connection's state machine: each event recorded, logged and, when fatal, raised.

    `fatal` is set (with the message to show) when the bridge must stop: logged out, or
    a client version WhatsApp refuses. The runner watches `stopped`.
    """

    def __init__(self, folder: Path) -> None:
        self.file = StatusFile(folder)
        previous = read_status(folder)
        self.pairing_failures = previous.pairing_failures if previous else 0
        self.account = previous.account if previous else ""
        self.state: str = "starting"
        self.since = _now()
        self.detail = ""
        self.fatal: str | None = None
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._record("starting", "")

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def _record(self, state: str, detail: str) -> None:
        with self._lock:
            if state != self.state:
                self.since = _now()
            self.state, self.detail = state, detail
            status = Status(
                state=state,
                since=self.since,
                updated_at=_now(),
                pid=os.getpid(),
                detail=detail,
                account=self.account,
                pairing_failures=self.pairing_failures,
            )
        self.file.write(status)

    # -- events -------------------------------------------------------------------------

    def on_connected(self, account: str = "") -> None:
        if account:
            self.account = account
        self._record("connected", "")
        log.info("✅ bridge: connected to WhatsApp%s", f" as {account}" if account else "")

    def on_disconnected(self, detail: str = "") -> None:
        if self.state in ("logged_out", "outdated", "stopped"):
            return
        self._record("disconnected", detail)
        log.warning(
            "⚠️ bridge: disconnected from WhatsApp%s; reconnecting", f" ({detail})" if detail else ""
        )

    def on_pairing(self, detail: str) -> None:
        self._record("pairing", detail)

    def on_paired(self, account: str) -> None:
        self.pairing_failures = 0
        self.account = account or self.account
        self._record("pairing", f"paired as {account}" if account else "paired")
        log.info("✅ bridge: paired%s", f" as {account}" if account else "")

    def on_pair_failed(self, error: str) -> str:
        """A failed pairing attempt, counted; returns the message to show the operator."""
        self.pairing_failures += 1
        reason = error or "no reason given"
        message = f"pairing failed ({reason}); {self.pairing_failures} failed attempt(s)"
        if self.pairing_failures >= PAIRING_LOCK_AFTER - 2:
            message += (
                f": WhatsApp locks pairing for a while after {PAIRING_LOCK_AFTER} or more failed "
                "attempts; wait before trying again"
            )
        self._record("pairing", message)
        log.warning("⚠️ bridge: %s", message)
        return message

    def on_logged_out(self, detail: str = "") -> None:
        self.stop_with("logged_out", LOGGED_OUT + (f" ({detail})" if detail else ""))

    def on_outdated(self) -> None:
        self.stop_with("outdated", OUTDATED)

    def on_banned(self, detail: str) -> None:
        self.stop_with(
            "banned", f"WhatsApp banned this number temporarily ({detail}); wait, then start again"
        )

    def stop_with(self, state: str, message: str) -> None:
        """Stop the bridge in `state`, `message` saying what to do."""
        self.fatal = message
        self._record(state, message)
        log.error("❌ bridge: %s", message)
        self.stopped.set()

    def request_stop(self) -> None:
        """A signal asked the bridge to stop (not an error)."""
        self.stopped.set()

    def close(self) -> None:
        """Record the final state: `stopped`, unless a fatal state says more."""
        if self.fatal is None:
            self._record("stopped", "")
