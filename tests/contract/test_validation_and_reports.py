"""The drop-number validation page (DrValidationClient) and the SharePoint sync, as the
front end calls them. This module sorts last: its PUT adds a drop and its DELETE marks one
invalid, which the figures then leave out, so it runs after the modules that count drops."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.contract import world as w
from tests.contract.shapes import (
    ADDED,
    CSV_ROW,
    DAILY_ROW,
    DAY_DROPS,
    DB_ROW,
    DELETED,
    NOTHING_SYNCED,
    SYNCED,
    VALIDATION,
    check,
    check_each,
    check_error,
    check_success,
)
from tests.contract.world import FrontEnd

PATH = "/api/wa-monitor-dr-validation"
BOUNDARY = "----contract-suite-boundary"
MISSING = w.ENTERED  # on the day's list, never posted


def multipart(fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[bytes, str]:
    """The FormData body the page posts: `file`, `project`, `date`."""
    parts = []
    for name, value in fields.items():
        head = f'Content-Disposition: form-data; name="{name}"'
        parts.append(f"--{BOUNDARY}\r\n{head}\r\n\r\n{value}\r\n".encode())
    if file is not None:
        filename, content = file
        head = f'Content-Disposition: form-data; name="file"; filename="{filename}"'
        part = f"--{BOUNDARY}\r\n{head}\r\nContent-Type: text/csv\r\n\r\n".encode()
        parts.append(part + content + b"\r\n")
    end = f"--{BOUNDARY}--\r\n".encode()
    return b"".join(parts) + end, f"multipart/form-data; boundary={BOUNDARY}"


def upload(fe: FrontEnd, fields: dict[str, str], file: tuple[str, bytes] | None) -> Any:
    body, kind = multipart(fields, file)
    return fe.call("POST", PATH, raw=body, headers={"Content-Type": kind})


def day_sheet(fe: FrontEnd) -> bytes:
    """Janice's sheet: Date (DD/MM/YYYY), DR nr, Time."""
    day = fe.today.strftime("%d/%m/%Y")
    rows = ["Date,DR nr,Time"] + [f"{day},{n},08:{i:02d}" for i, n in enumerate(w.VALIDATED)]
    return ("\n".join([*rows, f"{day},{MISSING},09:30"]) + "\n").encode()


def test_validating_the_days_sheet_against_the_posts(fe: FrontEnd) -> None:
    fields = {"project": "Lawley", "date": fe.today.isoformat()}

    answer = upload(fe, fields, ("lawley.csv", day_sheet(fe)))

    assert answer.status == 200, answer.body[:500]
    data = check_success(answer.json(), "POST dr-validation")
    check(data, VALIDATION, "data")
    check_each(data["inCsvAndDb"] + data["inCsvNotInDb"], CSV_ROW, "data.inCsv*")
    check_each(data["inDbNotInCsv"], DB_ROW, "data.inDbNotInCsv")
    assert {r["dropNumber"] for r in data["inCsvAndDb"]} == set(w.VALIDATED)
    assert [r["dropNumber"] for r in data["inCsvNotInDb"]] == [MISSING]
    assert {r["date"] for r in data["inCsvAndDb"] + data["inCsvNotInDb"]} == {fe.today.isoformat()}
    # The database side is the day's WhatsApp posts of the project.
    lawley_today = w.TODAY_BY_PROJECT["Lawley"]
    assert (data["csvTotal"], data["dbTotal"]) == (len(w.VALIDATED) + 1, lawley_today)
    assert len(data["inDbNotInCsv"]) == lawley_today - len(w.VALIDATED)
    assert {r["project"] for r in data["inDbNotInCsv"]} == {"Lawley"}


def test_the_days_drops_of_a_project(fe: FrontEnd) -> None:
    answer = fe.get(f"{PATH}?project=Lawley&date={fe.today.isoformat()}")

    assert answer.status == 200, answer.body[:500]
    data = check_success(answer.json(), "GET dr-validation")
    check(data, DAY_DROPS, "data")
    check_each(data["drops"], DB_ROW, "data.drops")
    assert data["total"] == len(data["drops"]) == w.TODAY_BY_PROJECT["Lawley"]


def test_validation_errors_the_page_shows(fe: FrontEnd) -> None:
    no_date = fe.get(f"{PATH}?project=Lawley")
    no_file = upload(fe, {"project": "Lawley", "date": fe.today.isoformat()}, None)
    no_project = upload(fe, {"date": fe.today.isoformat()}, ("x.csv", day_sheet(fe)))
    wrong_kind = upload(
        fe, {"project": "Lawley", "date": fe.today.isoformat()}, ("x.pdf", b"%PDF-1.4")
    )

    for name, answer in (
        ("GET without date", no_date),
        ("POST without file", no_file),
        ("POST without project", no_project),
        ("POST a pdf", wrong_kind),
    ):
        assert answer.status == 422, (name, answer.status, answer.body[:300])
        check_error(answer.json(), ("VALIDATION_ERROR",), name)
    assert fe.call("PATCH", PATH, {}).status == 405


def test_adding_the_missing_drops(fe: FrontEnd) -> None:
    upload(fe, {"project": "Lawley", "date": fe.today.isoformat()}, ("l.csv", day_sheet(fe)))
    missing = [{"date": fe.today.isoformat(), "dropNumber": MISSING, "time": "09:30"}]

    added = fe.call("PUT", PATH, {"drops": missing, "project": "Lawley"})

    assert added.status == 201, added.body[:500]
    data = check_success(added.json(), "PUT dr-validation")
    check(data, ADDED, "data")
    assert data["inserted"] == 1 and len(data["ids"]) == 1
    assert added.json()["message"] == "1 drop(s) added successfully"
    [new_id] = data["ids"]
    # The drop now shows where the page and the dashboard look for it.
    listed = fe.get(f"/api/wa-monitor-drops?search={MISSING}")
    assert listed.status == 200, listed.body[:500]
    assert [(d["id"], d["dropNumber"]) for d in listed.json()["data"]] == [(new_id, MISSING)]
    one = fe.get(f"/api/wa-monitor-drops?id={new_id}").json()["data"]
    assert (one["userName"], one["project"], one["incomplete"]) == ("Manual Entry", "Lawley", True)
    day = fe.get(f"{PATH}?project=Lawley&date={fe.today.isoformat()}").json()["data"]
    assert [(d["id"], d["time"]) for d in day["drops"] if d["dropNumber"] == MISSING] == [
        (new_id, "09:30")
    ]
    checked = upload(
        fe, {"project": "Lawley", "date": fe.today.isoformat()}, ("l.csv", day_sheet(fe))
    )
    assert checked.json()["data"]["inCsvNotInDb"] == []

    again = fe.call("PUT", PATH, {"drops": missing, "project": "Lawley"})

    assert again.status == 201, again.body[:500]
    assert (again.json()["data"]["inserted"], again.json()["data"]["ids"]) == (0, [])


def test_deleting_an_unknown_drop(fe: FrontEnd) -> None:
    unknown = fe.call("DELETE", f"{PATH}?id={w.unknown_id()}")

    assert unknown.status == 404, unknown.body[:300]
    check_error(unknown.json(), ("NOT_FOUND",), "DELETE unknown id")


def test_sync_sharepoint_delivers_the_days_sheet_once(fe: FrontEnd) -> None:
    assert fe.reports_dir is not None, "the projects file does not take `reports:`"

    first = fe.call("POST", "/api/wa-monitor-sync-sharepoint", {})
    again = fe.call("POST", "/api/wa-monitor-sync-sharepoint", {"date": fe.today.isoformat()})

    assert (first.status, again.status) == (200, 200), (first.body[:500], again.body[:500])
    data = check_success(first.json(), "sync-sharepoint")
    check(data, SYNCED, "data")
    check_each(data["projects"], DAILY_ROW, "data.projects")
    assert data["date"] == fe.today.isoformat()
    counts = {r["project"]: r["count"] for r in data["projects"]}
    assert set(counts) == set(w.PROJECTS)
    assert (data["failed"], data["total"]) == (0, len(w.PROJECTS))
    files = [p.name for p in fe.reports_dir.iterdir()]
    assert len(files) == 1 and fe.today.isoformat() in files[0], files
    check(check_success(again.json(), "sync-sharepoint again"), SYNCED, "data")


def test_sync_sharepoint_of_a_day_without_drops(fe: FrontEnd) -> None:
    quiet = (fe.today - timedelta(days=100)).isoformat()

    answer = fe.call("POST", "/api/wa-monitor-sync-sharepoint", {"date": quiet})

    assert answer.status == 200, answer.body[:500]
    data = check_success(answer.json(), "sync-sharepoint quiet day")
    check(data, NOTHING_SYNCED, "data")
    assert (data["synced"], data["date"]) == (0, quiet)


def test_sync_sharepoint_errors(fe: FrontEnd) -> None:
    bad = fe.call("POST", "/api/wa-monitor-sync-sharepoint", {"date": "05/01/2026"})
    other = fe.get("/api/wa-monitor-sync-sharepoint")

    assert bad.status == 422, bad.body[:300]
    check_error(bad.json(), ("VALIDATION_ERROR",), "sync-sharepoint bad date")
    assert other.status == 405, other.body[:300]
    check_error(other.json(), ("METHOD_NOT_ALLOWED",), "GET sync-sharepoint")


def test_the_sync_test_route_builds_without_delivering(fe: FrontEnd) -> None:
    assert fe.reports_dir is not None, "the projects file does not take `reports:`"
    before = sorted(p.name for p in fe.reports_dir.iterdir())
    three_days_ago = (fe.today - timedelta(days=3)).isoformat()

    answer = fe.call("POST", "/api/wa-monitor-sync-sharepoint-test", {"testDate": three_days_ago})

    assert answer.status == 200, answer.body[:500]
    data = check_success(answer.json(), "sync-sharepoint-test")
    assert data.get("testDate") == three_days_ago
    assert isinstance(data.get("message"), str)
    check_each(data.get("drops"), DAILY_ROW, "data.drops")
    assert {r["project"]: r["count"] for r in data["drops"]} == {
        "Lawley": w.posted("Lawley", 3) - w.posted("Lawley", 0)
    }
    assert sorted(p.name for p in fe.reports_dir.iterdir()) == before


def test_deleting_an_extra_drop(fe: FrontEnd) -> None:
    # Last of the module: the drop then counts as invalid.
    extra = w.VALIDATED[-1]

    deleted = fe.call("DELETE", f"{PATH}?id={fe.ids[extra]}")

    assert deleted.status == 200, deleted.body[:500]
    data = check_success(deleted.json(), "DELETE dr-validation")
    check(data, DELETED, "data")
    assert (data["deleted"], data["id"]) == (True, fe.ids[extra])
    # Gone from the front end's lists, as a deleted row was; still there by its id.
    listed = fe.get(f"/api/wa-monitor-drops?search={extra}")
    assert listed.status == 200 and listed.json()["data"] == [], listed.body[:500]
    everything = fe.get("/api/wa-monitor-drops").json()["data"]
    assert extra not in {d["dropNumber"] for d in everything}
    day = fe.get(f"{PATH}?project=Lawley&date={fe.today.isoformat()}").json()["data"]
    assert extra not in {d["dropNumber"] for d in day["drops"]}
    assert fe.drop(extra)["dropNumber"] == extra
    again = fe.call("DELETE", f"{PATH}?id={fe.ids[extra]}")
    assert (again.status, again.json()["data"]) == (200, data)
