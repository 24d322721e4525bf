"""The world the contract suite runs in: WhatsApp posts in three projects, scanned by the
monitor, a reviewer's earlier work, and `wa-monitor serve` called as the Next.js proxy calls it.

Every drop a test changes is reserved for that test (see the names below), so the
figures stay what the posts make them whichever tests ran before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.contract.shapes import STEPS
from tests.fakebridge import FakeBridge, running_bridge
from tests.faults.serve import Answer, Server, running_serve
from tests.helpers import LAWLEY, MOHADIN, SAST, VELO, Bridge
from tests.integration.test_api_support import add_people, now, today_minutes_ago
from wa_monitor.core.config import parse_config
from wa_monitor.core.errors import ConfigError
from wa_monitor.monitor.scan import Monitor
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import add_user, create_token

PROJECTS = ("Lawley", "Mohadin", "Velo Test")
JIDS = {"Lawley": LAWLEY, "Mohadin": MOHADIN, "Velo Test": VELO}

# Drops per (project, days ago): 72 in all, more than a page of our own dashboard's API.
POSTED = {
    ("Lawley", 0): 40,
    ("Lawley", 3): 10,  # in the week (the last 7 days)
    ("Lawley", 10): 5,  # in the month (the last 30 days), not the week
    ("Lawley", 40): 2,  # before the month
    ("Mohadin", 0): 12,
    ("Velo Test", 0): 3,
}
PREFIX = {("Lawley", 0): 11, ("Lawley", 3): 12, ("Lawley", 10): 13, ("Lawley", 40): 14}
PREFIX |= {("Mohadin", 0): 21, ("Velo Test", 0): 31}
ALL_DROPS = sum(POSTED.values())


def drop_number(project: str, days_ago: int, i: int) -> str:
    return f"DR{PREFIX[project, days_ago]}{i:06d}"


def posted(project: str, within_days: int | None = None) -> int:
    """Drops posted in `project` (all of them, or in the last `within_days` days)."""
    return sum(
        n
        for (p, ago), n in POSTED.items()
        if p == project and (within_days is None or ago <= within_days)
    )


TODAY_BY_PROJECT = {p: posted(p, 0) for p in PROJECTS}
TODAY = sum(TODAY_BY_PROJECT.values())

# A reviewer's earlier work (done in set-up through the API with a reviewer's own token).
COMPLETED = (drop_number("Lawley", 0, 1), drop_number("Lawley", 0, 2))
RESUBMITTED = drop_number("Lawley", 0, 3)  # posted again later today
FEEDBACK_SENT = drop_number("Lawley", 0, 4)
# Reserved for one test each.
LOCK_CYCLE = drop_number("Velo Test", 0, 1)
RENAMED = drop_number("Velo Test", 0, 2)
RENAME_TAKEN = drop_number("Velo Test", 0, 3)
SEND_FEEDBACK = drop_number("Mohadin", 0, 12)
LOCK_CONFLICT = drop_number("Mohadin", 0, 11)
VALIDATED = tuple(drop_number("Lawley", 0, i) for i in (10, 11, 12))  # the last is deleted
ENTERED = "DR18888888"  # on the day's validation sheet, never posted: entered by hand

INSTALLER = ("27821234567", "Thabo Nkosi")
RESUBMITTER = ("27829876543", "Sipho Dlamini")
FE_USER = "fibreflow"  # the user the front end's token belongs to (a reviewer)
ACTING = "Hein van Vuuren"  # the front end's signed-in person
OTHER = "Louis Duplessis"


def projects_yaml(reports_dir: Path | None) -> str:
    lines = ["timezone: Africa/Johannesburg", "projects:"]
    for name in PROJECTS:
        lines += [f"  - name: {name}", f'    group_jid: "{JIDS[name]}"']
        lines += [f"    description: {name} activations group"]
    if reports_dir is not None:
        lines += [
            "reports:",
            "  - name: daily-sheet",
            "    what: daily-drops",
            "    format: csv",
            "    to:",
            f'      - folder: "{reports_dir}"',
        ]
    return "\n".join(lines) + "\n"


def write_projects_file(root: Path) -> tuple[Path, Path | None]:
    """The projects file, with a folder report when this version knows `reports:`."""
    reports_dir = root / "reports"
    reports_dir.mkdir()
    path = root / "fibreflow-projects.yaml"
    text = projects_yaml(reports_dir)
    try:
        parse_config(text, path)
    except ConfigError:
        text, reports_dir = projects_yaml(None), None
    path.write_text(text)
    return path, reports_dir


def post_drops(bridge: Bridge) -> None:
    bridge.member(INSTALLER[0], name=INSTALLER[1])
    bridge.member(RESUBMITTER[0], name=RESUBMITTER[1])
    for (project, ago), n in POSTED.items():
        for i in range(1, n + 1):
            # Today's within the business day whatever the hour; older ones a whole day back.
            when = (
                today_minutes_ago(300 - i) if ago == 0 else now() - timedelta(days=ago, minutes=i)
            )
            bridge.post(
                JIDS[project],
                f"{drop_number(project, ago, i)} done, photos attached",
                sender=INSTALLER[0],
                when=when,
            )


@dataclass
class FrontEnd:
    """`wa-monitor serve`, called as the front end's Next.js proxy calls it."""

    server: Server
    token: str
    backend: str
    ids: dict[str, str]
    bridge: FakeBridge
    reports_dir: Path | None
    today: date

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        acting: str | None = ACTING,
        token: str | None = "",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        """One request with the front end's token and acting person (`acting=None`: none;
        `token=None`: no Authorization at all, as the browser's own request is)."""
        sent = {"Content-Type": "application/json"} if body is not None else {}
        secret = self.token if token == "" else token
        if secret is not None:
            sent["Authorization"] = f"Bearer {secret}"
        if acting is not None:
            sent["X-Acting-User"] = acting
        sent.update(headers or {})
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        return self.server.request(method, path, data, headers=sent, role=None)

    def get(self, path: str, **kw: Any) -> Answer:
        return self.call("GET", path, **kw)

    def as_reviewer(self, method: str, path: str, body: Any = None) -> Answer:
        """A request of WA Monitor's own reviewer (not the front end)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        return self.server.request(method, path, data, headers=headers, role="reviewer")

    def drop(self, number: str) -> dict[str, Any]:
        answer = self.get(f"/api/wa-monitor-drops?id={self.ids[number]}")
        assert answer.status == 200, (answer.status, answer.body[:500])
        data: dict[str, Any] = answer.json()["data"]
        return data


def _review_ids(store: ReviewStore) -> dict[str, str]:
    return {r["drop_number"]: str(r["id"]) for r in store.reviews()}


def _reviewers_work(fe: FrontEnd) -> None:
    """What a reviewer did before the front end looked: two drops approved, one feedback
    sent, one drop taken from the queue."""
    for number in COMPLETED:
        body = {**dict.fromkeys(STEPS, True), "completed": True, "incomplete": False}
        answer = fe.as_reviewer("PATCH", f"/api/wa-monitor-drops/{fe.ids[number]}", body)
        assert answer.status == 200, answer.body[:500]
    feedback = {
        "dropId": fe.ids[FEEDBACK_SENT],
        "dropNumber": FEEDBACK_SENT,
        "message": f"{FEEDBACK_SENT}\nNEEDS CORRECTION",
        "project": "Lawley",
    }
    answer = fe.as_reviewer("POST", "/api/wa-monitor-send-feedback", feedback)
    assert answer.status == 200, answer.body[:500]
    answer = fe.as_reviewer("POST", "/api/wa-monitor-drops/next", {"project": "Lawley"})
    assert answer.status == 200, answer.body[:500]


@contextmanager
def front_end_world(db_url: str, root: Path, backend: str) -> Iterator[FrontEnd]:
    """Posts scanned into `db_url`, then `serve` over it with a front-end token."""
    config_path, reports_dir = write_projects_file(root)
    config = parse_config(config_path.read_text(), config_path)
    bridge = Bridge(root / "bridge")
    post_drops(bridge)
    store = ReviewStore(db_url)
    monitor = Monitor(config, bridge.reader(), store)
    monitor.scan()
    bridge.post(
        LAWLEY,
        f"Resubmitting {RESUBMITTED}, fixed",
        sender=RESUBMITTER[0],
        when=today_minutes_ago(1),
    )
    monitor.scan()
    monitor.source.close()
    people = add_people(store, ("viewer", "reviewer", "admin"))
    add_user(store, FE_USER, "the front end signs in with its token only", "reviewer")
    _, secret = create_token(store, FE_USER, "fe", front_end=True)
    ids = _review_ids(store)
    store.dispose()
    with (
        running_bridge() as wa_bridge,
        running_serve(
            db_url,
            root,
            people,
            WA_MONITOR_CONFIG=str(config_path),
            BRIDGE_URL=wa_bridge.url,
            WHATSAPP_DB_PATH=str(bridge.messages_db),
        ) as server,
    ):
        fe = FrontEnd(
            server, secret, backend, ids, wa_bridge, reports_dir, datetime.now(SAST).date()
        )
        _reviewers_work(fe)
        yield fe


def unknown_id() -> str:
    return str(uuid.uuid4())
