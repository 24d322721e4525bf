"""The CSV and XLSX exports on both backends: what a reviewer reads back in a spreadsheet."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from tests.integration.test_api import FORMULA_STARTS, formula_like
from tests.integration.test_api_support import (
    LAWLEY_JID,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox, group_messages, qa_photo_reviews
from wa_monitor.web import exports
from wa_monitor.web.app import create_app

SAST = ZoneInfo("Africa/Johannesburg")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Exports:
    client: TestClient
    store: ReviewStore
    people: People

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params, headers=self.people.bearer("viewer"))
        assert response.status_code == 200, response.text
        return response

    def csv(self, **params: Any) -> list[dict[str, str]]:
        response = self.get("/api/wa-monitor-drops.csv", **params)
        assert response.headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(response.text, newline="")))

    def xlsx(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/api/wa-monitor-drops.xlsx", **params)
        assert response.headers["content-type"] == XLSX
        assert 'filename="wa-monitor-drops-' in response.headers["content-disposition"]
        sheet = load_workbook(io.BytesIO(response.content)).active
        assert sheet is not None
        rows = list(sheet.iter_rows())
        header = [c.value for c in rows[0]]
        assert header == list(exports.COLUMNS)
        for row in rows[1:]:
            assert not [c.coordinate for c in row if c.data_type == "f"]  # no formulas
        return [dict(zip(header, (c.value for c in row), strict=True)) for row in rows[1:]]

    def listed(self, **params: Any) -> list[str]:
        response = self.get("/api/wa-monitor-drops", pageSize=500, **params)
        return [d["dropNumber"] for d in response.json()["data"]]


@pytest.fixture
def ex(store: ReviewStore) -> Iterator[Exports]:
    people = add_people(store)
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with TestClient(app) as client:
        yield Exports(client, store, people)


def reviewed_drop(store: ReviewStore) -> uuid.UUID:
    """DR70000001: held by alice, two steps rejected with reasons and comments, a feedback
    sent, three photos."""
    record(store, post("DR70000001", minutes_ago(90), name="Sipho Dlamini", sender="27831110000"))
    rid: uuid.UUID = review(store, "DR70000001")["id"]
    with store.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.id == rid)
            .values(
                assigned_agent="alice",
                assigned_at=minutes_ago(5),
                step_01_house_photo=True,
                incorrect_steps=["step_08_ont_barcode", "step_03_cable_entry_outside"],
                incorrect_reasons={
                    "step_08_ont_barcode": ["serial unreadable", "blurred"],
                    "step_03_cable_entry_outside": ["wrong angle"],
                },
                incorrect_comments={"step_08_ont_barcode": "retake in daylight"},
                feedback_sent=datetime(2025, 11, 9, 19, 45, tzinfo=SAST),
                feedback_count=1,
            )
        )
        conn.execute(
            sa.insert(feedback_outbox).values(
                review_id=rid,
                drop_number="DR70000001",
                project="Lawley",
                recipient=LAWLEY_JID,
                message="DR70000001: ONT barcode: serial unreadable",
                request_key=uuid.uuid4().hex,
                status="sent",
                requested_by="alice",
                sent_at=minutes_ago(10),
            )
        )
        for i in range(3):
            conn.execute(
                sa.insert(group_messages).values(
                    chat_jid=LAWLEY_JID,
                    message_id=f"3EB0PHOTO{i}",
                    project="Lawley",
                    sender="27831110000",
                    posted_at=minutes_ago(80 - i),
                    media_type="image",
                    status="pending",
                    drop_number="DR70000001",
                    review_id=rid,
                    round=0,
                    link_reason="after",
                )
            )
    return rid


def labels() -> dict[str, str]:
    return dict(projects_config().step_labels)


def test_csv_holds_state_assignee_reasons_comments_feedback_and_photos(ex: Exports) -> None:
    rid = reviewed_drop(ex.store)
    record(ex.store, post("DR70000002", minutes_ago(30)))
    rows = {r["dropNumber"]: r for r in ex.csv()}
    row = rows["DR70000001"]
    step3, step8 = labels()["step_03_cable_entry_outside"], labels()["step_08_ont_barcode"]
    assert row["id"] == str(rid)
    assert (row["reviewState"], row["assignedAgent"]) == ("in_review", "alice")
    assert row["incorrectReasons"] == f"{step3}: wrong angle; {step8}: serial unreadable, blurred"
    assert row["incorrectComments"] == f"{step8}: retake in daylight"
    assert row["feedbackText"] == "DR70000001: ONT barcode: serial unreadable"
    assert (row["photoCount"], row["completedPhotos"]) == ("3", "1")
    assert row["userName"] == "Sipho Dlamini" and row["senderPhone"] == "27831110000"
    assert row["feedbackSentLocal"] == "2025-11-09 19:45 SAST"
    other = rows["DR70000002"]
    assert (other["reviewState"], other["assignedAgent"], other["feedbackText"]) == ("new", "", "")
    assert (other["incorrectReasons"], other["photoCount"]) == ("", "0")


def test_xlsx_has_the_csv_columns_with_real_dates(ex: Exports) -> None:
    reviewed_drop(ex.store)
    record(ex.store, post("DR70000002", minutes_ago(30)))
    by_csv = ex.csv()
    by_xlsx = ex.xlsx()
    assert [r["dropNumber"] for r in by_xlsx] == [r["dropNumber"] for r in by_csv]
    row = next(r for r in by_xlsx if r["dropNumber"] == "DR70000001")
    assert row["feedbackSentLocal"] == datetime(2025, 11, 9, 19, 45)  # a date, local time
    received = review(ex.store, "DR70000001")["whatsapp_message_date"].astimezone(SAST)
    assert row["receivedLocal"] == received.replace(tzinfo=None, microsecond=0)
    assert (row["photoCount"], row["completedPhotos"], row["resubmitted"]) == (3, 1, False)
    assert row["step_01_house_photo"] is True and row["step_02_cable_from_pole"] is False
    # Every text cell says what the CSV's says.
    as_csv = next(r for r in by_csv if r["dropNumber"] == "DR70000001")
    for column in ("reviewState", "assignedAgent", "incorrectReasons", "incorrectComments"):
        assert row[column] == as_csv[column], column
    assert row["feedbackText"] == as_csv["feedbackText"]
    empty = next(r for r in by_xlsx if r["dropNumber"] == "DR70000002")
    assert empty["feedbackSentLocal"] is None and empty["assignedAgent"] is None


def test_both_exports_take_the_lists_filters_and_order_over_every_page(
    ex: Exports, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "PAGE", 3)  # several pages from a few drops
    for i in range(8):
        record(ex.store, post(f"DR7100000{i}", minutes_ago(100 - i)))
    record(ex.store, post("DR72000000", minutes_ago(50), project="Mohadin"))
    reviewed_drop(ex.store)
    everything = ex.listed()
    assert len(everything) == 10
    assert [r["dropNumber"] for r in ex.csv()] == everything
    assert [r["dropNumber"] for r in ex.xlsx()] == everything
    for params in (
        {"project": "Mohadin"},
        {"reviewState": "in_review"},
        {"search": "DR710"},
        {"sort": "latest"},
    ):
        expected = ex.listed(**params)
        assert expected, params
        assert [r["dropNumber"] for r in ex.csv(**params)] == expected, params
        assert [r["dropNumber"] for r in ex.xlsx(**params)] == expected, params


def test_xlsx_text_is_never_a_formula_and_stays_whole(ex: Exports) -> None:
    payload = 'HYPERLINK("http://evil.example","x")'
    for i, start in enumerate(FORMULA_STARTS):
        record(ex.store, post(f"DR7300{i:04d}", minutes_ago(30 - i), name=f"{start}{payload}"))
    record(ex.store, post("DR73999999", minutes_ago(1), name="Bad\x01name\x1f"))
    long = "=" + "x" * 40_000  # longer than a cell holds
    with ex.store.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.drop_number == "DR73999999")
            .values(comment=long)
        )
    rows = ex.xlsx()
    comment = next(r["comment"] for r in rows if r["dropNumber"] == "DR73999999")
    assert len(comment) == 32_767 and comment == long[:32_766] + "…"
    names = {r["userName"] for r in rows}
    # Kept as typed (no quote added: the cell is text); control characters dropped, a CR
    # read as the LF an XML reader makes of it.
    typed = {f"{start}{payload}".replace("\r", "\n") for start in FORMULA_STARTS}
    assert names == typed | {"Badname"}
    # The CSV of the same drops defuses them with a quote.
    cells = [c for r in ex.csv() for c in r.values()]
    assert not [c for c in cells if formula_like(c)]


def test_exports_need_a_signed_in_caller(ex: Exports) -> None:
    for path in ("/api/wa-monitor-drops.csv", "/api/wa-monitor-drops.xlsx"):
        assert ex.client.get(path).status_code == 401
        bad = ex.client.get(path, params={"dateFrom": "2025-11-10", "dateTo": "2025-11-01"})
        assert bad.status_code == 401
        wrong = ex.client.get(
            path,
            params={"dateFrom": "2025-11-10", "dateTo": "2025-11-01"},
            headers=ex.people.bearer("viewer"),
        )
        assert wrong.status_code == 422 and "dateFrom" in wrong.json()["error"]["message"]
