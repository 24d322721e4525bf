"""The review queue on both backends: states as the database derives them, the queue's
order, its filters and counts, "next drop", assignment and the working-hour target."""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fakebridge import RESET, FakeBridge, running_bridge
from tests.integration.test_api_support import (
    PROJECTS_YAML,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    record,
    review,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.core import queue
from wa_monitor.core.config import parse_config
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback.outbox import BridgeClient
from wa_monitor.monitor.metrics import database_registry
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import qa_photo_reviews, review_edits
from wa_monitor.web import queries as q
from wa_monitor.web.app import create_app

R = qa_photo_reviews
# Lawley's clock runs all the time with a 2-hour target; Mohadin keeps WORKING_HOURS and
# has no target.
QUEUE_YAML = PROJECTS_YAML.replace(
    "    description: Lawley Activation 3 group\n",
    "    description: Lawley Activation 3 group\n    working_hours: always\n"
    "    review_target: 2h\n",
)
ALL_STEPS = {s: True for s in STEP_COLUMNS}


@dataclass
class Desk:
    client: TestClient
    store: ReviewStore
    people: People
    bridge: FakeBridge

    def as_(self, role: str) -> dict[str, str]:
        return self.people.bearer(role)

    def id_of(self, drop: str, project: str = "Lawley") -> str:
        return str(review(self.store, drop, project)["id"])

    def get(self, path: str, role: str = "viewer") -> Any:
        return self.client.get(path, headers=self.as_(role))

    def post(self, path: str, role: str = "reviewer", **body: Any) -> Any:
        return self.client.post(path, json=body or None, headers=self.as_(role))

    def drops(self, query: str = "") -> dict[str, Any]:
        answer = self.get(f"/api/wa-monitor-drops?pageSize=500{query}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def numbers(self, query: str = "") -> list[str]:
        return [d["dropNumber"] for d in self.drops(query)["data"]]

    def drop(self, drop: str) -> dict[str, Any]:
        answer = self.get(f"/api/wa-monitor-drops/{self.id_of(drop)}")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]["drop"]
        return data

    def patch(self, drop: str, role: str = "reviewer", **body: Any) -> Any:
        return self.client.patch(
            f"/api/wa-monitor-drops/{self.id_of(drop)}", json=body, headers=self.as_(role)
        )

    def send_feedback(self, drop: str, key: str) -> Any:
        body = {"dropId": self.id_of(drop), "dropNumber": drop, "message": f"{drop}\nfix it"}
        headers = {**self.as_("reviewer"), "Idempotency-Key": key}
        return self.client.post("/api/wa-monitor-send-feedback", json=body, headers=headers)

    def history(self, drop: str) -> list[tuple[str, str]]:
        t, review_id = review_edits, uuid.UUID(self.id_of(drop))
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(t.c.actor, t.c.action).where(t.c.review_id == review_id).order_by(t.c.id)
            ).all()
        return [(r.actor, r.action) for r in rows]


@pytest.fixture
def desk(store: ReviewStore) -> Iterator[Desk]:
    people = add_people(store, ("viewer", "reviewer", "reviewer2", "admin"))
    config = parse_config(QUEUE_YAML, Path("projects.yaml"))
    with running_bridge() as bridge:
        app = create_app(
            settings_for(store.url, bridge.url),
            config,
            store,
            bridge=BridgeClient(bridge.url, timeout=2),
            run_sender=False,
        )
        with TestClient(app) as http:
            yield Desk(http, store, people, bridge)


def set_invalid(store: ReviewStore, drop: str) -> None:
    # The drop-list import sets it; here the column is written as it would.
    with store.begin() as conn:
        conn.execute(sa.update(R).where(R.c.drop_number == drop).values(invalid=True))


# -- the generated columns agree with core.queue ----------------------------------------


def test_the_databases_state_rank_and_wait_agree_with_core_queue(desk: Desk) -> None:
    expected: dict[str, str] = {}

    def posted(drop: str, minutes: float) -> None:
        record(desk.store, post(drop, minutes_ago(minutes)))

    posted("DR30000001", 90)  # only posted
    expected["DR30000001"] = queue.NEW
    posted("DR30000002", 90)
    posted("DR30000002", 60)  # posted again before any feedback
    expected["DR30000002"] = queue.NEW
    posted("DR30000003", 90)
    assert desk.send_feedback("DR30000003", "key-queue-3").status_code == 200
    expected["DR30000003"] = queue.NEEDS_CORRECTION
    posted("DR30000005", 90)
    assert desk.patch("DR30000005", **ALL_STEPS, completed=True).status_code == 200
    expected["DR30000005"] = queue.APPROVED
    posted("DR30000006", 90)
    assert desk.post(f"/api/wa-monitor-drops/{desk.id_of('DR30000006')}/lock").status_code == 200
    expected["DR30000006"] = queue.IN_REVIEW
    posted("DR30000007", 90)
    set_invalid(desk.store, "DR30000007")
    expected["DR30000007"] = queue.INVALID
    # Feedback the bridge may not have delivered, then marked as sent by the reviewer.
    posted("DR30000008", 90)
    desk.bridge.answer(RESET)
    unconfirmed = desk.send_feedback("DR30000008", "key-queue-8")
    assert unconfirmed.json()["data"]["status"] == "unconfirmed", unconfirmed.text
    outbox = unconfirmed.json()["data"]["outboxId"]
    marked = desk.post(f"/api/wa-monitor-feedback-outbox/{outbox}/mark-sent")
    assert marked.status_code == 200, marked.text
    expected["DR30000008"] = queue.NEEDS_CORRECTION
    assert_agree(desk, expected)


def assert_agree(desk: Desk, expected: dict[str, str]) -> None:
    """The generated columns are what core.queue derives from the same row, and expected."""
    rows = {r["drop_number"]: r for r in desk.store.reviews()}
    for drop, state in expected.items():
        row = rows[drop]
        assert (drop, row["review_state"]) == (drop, state)
        assert row["review_state"] == queue.state_of(row)
        assert row["queue_rank"] == queue.rank_of(row)
        assert row["waiting_since"] == queue.waiting_since_of(row)
        assert desk.drop(drop)["reviewState"] == state


def test_a_drop_posted_again_after_feedback_is_resubmitted_until_approved(desk: Desk) -> None:
    for drop in ("DR30000004", "DR30000009"):
        record(desk.store, post(drop, minutes_ago(90)))
        assert desk.send_feedback(drop, f"key-queue-{drop}").status_code == 200
        record(desk.store, post(drop, datetime.now(UTC) + timedelta(seconds=1)))
    assert desk.patch("DR30000009", **ALL_STEPS, completed=True).status_code == 200
    assert_agree(desk, {"DR30000004": queue.RESUBMITTED, "DR30000009": queue.APPROVED})
    # A resubmission waits since it was posted, not since the first post.
    row = review(desk.store, "DR30000004")
    assert row["waiting_since"] == row["last_message_date"]


# -- the list ---------------------------------------------------------------------------


def queue_world(desk: Desk) -> None:
    """One drop of each kind: two new, one in review, one waiting for the installer, an
    approved one and an invalid number."""
    record(
        desk.store,
        post("DR40000001", minutes_ago(50)),
        post("DR40000002", minutes_ago(40)),
        post("DR40000003", minutes_ago(45)),
        post("DR40000004", minutes_ago(44)),
        post("DR40000005", minutes_ago(60)),
        post("DR40000006", minutes_ago(70)),
    )
    assert desk.post(f"/api/wa-monitor-drops/{desk.id_of('DR40000003')}/lock").status_code == 200
    assert desk.send_feedback("DR40000004", "key-queue-w4").status_code == 200
    assert desk.patch("DR40000005", **ALL_STEPS, completed=True).status_code == 200
    set_invalid(desk.store, "DR40000006")


def test_the_list_is_the_work_queue_oldest_waiting_first(desk: Desk) -> None:
    queue_world(desk)
    assert desk.numbers() == [
        "DR40000001",  # new, waiting 50 minutes
        "DR40000003",  # in review, 45 minutes
        "DR40000002",  # new, 40 minutes
        "DR40000004",  # waiting for the installer
        "DR40000005",  # approved
        "DR40000006",  # invalid
    ]
    # The old order on demand: the newest message first.
    assert desk.numbers("&sort=latest") == [
        "DR40000002",
        "DR40000004",
        "DR40000003",
        "DR40000001",
        "DR40000005",
        "DR40000006",
    ]


def test_the_list_filters_by_state_and_the_summary_counts_each_state(desk: Desk) -> None:
    queue_world(desk)
    waiting = desk.drops("&reviewState=in_review,new")
    assert [d["dropNumber"] for d in waiting["data"]] == ["DR40000001", "DR40000003", "DR40000002"]
    assert {d["reviewState"] for d in waiting["data"]} == {"new", "in_review"}
    assert waiting["summary"]["total"] == 3
    assert desk.numbers("&reviewState=in_review&assignedAgent=reviewer") == ["DR40000003"]
    assert desk.numbers("&assignedAgent=reviewer2") == []
    assert desk.numbers("&reviewState=invalid") == ["DR40000006"]
    # The export takes the same filters.
    export = desk.get("/api/wa-monitor-drops.csv?reviewState=invalid,approved")
    assert export.status_code == 200, export.text
    exported = [r["dropNumber"] for r in csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")))]
    assert exported == ["DR40000005", "DR40000006"]
    summary = desk.drops()["summary"]
    assert summary["byState"] == {
        "new": 2,
        "resubmitted": 0,
        "in_review": 1,
        "needs_correction": 1,
        "approved": 1,
        "invalid": 1,
    }
    # The invalid number is listed but is no drop.
    assert (summary["total"], summary["complete"], summary["incomplete"]) == (5, 1, 4)
    unknown = desk.get("/api/wa-monitor-drops?reviewState=new,pending")
    assert unknown.status_code == 422
    assert "pending" in unknown.json()["error"]["message"]


def test_invalid_numbers_are_listed_but_never_counted_as_drops(desk: Desk) -> None:
    record(
        desk.store,
        post("DR41000001", today_minutes_ago(30)),
        post("DR41000002", today_minutes_ago(20)),
        post("DR41000003", today_minutes_ago(10), project="Mohadin"),
    )
    set_invalid(desk.store, "DR41000002")
    body = desk.drops()
    assert [d["dropNumber"] for d in body["data"]][-1] == "DR41000002"
    assert body["meta"]["pagination"]["total"] == 3  # every listed review has a page
    assert body["summary"]["total"] == 2
    daily = desk.get("/api/wa-monitor-daily-drops").json()["data"]
    assert daily["total"] == 2
    assert {d["project"]: d["count"] for d in daily["drops"]} == {"Lawley": 1, "Mohadin": 1}
    stats = desk.get("/api/wa-monitor-project-stats?project=Lawley").json()["data"]["stats"]
    assert stats["today"]["total"] == 1 and stats["allTime"]["total"] == 1
    projects = desk.get("/api/wa-monitor-projects-summary").json()["data"]
    assert projects["totals"]["total"] == 2
    assert {p["project"]: p["total"] for p in projects["byProject"]} == {
        "Lawley": 1,
        "Mohadin": 1,
    }


def test_the_projects_summary_counts_failures_by_reason(desk: Desk) -> None:
    record(
        desk.store,
        post("DR42000001", today_minutes_ago(30)),
        post("DR42000002", today_minutes_ago(20)),
        post("DR42000003", today_minutes_ago(10)),
    )
    pole = "step_02_cable_from_pole"
    reasons = {
        "DR42000001": {pole: ["blurred", "wrong angle"]},
        "DR42000002": {pole: ["Blurred"], "step_08_ont_barcode": ["serial unreadable"]},
        "DR42000003": {pole: ["blurred"]},
    }
    with desk.store.begin() as conn:
        for drop, picked in reasons.items():
            conn.execute(
                sa.update(R)
                .where(R.c.drop_number == drop)
                .values(incorrect_reasons=picked, incorrect_steps=list(picked), incomplete=True)
            )
    set_invalid(desk.store, "DR42000003")  # not a drop: its reasons do not count
    failures = desk.get("/api/wa-monitor-projects-summary").json()["data"]["failuresByReason"]
    assert [(f["step"], f["reason"], f["count"]) for f in failures] == [
        (pole, "blurred", 2),
        (pole, "wrong angle", 1),
        ("step_08_ont_barcode", "serial unreadable", 1),
    ]
    assert failures[0]["label"]


# -- overdue -----------------------------------------------------------------------------


def test_drops_waiting_past_the_projects_target_are_overdue(desk: Desk) -> None:
    record(
        desk.store,
        post("DR43000001", minutes_ago(3 * 60)),  # 3 h: over Lawley's 2 h
        post("DR43000002", minutes_ago(60)),  # 1 h: within it
        post("DR43000003", minutes_ago(5 * 60), project="Mohadin"),  # no target
        post("DR43000004", minutes_ago(4 * 60)),  # approved: waits for nobody
    )
    assert desk.patch("DR43000004", **ALL_STEPS, completed=True).status_code == 200
    body = desk.drops()
    drops = {d["dropNumber"]: d for d in body["data"]}
    assert drops["DR43000001"]["overdue"] is True
    assert drops["DR43000001"]["waitingWorkingHours"] == 3.0  # `always`: wall time
    assert drops["DR43000002"]["overdue"] is False
    assert drops["DR43000002"]["waitingWorkingHours"] == 1.0
    assert drops["DR43000003"]["overdue"] is False
    assert drops["DR43000004"]["overdue"] is False
    assert drops["DR43000004"]["waitingWorkingHours"] is None
    assert body["summary"]["overdue"] == 1
    assert desk.numbers("&overdue=true") == ["DR43000001"]
    assert desk.numbers("&overdue=false") == ["DR43000003", "DR43000002", "DR43000004"]
    # Taken by a reviewer it still waits, and stays overdue until it is judged.
    desk.post(f"/api/wa-monitor-drops/{desk.id_of('DR43000001')}/lock")
    assert desk.numbers("&overdue=true") == ["DR43000001"]
    assert desk.drops("&overdue=true")["summary"]["overdue"] == 1


# -- next drop, assignment ---------------------------------------------------------------


def test_next_drop_gives_the_oldest_waiting_drop_and_holds_it(desk: Desk) -> None:
    record(
        desk.store,
        post("DR44000001", minutes_ago(30)),
        post("DR44000002", minutes_ago(50)),
        post("DR44000003", minutes_ago(90), project="Mohadin"),
    )
    first = desk.post("/api/wa-monitor-drops/next", project="Lawley")
    assert first.status_code == 200, first.text
    taken = first.json()["data"]
    assert taken["dropNumber"] == "DR44000002"
    assert (taken["assignedAgent"], taken["lockedBy"]) == ("reviewer", "reviewer")
    assert taken["reviewState"] == "in_review"
    second = desk.post("/api/wa-monitor-drops/next", "reviewer2").json()["data"]
    assert second["dropNumber"] == "DR44000003"  # any project: Mohadin's is older
    third = desk.post("/api/wa-monitor-drops/next", "reviewer2").json()["data"]
    assert third["dropNumber"] == "DR44000001"
    empty = desk.post("/api/wa-monitor-drops/next")
    assert empty.status_code == 200
    assert empty.json()["data"] is None
    assert empty.json()["message"] == "Nothing waits for review"
    assert desk.numbers("&assignedAgent=reviewer2") == ["DR44000003", "DR44000001"]
    assert ("reviewer", "next") in desk.history("DR44000002")
    # The drop's history, as the dashboard reads it, says who took it.
    edits = desk.get(f"/api/wa-monitor-drops/{taken['id']}").json()["data"]["edits"]
    assert [(e["actor"], e["action"]) for e in edits] == [("reviewer", "next")]
    assert desk.post("/api/wa-monitor-drops/next", "viewer").status_code == 403
    unknown = desk.post("/api/wa-monitor-drops/next", project="Nowhere")
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"] == [{"field": "body.project"}]


def test_two_reviewers_asking_at_once_never_get_the_same_drop(desk: Desk) -> None:
    record(desk.store, *(post(f"DR4500000{i}", minutes_ago(60 - i)) for i in range(6)))
    barrier = threading.Barrier(2)
    taken: dict[str, list[str]] = {"reviewer": [], "reviewer2": []}

    def work(actor: str) -> None:
        while True:
            barrier.wait(timeout=30)  # both ask at the same moment, every round
            row = q.next_drop(desk.store, actor)
            if row is None:
                return
            taken[actor].append(row["drop_number"])

    threads = [threading.Thread(target=work, args=(actor,)) for actor in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    everything = taken["reviewer"] + taken["reviewer2"]
    assert sorted(everything) == [f"DR4500000{i}" for i in range(6)]  # each once
    assert len(taken["reviewer"]) == len(taken["reviewer2"]) == 3
    holders = {r["drop_number"]: r["assigned_agent"] for r in desk.store.reviews()}
    assert all(holders[d] == actor for actor, drops in taken.items() for d in drops)


def test_an_admin_assigns_and_releases_and_the_assignee_releases(desk: Desk) -> None:
    record(desk.store, post("DR46000001", minutes_ago(30)))
    path = f"/api/wa-monitor-drops/{desk.id_of('DR46000001')}"
    assigned = desk.post(f"{path}/assign", "admin", agent="reviewer")
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["data"]["assignedAgent"] == "reviewer"
    assert assigned.json()["data"]["reviewState"] == "in_review"
    assert desk.post(f"{path}/assign", "reviewer", agent="reviewer").status_code == 403
    for nobody in ("viewer", "ghost"):
        refused = desk.post(f"{path}/assign", "admin", agent=nobody)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"] == [{"field": "body.agent"}]
    # Someone else's drop: only its assignee or an admin may release it.
    other = desk.post(f"{path}/release", "reviewer2")
    assert other.status_code == 403
    assert "reviewer" in other.json()["error"]["message"]
    assert other.json()["error"]["details"] == {"assignedAgent": "reviewer"}
    released = desk.post(f"{path}/release", "reviewer")
    assert released.status_code == 200
    assert released.json()["data"]["assignedAgent"] is None
    assert released.json()["data"]["reviewState"] == "new"
    desk.post(f"{path}/assign", "admin", agent="reviewer2")
    assert desk.post(f"{path}/release", "admin").json()["data"]["assignedAgent"] is None
    assert [a for a in desk.history("DR46000001") if a[1] in ("assign", "release")] == [
        ("admin", "assign"),
        ("reviewer", "release"),
        ("admin", "assign"),
        ("admin", "release"),
    ]
    missing = desk.post(f"/api/wa-monitor-drops/{uuid.uuid4()}/release")
    assert missing.status_code == 404
    # An approved drop waits for nobody.
    assert desk.patch("DR46000001", **ALL_STEPS, completed=True).status_code == 200
    assert desk.post(f"{path}/assign", "admin", agent="reviewer").status_code == 409


def test_the_edit_lock_takes_an_unassigned_drop_and_approval_frees_it(desk: Desk) -> None:
    record(desk.store, post("DR47000001", minutes_ago(30)), post("DR47000002", minutes_ago(20)))
    one = f"/api/wa-monitor-drops/{desk.id_of('DR47000001')}"
    locked = desk.post(f"{one}/lock")
    assert locked.json()["data"]["drop"]["assignedAgent"] == "reviewer"
    assert desk.post(f"{one}/unlock").json()["data"]["drop"]["assignedAgent"] is None
    assert [a for _, a in desk.history("DR47000001")] == ["assign", "release"]
    # A drop someone holds stays theirs when another reviewer edits it.
    desk.post(f"{one}/assign", "admin", agent="reviewer2")
    desk.post(f"{one}/lock")
    assert desk.drop("DR47000001")["assignedAgent"] == "reviewer2"
    desk.post(f"{one}/unlock")
    assert desk.drop("DR47000001")["assignedAgent"] == "reviewer2"
    # Approval ends the assignment.
    two = f"/api/wa-monitor-drops/{desk.id_of('DR47000002')}"
    desk.post(f"{two}/lock")
    approved = desk.patch("DR47000002", **ALL_STEPS, completed=True)
    assert approved.status_code == 200, approved.text
    assert approved.json()["data"]["assignedAgent"] is None
    assert approved.json()["data"]["reviewState"] == "approved"
    # An approved drop opened for a look is nobody's.
    desk.post(f"{two}/lock")
    assert desk.drop("DR47000002")["assignedAgent"] is None


def test_a_resubmission_comes_back_to_the_head_of_the_queue(desk: Desk) -> None:
    record(desk.store, post("DR48000001", minutes_ago(90)), post("DR48000002", minutes_ago(30)))
    assert desk.send_feedback("DR48000001", "key-queue-r1").status_code == 200
    assert desk.numbers() == ["DR48000002", "DR48000001"]  # it waits for the installer
    record(desk.store, post("DR48000001", datetime.now(UTC) + timedelta(seconds=1)))
    drops = desk.drops()["data"]
    assert [d["reviewState"] for d in drops] == ["new", "resubmitted"]
    taken = desk.post("/api/wa-monitor-drops/next").json()["data"]
    assert taken["dropNumber"] == "DR48000002"
    again = desk.post("/api/wa-monitor-drops/next", "reviewer2").json()["data"]
    assert again["dropNumber"] == "DR48000001"
    assert desk.drop("DR48000001")["reviewState"] == "in_review"


# -- /metrics ----------------------------------------------------------------------------


def test_metrics_count_the_waiting_drops_per_state_and_the_overdue_ones(desk: Desk) -> None:
    record(
        desk.store,
        post("DR49000001", minutes_ago(3 * 60)),
        post("DR49000002", minutes_ago(4 * 60)),
        post("DR49000003", minutes_ago(30)),
        post("DR49000004", minutes_ago(20), project="Mohadin"),
        post("DR49000005", minutes_ago(10)),
    )
    desk.post(f"/api/wa-monitor-drops/{desk.id_of('DR49000002')}/lock")
    assert desk.send_feedback("DR49000005", "key-queue-metrics").status_code == 200
    config = parse_config(QUEUE_YAML, Path("projects.yaml"))
    clocks = queue.clocks_for(config.projects, WorkingHours.parse("always"))
    registry = database_registry(desk.store, lambda: (clocks, config.zone))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith("wa_monitor_reviews_")
    }
    waiting = "wa_monitor_reviews_waiting"
    assert samples == {
        (waiting, (("project", "Lawley"), ("state", "new"))): 2,
        (waiting, (("project", "Lawley"), ("state", "in_review"))): 1,
        (waiting, (("project", "Lawley"), ("state", "needs_correction"))): 1,
        (waiting, (("project", "Mohadin"), ("state", "new"))): 1,
        # Over Lawley's 2 hours: the new one and the one in review; Mohadin has no target.
        ("wa_monitor_reviews_overdue", (("project", "Lawley"),)): 2,
    }
    # Without the clocks (no projects file) the families are there, nothing is overdue.
    names = {f.name: f.samples for f in database_registry(desk.store).collect()}
    assert names["wa_monitor_reviews_overdue"] == []
    assert len(names["wa_monitor_reviews_waiting"]) == 4


def test_the_dashboards_metrics_count_overdue_drops_by_its_projects_file(desk: Desk) -> None:
    record(desk.store, post("DR49100001", minutes_ago(3 * 60)), post("DR49100002", minutes_ago(5)))
    text = desk.get("/metrics", "admin").text
    assert 'wa_monitor_reviews_overdue{project="Lawley"} 1.0' in text
    assert 'wa_monitor_reviews_waiting{project="Lawley",state="new"} 2.0' in text


# -- the queue's first page is an index read --------------------------------------------


def test_the_queues_first_page_is_read_from_its_index(store: ReviewStore) -> None:
    record(store, *(post(f"DR5000000{i}", minutes_ago(60 - i)) for i in range(5)))
    config = parse_config(QUEUE_YAML, Path("projects.yaml"))
    zone, hours = config.zone, WorkingHours.parse("always")
    cutoffs = queue.clocks_for(config.projects, hours).cutoffs(datetime.now(UTC), zone)
    explain = "EXPLAIN " if store.engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    # (A filter on a rare state may rather use ix_qa_photo_reviews_state: the planner's call.)
    for f in (q.DropFilter(), q.DropFilter(overdue=True), q.DropFilter(overdue=False)):
        page = q._ordered(sa.select(R).where(*q._conditions(f, zone, cutoffs)), f.sort).limit(50)
        sql = str(page.compile(store.engine, compile_kwargs={"literal_binds": True}))
        with store.begin() as conn:
            if store.engine.dialect.name == "postgresql":
                # A handful of rows would be read whole; ask whether the index can serve.
                conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(
                str(row[-1]) for row in conn.exec_driver_sql(explain + sql.replace("%", "%%"))
            )
        assert "ix_qa_photo_reviews_queue" in plan, (f, plan)
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, (f, plan)
