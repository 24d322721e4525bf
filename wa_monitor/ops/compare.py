"""`wa-monitor compare`: what prod and dev each detected in the groups both monitor.

Each side is described by its own env file (read on its own, not merged with the
environment): its DATABASE_URL and its projects file (WA_MONITOR_CONFIG, else
config/projects.yaml beside the env file). Submissions are compared message by
message: (group, message id, drop number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from wa_monitor.core.config import ProjectsConfig, load_config
from wa_monitor.core.settings import Settings, read_env_file, settings_from
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import drop_submissions

Key = tuple[str, str, str]  # chat_jid, message_id, drop_number


@dataclass(frozen=True)
class Side:
    label: str
    env_file: Path
    settings: Settings
    config: ProjectsConfig


@dataclass(frozen=True)
class Seen:
    """One drop submission as one side recorded it."""

    project: str
    kind: str
    message_time: datetime


@dataclass(frozen=True)
class Line:
    key: Key
    a: Seen | None
    b: Seen | None

    @property
    def verdict(self) -> str:
        if self.a is None:
            return "only_b"
        if self.b is None:
            return "only_a"
        return "same" if not self.differences else "differs"

    @property
    def differences(self) -> list[str]:
        if self.a is None or self.b is None:
            return []
        found = []
        for name in ("project", "kind", "message_time"):
            va, vb = getattr(self.a, name), getattr(self.b, name)
            if va != vb:
                found.append(f"{name}: {va} ≠ {vb}")
        return found


@dataclass
class Comparison:
    a: Side
    b: Side
    since: datetime | None
    shared: dict[str, tuple[str, str]] = field(default_factory=dict)  # jid → (name A, name B)
    only_a_groups: list[str] = field(default_factory=list)
    only_b_groups: list[str] = field(default_factory=list)
    lines: dict[str, list[Line]] = field(default_factory=dict)  # jid → lines
    same_database: bool = False

    def count(self, verdict: str) -> int:
        return sum(1 for lines in self.lines.values() for x in lines if x.verdict == verdict)

    @property
    def differences(self) -> int:
        return self.count("only_a") + self.count("only_b") + self.count("differs")

    def as_dict(self) -> dict[str, Any]:
        def seen(s: Seen | None) -> dict[str, Any] | None:
            if s is None:
                return None
            return {
                "project": s.project,
                "kind": s.kind,
                "message_time": s.message_time.isoformat(),
            }

        return {
            "a": {"label": self.a.label, "env_file": str(self.a.env_file)},
            "b": {"label": self.b.label, "env_file": str(self.b.env_file)},
            "since": self.since.isoformat() if self.since else None,
            "same_database": self.same_database,
            "groups": [
                {
                    "jid": jid,
                    "names": list(names),
                    "submissions": [
                        {
                            "chat_jid": x.key[0],
                            "message_id": x.key[1],
                            "drop_number": x.key[2],
                            "a": seen(x.a),
                            "b": seen(x.b),
                            "verdict": x.verdict,
                            "differences": x.differences,
                        }
                        for x in self.lines.get(jid, [])
                    ],
                }
                for jid, names in self.shared.items()
            ],
            "only_a_groups": self.only_a_groups,
            "only_b_groups": self.only_b_groups,
            "summary": {v: self.count(v) for v in ("same", "only_a", "only_b", "differs")},
        }


def load_side(label: str, env_file: Path) -> Side:
    """A side from its env file alone: its database and its projects file."""
    env = read_env_file(env_file)
    settings = settings_from(env)
    config_path = Path(env["WA_MONITOR_CONFIG"]) if env.get("WA_MONITOR_CONFIG") else None
    if config_path is None:
        config_path = env_file.parent / "config" / "projects.yaml"
    elif not config_path.is_absolute():
        config_path = env_file.parent / config_path
    return Side(label, env_file, settings, load_config(config_path))


def fetch(store: ReviewStore, jids: list[str], since: datetime | None) -> dict[Key, Seen]:
    t = drop_submissions
    query = sa.select(
        t.c.chat_jid, t.c.message_id, t.c.drop_number, t.c.project, t.c.kind, t.c.message_time
    ).where(t.c.chat_jid.in_(jids))
    if since is not None:
        query = query.where(t.c.message_time >= since)
    with store.begin() as conn:
        return {
            (r.chat_jid, r.message_id, r.drop_number): Seen(r.project, r.kind, r.message_time)
            for r in conn.execute(query)
        }


def compare(a: Side, b: Side, since: datetime | None = None) -> Comparison:
    from wa_monitor.store.database import open_review_store, same_database

    groups_a = {p.group_jid: p.name for p in a.config.enabled}
    groups_b = {p.group_jid: p.name for p in b.config.enabled}
    result = Comparison(a, b, since)
    result.same_database = same_database(a.settings.database_url, b.settings.database_url)
    result.shared = {j: (groups_a[j], groups_b[j]) for j in sorted(groups_a) if j in groups_b}
    result.only_a_groups = sorted(j for j in groups_a if j not in groups_b)
    result.only_b_groups = sorted(j for j in groups_b if j not in groups_a)
    jids = list(result.shared)
    seen: list[dict[Key, Seen]] = []
    for side in (a, b):
        with open_review_store(side.settings, purpose="read") as store:
            seen.append(fetch(store, jids, since) if jids else {})
    rows_a, rows_b = seen
    for key in set(rows_a) | set(rows_b):
        line = Line(key, rows_a.get(key), rows_b.get(key))
        result.lines.setdefault(key[0], []).append(line)
    for lines in result.lines.values():
        lines.sort(key=lambda x: ((x.a or x.b).message_time, x.key))  # type: ignore[union-attr]
    return result
