"""Reviewers save while the monitor records resubmissions of the same drops: nothing lost.

A real `wa-monitor run` reads a real bridge store into a review database (both backends)
while installers re-post drops and three reviewers edit them through the dashboard's API
over HTTP, all at once: two edit with the version they read (ticking steps, adding
notes to the comment, reading again and redoing the edit when refused), one without a
version as the company's dashboard does. Checked afterwards: every resubmission line the
monitor wrote is in its drop's comment, every saved tick is still ticked, and every note
saved with a version is still there.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults.support import Site, figure, wait_until
from tests.helpers import Bridge, submissions
from tests.integration.test_api_support import (
    LiveServer,
    add_people,
    projects_config,
    settings_for,
)
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.app import create_app

GROUP = "120363418298130331@g.us"  # Lawley in the test projects
PROJECTS = f"""\
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "{GROUP}"
    description: Lawley Activation 3 group
"""
VERSIONED = ["DR80000001", "DR80000002", "DR80000003"]  # edited by reviewers A and B
BLIND = ["DR80000004", "DR80000005"]  # edited by C, without versions
RESUBMISSIONS = 40
SECONDS = 12.0
THINK = 0.05  # seconds at most between a reviewer's read and save


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Iterator[tuple[Site, Bridge]]:
    bridge = Bridge(tmp_path / "store")
    bridge.writer.add_chat(GROUP, "Lawley Activation 3")
    site = Site(tmp_path, bridge.messages_db, bridge.whatsapp_db, db_url)
    site.config.write_text(PROJECTS)
    yield site, bridge


class Reviewer(threading.Thread):
    """Edits drops over HTTP until told to stop, recording what the API said it saved."""

    def __init__(self, name: str, url: str, token: str, drops: list[str], ids: dict[str, str],
                 *, versioned: bool, seed: int, stop: threading.Event) -> None:  # fmt: skip
        super().__init__(name=f"reviewer-{name}", daemon=True)
        self.label = name
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.drops, self.ids, self.versioned = drops, ids, versioned
        self.rng = random.Random(seed)
        self.stop_event = stop
        self.ticks: set[tuple[str, str]] = set()  # saved (drop, step)
        self.notes: set[tuple[str, str]] = set()  # saved (drop, note)
        self.answers: Counter[str] = Counter()
        self.failures: list[str] = []

    def run(self) -> None:
        n = 0
        try:
            while not self.stop_event.is_set():
                drop = self.rng.choice(self.drops)
                n += 1
                if self.rng.random() < 0.5:
                    self._tick(drop)
                else:
                    self._note(drop, f"{self.label} note {n}")
        except Exception as exc:  # reported by the test, never swallowed
            self.failures.append(repr(exc))
        finally:
            self.http.close()

    def _read(self, drop: str) -> dict[str, Any]:
        got = self.http.get(f"/api/wa-monitor-drops/{self.ids[drop]}")
        assert got.status_code == 200, got.text
        data: dict[str, Any] = got.json()["data"]["drop"]
        return data

    def _save(self, drop: str, edit: dict[str, Any], version: int) -> httpx.Response:
        # A reviewer looks at the drop before saving: others' writes fall in between.
        time.sleep(self.rng.uniform(0, THINK))
        body = {**edit, "version": version} if self.versioned else edit
        return self.http.patch(f"/api/wa-monitor-drops/{self.ids[drop]}", json=body)

    def _tick(self, drop: str) -> None:
        for _ in range(20):  # a refused edit is read again and redone
            current = self._read(drop)
            free = [s for s in STEP_COLUMNS if not current[s]]
            if not free:
                return
            step = self.rng.choice(free)
            answer = self._save(drop, {step: True}, current["version"])
            self._count(answer)
            if answer.status_code == 200:
                self.ticks.add((drop, step))
                return
        self.failures.append(f"{drop}: a tick refused 20 times in a row")

    def _note(self, drop: str, note: str) -> None:
        for _ in range(20):
            current = self._read(drop)
            text = "\n".join(filter(None, [current["comment"], note]))
            answer = self._save(drop, {"comment": text}, current["version"])
            self._count(answer)
            if answer.status_code == 200:
                self.notes.add((drop, note))
                return
        self.failures.append(f"{drop}: a note refused 20 times in a row")

    def _count(self, answer: httpx.Response) -> None:
        if answer.status_code == 200:
            message = answer.json()["message"]
            kind = (
                "merged" if "merged" in message else "kept lines" if "keeps" in message else "saved"
            )
        elif answer.status_code == 409:
            kind = "409 " + ",".join(answer.json()["error"]["details"]["conflicts"])
        else:
            raise AssertionError(f"{answer.status_code}: {answer.text}")
        self.answers[kind] += 1


def test_reviewers_saving_while_the_monitor_records_resubmissions_lose_nothing(
    site: tuple[Site, Bridge], db_url: str
) -> None:
    site_, bridge = site
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    seed = int(os.environ.get("WA_MONITOR_FAULT_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    for i, drop in enumerate(VERSIONED + BLIND):
        bridge.post(GROUP, f"{drop} all photos", sender=f"2782000000{i}", when=start)
    store = ReviewStore(db_url)
    people = add_people(store, ("reviewer", "reviewer2", "reviewer3"))
    monitor = site_.start()
    app = create_app(settings_for(db_url), projects_config(), store, run_sender=False)
    server = LiveServer(app).start()
    stop = threading.Event()
    try:
        wait_until(lambda: len(store.reviews()) == 5, 60, "the first posts", process=monitor)
        ids = {r["drop_number"]: str(r["id"]) for r in store.reviews()}
        reviewers = [
            Reviewer("A", server.url, people.tokens["reviewer"], VERSIONED, ids,
                     versioned=True, seed=seed + 1, stop=stop),
            Reviewer("B", server.url, people.tokens["reviewer2"], VERSIONED, ids,
                     versioned=True, seed=seed + 2, stop=stop),
            Reviewer("C", server.url, people.tokens["reviewer3"], BLIND, ids,
                     versioned=False, seed=seed + 3, stop=stop),
        ]  # fmt: skip
        for r in reviewers:
            r.start()
        # The installers re-post drops at random moments while the reviewers edit.
        posted: list[tuple[str, str]] = []
        began = time.monotonic()
        for k in range(RESUBMISSIONS):
            drop = rng.choice(VERSIONED + BLIND)
            name = f"Installer {k:02d}"
            bridge.member(f"2783{k:07d}", name=name)
            bridge.post(GROUP, f"{drop} redone", sender=f"2783{k:07d}",
                        when=start + timedelta(minutes=k + 1))  # fmt: skip
            posted.append((drop, name))
            time.sleep(rng.uniform(0, 2 * SECONDS / RESUBMISSIONS))  # random moments
        wait_until(
            lambda: len(submissions(store)) == 5 + RESUBMISSIONS,
            60,
            "every resubmission recorded",
            process=monitor,
        )
        stop.set()
        for r in reviewers:
            r.join(timeout=60)
        elapsed = time.monotonic() - began
    finally:
        stop.set()
        server.stop()
        assert monitor.stop() == 0, monitor.log()
    reviews = {r["drop_number"]: r for r in store.reviews()}
    store.dispose()

    failures = [f for r in reviewers for f in r.failures]
    lost_lines = [
        (drop, name)
        for drop, name in posted
        if not any(
            line.startswith("🔄 Resubmitted") and line.endswith(f" by {name}")
            for line in (reviews[drop]["comment"] or "").splitlines()
        )
    ]
    lost_ticks = [(d, s) for r in reviewers for d, s in r.ticks if not reviews[d][s]]
    lost_notes = [
        (d, n)
        for r in reviewers[:2]
        for d, n in r.notes
        if n not in (reviews[d]["comment"] or "").splitlines()
    ]
    answers = sum((r.answers for r in reviewers), Counter())
    saved = sum(len(r.ticks) + len(r.notes) for r in reviewers)
    figure(
        f"concurrent edits ({backend}): {RESUBMISSIONS} resubmissions recorded by `wa-monitor "
        f"run` while 3 reviewers saved {saved} edits over HTTP in {elapsed:.1f} s (seed {seed}); "
        f"answers {dict(sorted(answers.items()))}; checked: {len(lost_lines)} resubmission "
        f"lines lost, {len(lost_ticks)} saved ticks lost, {len(lost_notes)} versioned notes "
        f"lost, {len(failures)} reviewer failures"
    )
    assert not failures, failures
    assert not lost_lines and not lost_ticks and not lost_notes
    assert answers["merged"] > 0  # the race happened: edits met monitor writes
