"""The world the dashboard tests run in: projects, users, drops recorded by the monitor's store.

No tests here; the dashboard's test modules (integration and e2e) import these helpers.
"""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import uvicorn
from argon2 import PasswordHasher

from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.core.reviews import Post
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import users
from wa_monitor.store.users import create_token

with warnings.catch_warnings():
    # starlette 0.49's test client names anyio.abc.BlockingPortal, deprecated in anyio 4.16.
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

__all__ = ["TestClient"]

LAWLEY_JID = "120363418298130331@g.us"
MOHADIN_JID = "120363421532174586@g.us"
PASSWORD = "correct-horse-battery"

PROJECTS_YAML = f"""
timezone: Africa/Johannesburg
steps:
  step_09_ups_serial: UPS serial number
projects:
  - name: Lawley
    group_jid: "{LAWLEY_JID}"
    description: Lawley Activation 3 group
  - name: Mohadin
    group_jid: "{MOHADIN_JID}"
    description: Mohadin Activations group
"""


def projects_config() -> ProjectsConfig:
    return parse_config(PROJECTS_YAML, Path("projects.yaml"))


def settings_for(db_url: str, bridge_url: str = "http://127.0.0.1:9/api") -> Settings:
    return settings_from(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "BRIDGE_URL": bridge_url,
        }
    )


@functools.cache
def _password_hash() -> str:
    # argon2 is slow on purpose: hash the tests' password once per session.
    return PasswordHasher().hash(PASSWORD)


@dataclass(frozen=True)
class People:
    """A user of each role, and an API token for each."""

    tokens: dict[str, str]

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def add_people(
    store: ReviewStore, roles: Iterable[str] = ("viewer", "reviewer", "admin")
) -> People:
    tokens = {}
    with store.begin() as conn:
        for role in roles:
            conn.execute(
                sa.insert(users).values(
                    username=role,
                    password_hash=_password_hash(),
                    role=role.rstrip("0123456789"),  # "reviewer2" is a second reviewer
                    disabled=False,
                )
            )
    for role in roles:
        tokens[role] = create_token(store, role, f"{role} tests")[1]
    return People(tokens)


def post(
    drop: str,
    when: datetime,
    *,
    project: str = "Lawley",
    message_id: str | None = None,
    sender: str = "27821234567",
    name: str = "Thabo Installer",
) -> Post:
    jid = LAWLEY_JID if project == "Lawley" else MOHADIN_JID
    return Post(
        chat_jid=jid,
        message_id=message_id
        or "3EB0" + hashlib.sha1(f"{drop}{when}{project}".encode()).hexdigest()[:16],
        drop_number=drop,
        project=project,
        sender=sender,
        sender_name=name,
        time=when,
    )


def record(store: ReviewStore, *posts: Post) -> None:
    """Record posts exactly as the monitor does (one scan batch)."""
    store.record_batch(list(posts), {}, projects_config().zone)


def now() -> datetime:
    return datetime.now(UTC)


def minutes_ago(n: float) -> datetime:
    return now() - timedelta(minutes=n)


# Tests that count "today's" drops post them this many hours into the business day at the
# earliest: run just after midnight, "30 minutes ago" would be yesterday's.
_TODAY_FROM = timedelta(hours=6)


def today_minutes_ago(n: float) -> datetime:
    """n minutes before now, or, in the first hours of the business day, before 06:00:
    a time of today in the projects' zone whatever the hour the tests run (n < 360)."""
    local = now().astimezone(projects_config().zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return max(local, start + _TODAY_FROM).astimezone(UTC) - timedelta(minutes=n)


def review(store: ReviewStore, drop: str, project: str = "Lawley") -> dict[str, Any]:
    return next(r for r in store.reviews() if r["drop_number"] == drop and r["project"] == project)


class LiveServer:
    """The app under uvicorn in a thread, on a free local port."""

    def __init__(self, app: object) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="none",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
