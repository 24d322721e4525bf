"""The front end's drop-number validation, on both backends, as its page calls it."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from tests.integration.test_api_support import (
    TestClient,
    add_people,
    post,
    projects_config,
    record,
    review,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.store import drop_lists, manual_drops
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import drop_list_imports, drop_submissions, review_edits
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app

ZONE = projects_config().zone
URL = "/api/wa-monitor-dr-validation"


@pytest.fixture
def front_end(store: ReviewStore) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The front end's proxy: a reviewer's front-end token, acting for Janice."""
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    add_people(store)
    token = create_token(store, "reviewer", "next.js", front_end=True)[1]
    headers = {"Authorization": f"Bearer {token}", "X-Acting-User": "Janice"}
    with TestClient(app) as client:
        yield client, headers


def _today() -> date:
    return today_minutes_ago(0).astimezone(ZONE).date()


def _local(when: datetime) -> str:
    return when.astimezone(ZONE).strftime("%H:%M")


def _validate(
    client: TestClient,
    headers: dict[str, str],
    data: bytes,
    day: date | str,
    *,
    project: str = "Lawley",
    filename: str = "janice.csv",
) -> dict[str, object]:
    done = client.post(
        URL,
        files={"file": (filename, data, "text/csv")},
        data={"project": project, "date": str(day)},
        headers=headers,
    )
    assert done.status_code == 200, done.text
    result: dict[str, object] = done.json()["data"]
    return result


def test_the_days_list_is_matched_against_the_drops_the_group_posted(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    matched, extra = today_minutes_ago(50), today_minutes_ago(40)
    record(store, post("DR11111111", matched), post("DR33333333", extra))
    record(store, post("DR44444444", today_minutes_ago(30), project="Mohadin"))
    record(store, post("DR55555555", matched - timedelta(days=3)))  # another day
    day = _today()
    csv = (
        f"Date,DR nr,Time\n{day:%d/%m/%Y},DR11111111,09:05\n{day:%d/%m/%Y},DR22222222,9:30\n"
        f"{day},DR55555555,\n{day},DR11111111,10:00\n,not a drop,\n"
    ).encode()

    result = _validate(client, headers, csv, day)

    assert [(r["dropNumber"], r["date"], r["time"]) for r in result["inCsvAndDb"]] == [  # type: ignore[attr-defined]
        ("DR11111111", str(day), "09:05")
    ]
    missing = {r["dropNumber"]: r for r in result["inCsvNotInDb"]}  # type: ignore[attr-defined]
    assert sorted(missing) == ["DR22222222", "DR55555555"]
    assert missing["DR22222222"]["postedAt"] is None
    assert missing["DR55555555"]["postedAt"] is not None  # posted, on another day
    assert [r["listed"] for r in missing.values()] == [None, None]  # Lawley has no list
    [only] = result["inDbNotInCsv"]  # type: ignore[misc]
    extra_review = review(store, "DR33333333")
    assert only == {
        "id": str(extra_review["id"]),
        "dropNumber": "DR33333333",
        "date": str(day),
        "time": _local(extra),
        "project": "Lawley",
        "completed": False,
        "incomplete": False,
    }
    assert (result["csvTotal"], result["dbTotal"]) == (3, 2)
    assert (result["duplicates"], result["rejected"]) == (1, 1)
    assert result["rejectedCells"] == [{"row": 6, "value": "not a drop"}]


def test_a_file_sent_for_its_dates_gives_every_row_its_own_date(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    # The page posts a chosen file with the date 2000-01-01 to read the file's dates.
    client, headers = front_end
    record(store, post("DR11111111", today_minutes_ago(30)))
    csv = b"Date;DR nr;Time\n25/11/2025;DR11111111;08:00\n26/11/2025;DR22222222;08:10\n"

    result = _validate(client, headers, csv, "2000-01-01")

    assert result["inCsvAndDb"] == [] and result["dbTotal"] == 0
    assert [r["date"] for r in result["inCsvNotInDb"]] == ["2025-11-25", "2025-11-26"]  # type: ignore[attr-defined]


def test_a_workbook_with_one_block_per_project_is_read_for_the_project_asked(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    posted = today_minutes_ago(20)
    record(store, post("DR44444444", posted, project="Mohadin"))
    day = _today()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Lawley Activation", None, None, "Mohadin Activations", None, None])
    sheet.append(["Date", "DR nr", "Time", "Date", "DR nr", "Time"])
    sheet.append(
        [day, "DR11111111", 0.375, datetime.combine(day, datetime.min.time()), "DR44444444", 0.5]
    )
    sheet.append([None, None, None, (day - date(1899, 12, 30)).days, 12345678, "14:15"])
    data = io.BytesIO()
    book.save(data)

    result = _validate(
        client, headers, data.getvalue(), day, project="Mohadin", filename="week.xlsx"
    )

    assert [(r["dropNumber"], r["time"]) for r in result["inCsvAndDb"]] == [  # type: ignore[attr-defined]
        ("DR44444444", "12:00")
    ]
    assert [(r["dropNumber"], r["date"], r["time"]) for r in result["inCsvNotInDb"]] == [  # type: ignore[attr-defined]
        ("DR12345678", str(day), "14:15")
    ]
    lawley = _validate(client, headers, data.getvalue(), day, filename="week.xlsx")
    assert [(r["dropNumber"], r["time"]) for r in lawley["inCsvNotInDb"]] == [  # type: ignore[attr-defined]
        ("DR11111111", "09:00")
    ]


def test_the_days_drops_are_listed_oldest_first_without_invalid_numbers(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    first, second = today_minutes_ago(50), today_minutes_ago(10)
    drop_lists.replace(store, "Lawley", ["DR11111111", "DR22222222"], actor="admin")
    record(store, post("DR22222222", second), post("DR11111111", first))
    record(store, post("DR99999999", second))  # not on the list: no drop

    done = client.get(URL, params={"project": "Lawley", "date": str(_today())}, headers=headers)

    assert done.status_code == 200, done.text
    body = done.json()["data"]
    assert [(d["dropNumber"], d["time"]) for d in body["drops"]] == [
        ("DR11111111", _local(first)),
        ("DR22222222", _local(second)),
    ]
    assert body["total"] == 2


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"date": "2025-11-25"}, 422, "VALIDATION_ERROR"),
        ({"project": "Lawley"}, 422, "VALIDATION_ERROR"),
        ({"project": "Lawley", "date": "25/11/2025"}, 422, "VALIDATION_ERROR"),
        ({"project": "Lawley", "date": "0001-01-01"}, 422, "VALIDATION_ERROR"),
        ({"project": "Nowhere", "date": "2025-11-25"}, 404, "NOT_FOUND"),
    ],
)
def test_a_day_asked_badly_is_refused_clearly(
    front_end: tuple[TestClient, dict[str, str]],
    params: dict[str, str],
    status: int,
    code: str,
) -> None:
    client, headers = front_end
    done = client.get(URL, params=params, headers=headers)
    assert done.status_code == status, done.text
    assert done.json()["error"]["code"] == code


def test_uploads_that_cannot_be_compared_are_refused_and_store_nothing(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    cases = [
        ({"project": "Lawley"}, b"DR nr\nDR11111111\n", 422),  # no date
        ({"date": "2025-11-25"}, b"DR nr\nDR11111111\n", 422),  # no project
        ({"project": "Lawley", "date": "2025-13-01"}, b"DR nr\nDR11111111\n", 422),
        ({"project": "Nowhere", "date": "2025-11-25"}, b"DR nr\nDR11111111\n", 404),
        ({"project": "Lawley", "date": "2025-11-25"}, b"", 422),  # an empty list
        ({"project": "Lawley", "date": "2025-11-25"}, b"DR nr\nnothing\n", 422),
        ({"project": "Mohadin", "date": "2025-11-25"}, b"Lawley,,\nDate,DR nr,Time\n", 422),
    ]
    for fields, data, status in cases:
        done = client.post(
            URL, files={"file": ("list.csv", data, "text/csv")}, data=fields, headers=headers
        )
        assert done.status_code == status, (fields, data, done.text)
        assert done.json()["error"]["message"]
    no_file = client.post(URL, data={"project": "Lawley", "date": "2025-11-25"}, headers=headers)
    assert no_file.status_code == 422
    assert drop_lists.info(store) == []


def _edits(store: ReviewStore, review_id: object) -> list[tuple[str, str]]:
    e = review_edits
    with store.begin() as conn:
        rows = conn.execute(
            sa.select(e.c.actor, e.c.action).where(e.c.review_id == review_id).order_by(e.c.id)
        )
        return [(r.actor, r.action) for r in rows]


def _day(client: TestClient, headers: dict[str, str], day: date | str) -> list[str]:
    done = client.get(URL, params={"project": "Lawley", "date": str(day)}, headers=headers)
    assert done.status_code == 200, done.text
    return [d["dropNumber"] for d in done.json()["data"]["drops"]]


def _listed(client: TestClient, headers: dict[str, str], **params: str) -> dict[str, Any]:
    done = client.get("/api/wa-monitor-drops", params=params, headers=headers)
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    return body


def test_adding_the_missing_records_their_drops_as_the_front_end_does(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    record(store, post("DR11111111", today_minutes_ago(30)))
    day = _today()
    missing = [
        {"date": str(day), "dropNumber": "22222222", "time": "9:05"},
        {"date": f"{day:%d/%m/%Y}", "dropNumber": "DR33333333", "time": ""},
        {"date": str(day), "dropNumber": "DR11111111", "time": "08:00"},  # posted already
        {"date": str(day), "dropNumber": "DR33333333", "time": "10:00"},  # a repeat
    ]

    done = client.put(URL, json={"drops": missing, "project": "Lawley"}, headers=headers)

    assert done.status_code == 201, done.text
    assert done.json()["message"] == "2 drop(s) added successfully"
    data = done.json()["data"]
    two, three = review(store, "DR22222222"), review(store, "DR33333333")
    assert (data["inserted"], sorted(data["ids"])) == (
        2,
        sorted([str(two["id"]), str(three["id"])]),
    )
    assert data["listed"] is None and drop_lists.info(store) == []  # Lawley has no list
    for row, clock in ((two, "09:05"), (three, "00:00")):
        assert row["user_name"] == "Manual Entry"
        assert (row["incomplete"], row["completed"], row["invalid"]) == (True, False, False)
        local = row["whatsapp_message_date"].astimezone(ZONE)
        assert (local.date(), local.strftime("%H:%M"), row["review_date"]) == (day, clock, day)
        assert _edits(store, row["id"]) == [("Janice", "manual-entry")]
    assert review(store, "DR11111111")["user_name"] == "Thabo Installer"  # left alone
    shown = _day(client, headers, day)
    assert sorted(shown) == ["DR11111111", "DR22222222", "DR33333333"]
    assert shown.index("DR33333333") < shown.index("DR22222222")  # 00:00, then 09:05
    listed = _listed(client, headers, project="Lawley")
    assert {d["dropNumber"] for d in listed["data"]} == {"DR11111111", "DR22222222", "DR33333333"}

    again = client.put(URL, json={"drops": missing, "project": "Lawley"}, headers=headers)

    assert again.status_code == 201, again.text
    assert (again.json()["data"]["inserted"], again.json()["data"]["ids"]) == (0, [])
    assert len(store.reviews()) == 3


def test_added_numbers_go_on_the_projects_list_when_it_has_one(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")
    missing = [{"date": str(_today()), "dropNumber": "DR22222222", "time": "09:05"}]

    done = client.put(URL, json={"drops": missing, "project": "Lawley"}, headers=headers)

    assert done.status_code == 201, done.text
    assert (done.json()["data"]["inserted"], done.json()["data"]["listed"]) == (1, 1)
    assert drop_lists.is_listed(store, "Lawley", "DR22222222")
    assert review(store, "DR22222222")["invalid"] is False
    with store.begin() as conn:
        audit = conn.execute(sa.select(drop_list_imports).order_by(drop_list_imports.c.id)).all()
    assert [(a.actor, a.added, a.total) for a in audit][-1] == ("Janice", 1, 2)


def test_the_groups_later_post_of_a_drop_entered_by_hand_is_its_first_submission(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    missing = [{"date": str(_today()), "dropNumber": "DR22222222", "time": "00:01"}]
    entered = client.put(URL, json={"drops": missing, "project": "Lawley"}, headers=headers)
    [review_id] = entered.json()["data"]["ids"]

    record(store, post("DR22222222", today_minutes_ago(20), name="Thabo Installer"))

    posted = review(store, "DR22222222")
    assert str(posted["id"]) == review_id
    assert (posted["user_name"], posted["incomplete"], posted["resubmitted"]) == (
        "Thabo Installer",
        False,
        False,
    )
    assert posted["review_state"] == "new" and posted["comment"] is None
    with store.begin() as conn:
        kinds = conn.execute(sa.select(drop_submissions.c.kind)).scalars().all()
    assert kinds == ["new"]
    record(store, post("DR22222222", today_minutes_ago(10)))  # posted again: resubmitted
    assert review(store, "DR22222222")["resubmitted"] is True


def test_concurrent_additions_of_one_number_record_one_review(
    store: ReviewStore,
) -> None:
    start = threading.Barrier(4)
    when = datetime.combine(_today(), datetime.min.time(), ZONE)
    drop = manual_drops.ManualDrop("DR22222222", when, _today())

    def add(_: int) -> int:
        start.wait()
        return manual_drops.add(store, "Lawley", [drop], actor="Janice").inserted

    with ThreadPoolExecutor(4) as pool:
        inserted = list(pool.map(add, range(4)))

    assert sorted(inserted) == [0, 0, 0, 1]
    [only] = store.reviews()
    assert len(_edits(store, only["id"])) == 1


def test_bad_additions_are_refused_and_nothing_is_written(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")
    one = [{"date": "2025-11-25", "dropNumber": "DR22222222", "time": ""}]
    for body, status, fields in [
        (
            {"drops": [*one, {"dropNumber": "hello"}], "project": "Lawley"},
            422,
            ["drops.1.dropNumber"],
        ),
        (
            {"drops": [{"dropNumber": "DR22222222", "date": "31/02/2025"}], "project": "Lawley"},
            422,
            ["drops.0.date"],
        ),
        (
            {"drops": [{"dropNumber": "DR22222222", "date": "1900-01-01"}], "project": "Lawley"},
            422,
            ["drops.0.date"],
        ),
        ({"drops": [], "project": "Lawley"}, 422, None),
        ({"project": "Lawley"}, 422, None),
        ({"drops": one}, 422, None),
        ({"drops": one, "project": "Nowhere"}, 404, None),
    ]:
        done = client.put(URL, json=body, headers=headers)
        assert done.status_code == status, (body, done.text)
        if fields is not None:
            got = [d["field"].removeprefix("body.") for d in done.json()["error"]["details"]]
            assert got == fields, done.text
    assert store.reviews() == []
    [info] = drop_lists.info(store)
    assert info.total == 1 and info.imported_by == "admin"


def test_a_drop_without_a_date_is_added_for_today_at_midnight(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    body = {"drops": [{"dropNumber": "DR22222222", "time": "lunch"}], "project": "Lawley"}

    done = client.put(URL, json=body, headers=headers)

    assert done.status_code == 201, done.text
    local = review(store, "DR22222222")["whatsapp_message_date"].astimezone(ZONE)
    assert (local.date(), local.strftime("%H:%M")) == (_today(), "00:00")


def test_deleting_a_drop_marks_it_invalid_and_the_front_ends_lists_leave_it_out(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    record(
        store, post("DR11111111", today_minutes_ago(30)), post("DR33333333", today_minutes_ago(20))
    )
    extra = review(store, "DR33333333")

    done = client.delete(URL, params={"id": str(extra["id"])}, headers=headers)
    again = client.delete(URL, params={"id": str(extra["id"])}, headers=headers)

    assert done.status_code == again.status_code == 200, (done.text, again.text)
    expected = {
        "deleted": True,
        "id": str(extra["id"]),
        "dropNumber": "DR33333333",
        "project": "Lawley",
        "invalid": True,
    }
    assert done.json()["data"] == again.json()["data"] == expected
    kept = review(store, "DR33333333")
    assert kept["invalid"] is True and kept["id"] == extra["id"]
    assert _edits(store, extra["id"]) == [("Janice", "invalidate")]
    assert drop_lists.info(store) == []  # no list made for it
    assert _day(client, headers, _today()) == ["DR11111111"]
    theirs = _listed(client, headers)
    assert [d["dropNumber"] for d in theirs["data"]] == ["DR11111111"]
    assert theirs["summary"]["total"] == 1 and theirs["pagination"]["totalDrops"] == 1
    one = _listed(client, headers, id=str(extra["id"]))
    assert one["data"]["dropNumber"] == "DR33333333"
    asked = _listed(client, headers, reviewState="invalid")
    assert [d["dropNumber"] for d in asked["data"]] == ["DR33333333"]
    # WA Monitor's own dashboard still sees it, last, invalid.
    own = {"Authorization": f"Bearer {create_token(store, 'reviewer', 'own')[1]}"}
    ours = _listed(client, own)
    assert [(d["dropNumber"], d["reviewState"]) for d in ours["data"]][-1] == (
        "DR33333333",
        "invalid",
    )
    assert len(ours["data"]) == 2


def test_deleting_takes_the_number_off_the_projects_list_when_it_has_one(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    drop_lists.replace(store, "Lawley", ["DR11111111", "DR33333333"], actor="admin")
    record(store, post("DR33333333", today_minutes_ago(20)))
    extra = review(store, "DR33333333")

    done = client.delete(URL, params={"id": str(extra["id"])}, headers=headers)

    assert done.status_code == 200, done.text
    assert review(store, "DR33333333")["invalid"] is True
    assert not drop_lists.is_listed(store, "Lawley", "DR33333333")
    with store.begin() as conn:
        last = conn.execute(
            sa.select(drop_list_imports).order_by(drop_list_imports.c.id.desc()).limit(1)
        ).one()
    assert (last.actor, last.removed) == ("Janice", 1)


def test_a_list_makes_a_drop_deleted_by_hand_valid_only_when_it_holds_its_number(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    record(
        store, post("DR11111111", today_minutes_ago(30)), post("DR33333333", today_minutes_ago(20))
    )
    extra = review(store, "DR33333333")
    client.delete(URL, params={"id": str(extra["id"])}, headers=headers)

    drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")
    assert review(store, "DR33333333")["invalid"] is True
    drop_lists.replace(store, "Lawley", [], actor="admin")  # the list removed: all valid...
    assert review(store, "DR11111111")["invalid"] is False
    assert review(store, "DR33333333")["invalid"] is True  # ...but the one deleted by hand

    drop_lists.replace(store, "Lawley", ["DR11111111", "DR33333333"], actor="admin")

    assert review(store, "DR33333333")["invalid"] is False
    assert _edits(store, extra["id"]) == [("Janice", "invalidate"), ("admin", "validate")]
    drop_lists.replace(store, "Lawley", [], actor="admin")
    assert review(store, "DR33333333")["invalid"] is False  # the list's word stands


def test_adding_a_deleted_drop_again_makes_it_valid(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    record(store, post("DR33333333", today_minutes_ago(20)))
    extra = review(store, "DR33333333")
    client.delete(URL, params={"id": str(extra["id"])}, headers=headers)
    missing = [{"date": str(_today()), "dropNumber": "DR33333333", "time": "09:00"}]

    done = client.put(URL, json={"drops": missing, "project": "Lawley"}, headers=headers)

    assert done.status_code == 201, done.text
    data = done.json()["data"]
    assert (data["inserted"], data["ids"], data["restored"]) == (1, [str(extra["id"])], 1)
    back = review(store, "DR33333333")
    assert back["invalid"] is False and back["user_name"] == "Thabo Installer"
    assert _edits(store, extra["id"]) == [("Janice", "invalidate"), ("Janice", "validate")]
    assert _day(client, headers, _today()) == ["DR33333333"]


def test_deleting_is_refused_clearly_when_it_cannot_be_done(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    record(store, post("DR11111111", today_minutes_ago(30)))
    cases = [
        ({"id": "00000000-0000-0000-0000-000000000000"}, 404, "NOT_FOUND"),
        ({"id": "not-an-id"}, 422, "VALIDATION_ERROR"),
        ({}, 422, "VALIDATION_ERROR"),
    ]
    for params, status, code in cases:
        done = client.delete(URL, params=params, headers=headers)
        assert done.status_code == status, (params, done.text)
        assert done.json()["error"]["code"] == code
    assert review(store, "DR11111111")["invalid"] is False


def test_other_methods_are_405_with_the_allowed_ones_and_viewers_only_read(
    front_end: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = front_end
    done = client.patch(URL, json={}, headers=headers)
    assert done.status_code == 405
    assert done.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert done.headers["Allow"] == "GET, HEAD, POST, PUT, DELETE"
    viewer = {"Authorization": f"Bearer {create_token(store, 'viewer', 'fe', front_end=True)[1]}"}
    read = client.get(URL, params={"project": "Lawley", "date": "2025-11-25"}, headers=viewer)
    assert read.status_code == 200
    write = client.put(
        URL, json={"drops": [{"dropNumber": "DR1"}], "project": "Lawley"}, headers=viewer
    )
    assert write.status_code == 403
    assert client.get(URL, params={"project": "Lawley", "date": "2025-11-25"}).status_code == 401
