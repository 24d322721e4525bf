"""Reports on both backends: built from the day's drops, delivered once per day and
destination, failures kept and retried; the front end's sync routes; `wa-monitor report`."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner, Result

from tests.integration.test_api_support import (
    PROJECTS_YAML,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    record,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.cli.main import main
from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.core.report_config import ReportSpec
from wa_monitor.reports import delivery, destinations
from wa_monitor.reports.build import Built
from wa_monitor.store import report_deliveries as records
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import create_token
from wa_monitor.web import queries as q
from wa_monitor.web.app import create_app
from wa_monitor.web.reports_api import SyncAnswer, SyncTestAnswer, sending_for


def reports_yaml(folder: Path, *, what: str = "daily-drops", fmt: str = "xlsx") -> str:
    return f"""
reports:
  - name: daily-sheet
    what: {what}
    format: {fmt}
    when: daily 20:00
    to:
      - folder: {folder}
"""


def config_for(tmp_path: Path, extra: str = "") -> ProjectsConfig:
    return parse_config(PROJECTS_YAML + extra, tmp_path / "projects.yaml")


def today(config: ProjectsConfig) -> date:
    return q.today(config.zone)


def seed(store: ReviewStore) -> None:
    """Today: three Lawley drops (one posted twice), one of Mohadin."""
    record(
        store,
        post("DR11111111", today_minutes_ago(50)),
        post("DR22222222", today_minutes_ago(40)),
        post("DR33333333", today_minutes_ago(30)),
        post("DR44444444", today_minutes_ago(20), project="Mohadin"),
    )


def send(
    store: ReviewStore, config: ProjectsConfig, day: date, by: str = "tests", **kw: Any
) -> list[delivery.Outcome]:
    sending = sending_for(store, config, q.QueueView(), by)
    return delivery.send(sending, config.reports, day, **kw)


def spec(config: ProjectsConfig) -> ReportSpec:
    return config.reports[0]


# -- the delivery records ---------------------------------------------------------------


def test_a_period_is_claimed_once_and_a_failure_is_claimed_again(store: ReviewStore) -> None:
    first = records.claim(store, "daily-sheet", "2026-01-15", "folder:/x", requested_by="alice")
    assert first.mine and first.delivery.status == records.PENDING
    assert first.delivery.attempts == 1
    busy = records.claim(store, "daily-sheet", "2026-01-15", "folder:/x", requested_by="bob")
    assert not busy.mine and busy.delivery.requested_by == "alice"

    records.failed(store, first, "the folder /x does not exist")
    retry = records.claim(store, "daily-sheet", "2026-01-15", "folder:/x", requested_by="bob")
    assert retry.mine and retry.delivery.attempts == 2
    done = records.delivered(store, retry, {"file": "daily-sheet-2026-01-15.xlsx"})
    assert done.status == records.DELIVERED and done.delivered_at is not None
    assert done.last_error == "the folder /x does not exist"  # kept for whoever looks
    assert done.requested_by == "bob"

    again = records.claim(store, "daily-sheet", "2026-01-15", "folder:/x", requested_by="carol")
    assert not again.mine and again.delivery.details["file"] == "daily-sheet-2026-01-15.xlsx"
    forced = records.claim(
        store, "daily-sheet", "2026-01-15", "folder:/x", requested_by="carol", force=True
    )
    assert forced.mine and forced.delivery.attempts == 3
    # Another period, or another destination, is another delivery.
    assert records.claim(store, "daily-sheet", "2026-01-16", "folder:/x", requested_by="a").mine
    assert records.claim(store, "daily-sheet", "2026-01-15", "folder:/y", requested_by="a").mine


def test_a_claim_left_by_a_stopped_process_is_taken_over(store: ReviewStore) -> None:
    left = records.claim(store, "daily-sheet", "2026-01-15", "folder:/x", requested_by="gone")
    later = left.delivery.claimed_at + records.STALE_AFTER + timedelta(seconds=1)  # type: ignore[operator]
    taken = records.claim(
        store, "daily-sheet", "2026-01-15", "folder:/x", requested_by="next", now=later
    )
    assert taken.mine and taken.delivery.attempts == 2
    # The stopped process, should it wake up, no longer records over the newer claim.
    records.failed(store, left, "late")
    found = records.get(store, "daily-sheet", "2026-01-15", "folder:/x")
    assert found is not None and found.status == records.PENDING and found.last_error is None


# -- delivering -------------------------------------------------------------------------


def test_the_daily_sheet_is_written_to_the_folder_once(store: ReviewStore, tmp_path: Path) -> None:
    folder = tmp_path / "sharepoint"
    folder.mkdir()
    config = config_for(tmp_path, reports_yaml(folder))
    seed(store)
    day = today(config)

    (outcome,) = send(store, config, day, by="alice")
    assert outcome.status == delivery.DELIVERED, outcome.line()
    path = folder / f"daily-sheet-{day}.xlsx"
    assert sorted(p.name for p in folder.iterdir()) == [path.name]  # no temporary left
    sheet = openpyxl.load_workbook(path).active
    assert [[c.value for c in row] for row in sheet.iter_rows()] == [
        ["date", "project", "count"],
        [day.isoformat(), "Lawley", 3],
        [day.isoformat(), "Mohadin", 1],
    ]

    path.write_bytes(b"the client's copy")
    (again,) = send(store, config, day, by="bob")
    assert again.status == delivery.ALREADY
    assert "by alice" in again.message and "force" in again.message
    assert path.read_bytes() == b"the client's copy"  # not written again

    (forced,) = send(store, config, day, by="bob", force=True)
    assert forced.status == delivery.DELIVERED and forced.attempts == 2
    assert path.read_bytes().startswith(b"PK")  # a workbook again


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_the_days_reviews_are_rows_with_the_exports_columns(
    store: ReviewStore, tmp_path: Path, fmt: str
) -> None:
    config = config_for(tmp_path, reports_yaml(tmp_path, what="reviews", fmt=fmt))
    seed(store)
    record(store, post("DR55555555", minutes_ago(24 * 60)))  # yesterday's: not in it
    day = today(config)

    (outcome,) = send(store, config, day)
    assert outcome.status == delivery.DELIVERED, outcome.line()
    path = tmp_path / f"daily-sheet-{day}.{fmt}"
    if fmt == "xlsx":
        header, *cells = openpyxl.load_workbook(path).active.iter_rows(values_only=True)
        rows = [dict(zip(header, r, strict=True)) for r in cells]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
    else:
        content = path.read_text()
        document = json.loads(content)
        assert document["date"] == day.isoformat() and document["what"] == "reviews"
        rows = document["rows"]
    assert sorted(r["dropNumber"] for r in rows) == [
        "DR11111111",
        "DR22222222",
        "DR33333333",
        "DR44444444",
    ]
    assert {"reviewState", "incorrectReasons", "step_01_house_photo"} <= set(rows[0])


def test_the_summary_has_the_days_figures_per_project_and_for_all(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = config_for(tmp_path, reports_yaml(tmp_path, what="summary", fmt="csv"))
    seed(store)
    day = today(config)

    (outcome,) = send(store, config, day)
    assert outcome.status == delivery.DELIVERED, outcome.line()
    rows = list(csv.DictReader(io.StringIO((tmp_path / f"daily-sheet-{day}.csv").read_text())))
    figures = {r["project"]: (int(r["drops"]), int(r["complete"])) for r in rows}
    assert figures == {"Lawley": (3, 0), "Mohadin": (1, 0), "All": (4, 0)}
    assert {r["date"] for r in rows} == {day.isoformat()}
    assert {"feedbackSent", "resubmitted", "overdue"} <= set(rows[0])


def test_concurrent_requests_deliver_once(
    store: ReviewStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, reports_yaml(tmp_path))
    seed(store)
    day = today(config)
    written: list[str] = []
    real = destinations.DELIVERERS[destinations.FolderDestination]

    def counted(destination: Any, built: Built, out: destinations.Outbound) -> dict[str, Any]:
        written.append(built.file_name)
        return real(destination, built, out)

    monkeypatch.setitem(destinations.DELIVERERS, destinations.FolderDestination, counted)
    start = threading.Barrier(6)
    outcomes: list[delivery.Outcome] = []

    def request(n: int) -> None:
        start.wait()
        outcomes.extend(send(store, config, day, by=f"reviewer{n}"))

    threads = [threading.Thread(target=request, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 6
    assert [o.status for o in outcomes].count(delivery.DELIVERED) == 1
    assert {o.status for o in outcomes} <= {
        delivery.DELIVERED,
        delivery.ALREADY,
        delivery.IN_PROGRESS,
    }
    assert written == [f"daily-sheet-{day}.xlsx"]
    found = records.get(store, "daily-sheet", day.isoformat(), spec(config).to[0].key)
    assert found is not None and found.status == records.DELIVERED and found.attempts == 1


def test_a_missing_folder_fails_with_the_reason_and_the_next_send_retries(
    store: ReviewStore, tmp_path: Path
) -> None:
    folder = tmp_path / "not-yet"
    config = config_for(tmp_path, reports_yaml(folder))
    seed(store)
    day = today(config)

    (outcome,) = send(store, config, day)
    assert outcome.status == delivery.FAILED
    assert f"the folder {folder} does not exist; create it" in outcome.message
    found = records.get(store, "daily-sheet", day.isoformat(), f"folder:{folder}")
    assert found is not None and found.status == records.FAILED
    assert found.last_error == outcome.message

    folder.mkdir()
    (retried,) = send(store, config, day)
    assert retried.status == delivery.DELIVERED and retried.attempts == 2
    assert (folder / f"daily-sheet-{day}.xlsx").is_file()


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_part(
    store: ReviewStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path / "conf", reports_yaml(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    seed(store)
    day = today(config)
    old = tmp_path / "out" / f"daily-sheet-{day}.xlsx"
    old.write_bytes(b"yesterday's sync")

    def full_disk(_src: Any, _dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    (outcome,) = send(store, config, day)
    monkeypatch.undo()
    assert outcome.status == delivery.FAILED
    assert "No space left on device" in outcome.message
    assert [p.name for p in (tmp_path / "out").iterdir()] == [old.name]
    assert old.read_bytes() == b"yesterday's sync"


def test_a_dry_run_builds_and_checks_but_sends_and_records_nothing(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = config_for(tmp_path, reports_yaml(tmp_path / "out"))
    seed(store)
    day = today(config)
    (missing,) = send(store, config, day, dry_run=True)
    assert missing.status == delivery.FAILED and "does not exist" in missing.message
    (tmp_path / "out").mkdir()
    (outcome,) = send(store, config, day, dry_run=True)
    assert outcome.status == delivery.WOULD_DELIVER
    assert f"daily-sheet-{day}.xlsx, 2 row(s)" in outcome.message
    assert list((tmp_path / "out").iterdir()) == []
    assert records.recent(store) == []


# -- the front end's routes ---------------------------------------------------------------


@dataclass
class Api:
    client: TestClient
    store: ReviewStore
    people: People
    config: ProjectsConfig

    def sync(self, body: Any = None, role: str = "reviewer", path: str = "", **kw: Any) -> Any:
        url = f"/api/wa-monitor-sync-sharepoint{path}"
        headers = {**self.people.bearer(role), **kw.pop("headers", {})}
        return self.client.post(url, json=body, headers=headers, **kw)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def make_api(store: ReviewStore, config: ProjectsConfig) -> Iterator[Api]:
    people = add_people(store)
    app = create_app(settings_for(store.url), config, store, run_sender=False)
    with TestClient(app) as client:
        yield Api(client, store, people, config)


@pytest.fixture
def api(store: ReviewStore, tmp_path: Path, folder: Path) -> Iterator[Api]:
    yield from make_api(store, config_for(tmp_path, reports_yaml(folder)))


def test_the_sync_delivers_the_days_sheet_in_the_front_ends_shape(api: Api, folder: Path) -> None:
    seed(api.store)
    day = today(api.config).isoformat()
    answer = api.sync()  # no body at all, as the front end's nightly job posts
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    SyncAnswer.model_validate(data, strict=True)  # what the OpenAPI document says
    assert data["succeeded"] == 2 and data["failed"] == 0 and data["total"] == 2
    assert data["date"] == day
    assert data["projects"] == [
        {"date": day, "project": "Lawley", "count": 3},
        {"date": day, "project": "Mohadin", "count": 1},
    ]
    assert data["message"].startswith("Synced 2/2 project(s): 1 delivered")
    assert (folder / f"daily-sheet-{day}.xlsx").is_file()
    (sent,) = data["deliveries"]
    assert sent["status"] == "delivered" and sent["file"] == f"daily-sheet-{day}.xlsx"

    again = api.sync({"date": day}).json()["data"]
    assert again["succeeded"] == 2 and again["failed"] == 0
    assert again["deliveries"][0]["status"] == "already delivered"
    found = records.get(api.store, "daily-sheet", day, f"folder:{folder}")
    assert found is not None and found.attempts == 1 and found.requested_by == "reviewer"


def test_a_failed_sync_says_which_projects_failed_and_why(api: Api, folder: Path) -> None:
    seed(api.store)
    folder.rmdir()
    data = api.sync({}).json()["data"]
    assert data["succeeded"] == 0 and data["failed"] == 2 and data["total"] == 2
    assert "(2 failed)" in data["message"] and "does not exist" in data["message"]


def test_a_day_without_drops_syncs_nothing(api: Api, folder: Path) -> None:
    yesterday = (today(api.config) - timedelta(days=1)).isoformat()
    answer = api.sync({"date": yesterday})
    assert answer.status_code == 200
    assert answer.json()["data"] == {
        "synced": 0,
        "message": f"No drops to sync for {yesterday}",
        "date": yesterday,
    }
    assert list(folder.iterdir()) == [] and records.recent(api.store) == []


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code
    return dict(body["error"])


def test_bad_dates_and_methods_are_refused(api: Api) -> None:
    error = assert_error(api.sync({"date": "15/01/2026"}), 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "body.date"
    tomorrow = (today(api.config) + timedelta(days=1)).isoformat()
    error = assert_error(api.sync({"date": tomorrow}), 422, "VALIDATION_ERROR")
    assert "is in the future" in error["message"]
    error = assert_error(api.sync({"testDate": tomorrow}, path="-test"), 422, "VALIDATION_ERROR")
    assert error["details"] == [{"field": "body.testDate"}]
    for path in ("", "-test"):
        got = api.client.get(
            f"/api/wa-monitor-sync-sharepoint{path}", headers=api.people.bearer("reviewer")
        )
        assert_error(got, 405, "METHOD_NOT_ALLOWED")
        assert got.headers["Allow"] == "POST"
    assert_error(api.sync(role="viewer"), 403, "FORBIDDEN")
    assert_error(api.client.post("/api/wa-monitor-sync-sharepoint"), 401, "UNAUTHORIZED")


def test_without_reports_the_sync_says_where_to_configure_them(
    store: ReviewStore, tmp_path: Path
) -> None:
    for found in make_api(store, config_for(tmp_path)):
        for path in ("", "-test"):
            error = assert_error(found.sync(path=path), 422, "VALIDATION_ERROR")
            assert "under `reports:` in the projects file" in error["message"]
            assert error["details"][0]["field"] == "reports"


def test_the_front_ends_sync_is_recorded_as_the_acting_person(api: Api, folder: Path) -> None:
    seed(api.store)
    token = create_token(api.store, "reviewer", "front end", front_end=True)[1]
    headers = {"Authorization": f"Bearer {token}", "X-Acting-User": "Thandi Reviewer"}
    answer = api.client.post("/api/wa-monitor-sync-sharepoint", headers=headers)
    assert answer.status_code == 200, answer.text
    (found,) = records.recent(api.store)
    assert found.requested_by == "Thandi Reviewer"


def test_the_test_route_is_a_dry_run_of_yesterday_by_default(api: Api, folder: Path) -> None:
    yesterday = today(api.config) - timedelta(days=1)
    empty = api.sync(path="-test").json()["data"]
    assert empty == {
        "testDate": yesterday.isoformat(),
        "synced": 0,
        "message": f"No drops found for {yesterday}",
    }
    seed(api.store)
    day = today(api.config).isoformat()
    data = api.sync({"testDate": day}, path="-test").json()["data"]
    SyncTestAnswer.model_validate(data, strict=True)
    assert data["testDate"] == day and data["dryRun"] is True
    assert (data["succeeded"], data["failed"], data["total"]) == (2, 0, 2)
    assert data["drops"][0] == {"date": day, "project": "Lawley", "count": 3}
    assert data["message"].startswith(f"Test successful for {day} (nothing sent)")
    assert list(folder.iterdir()) == [] and records.recent(api.store) == []


# -- wa-monitor report --------------------------------------------------------------------


def cli(tmp_path: Path, db_url: str, extra: str, *args: str) -> Result:
    env = {k: None for k in ("DATABASE_URL", "NEON_DATABASE_URL", "WA_MONITOR_CONFIG")}
    config = tmp_path / "projects.yaml"
    config.write_text(PROJECTS_YAML + extra)
    env_file = tmp_path / ".env"
    env_file.write_text(f"DATABASE_URL={db_url}\n")
    base = ["--env-file", str(env_file), "--config", str(config)]
    return CliRunner().invoke(main, [*base, "report", *args], env=env, catch_exceptions=False)


def test_report_send_says_what_became_of_each_destination(
    store: ReviewStore, tmp_path: Path
) -> None:
    seed(store)
    ok_folder, missing = tmp_path / "ok", tmp_path / "missing"
    ok_folder.mkdir()
    extra = reports_yaml(ok_folder) + f"      - folder: {missing}\n"
    day = today(config_for(tmp_path)).isoformat()

    first = cli(tmp_path, store.url, extra, "send", "--date", day)
    assert first.exit_code == 1
    assert f"daily-sheet {day} → folder {ok_folder}: delivered" in first.stdout
    assert f"daily-sheet {day} → folder {missing}: failed (the folder {missing} does not" in (
        first.stderr
    )
    assert "1 of 2 deliveries failed" in first.stderr

    missing.mkdir()
    second = cli(tmp_path, store.url, extra, "send", "--report", "daily-sheet", "--date", day)
    assert second.exit_code == 0, second.output
    assert f"→ folder {ok_folder}: already delivered" in second.stdout
    assert f"→ folder {missing}: delivered" in second.stdout
    listed = cli(tmp_path, store.url, extra, "list")
    assert "daily-sheet" in listed.stdout and "delivered" in listed.stdout


def test_report_send_refuses_a_future_date_and_unknown_names(
    store: ReviewStore, tmp_path: Path
) -> None:
    extra = reports_yaml(tmp_path)
    tomorrow = (today(config_for(tmp_path)) + timedelta(days=1)).isoformat()
    future = cli(tmp_path, store.url, extra, "send", "--date", tomorrow)
    assert future.exit_code == 2 and "is in the future" in future.output
    unknown = cli(tmp_path, store.url, extra, "send", "--report", "nope", "--date", "2026-01-01")
    assert unknown.exit_code == 2 and "its reports: daily-sheet" in unknown.output
    of_project = cli(
        tmp_path, store.url, extra, "send", "--project", "Lawley", "--date", "2026-01-01"
    )
    assert of_project.exit_code == 2 and "no report of project 'Lawley'" in of_project.output
    helped = cli(tmp_path, store.url, extra, "send", "--help")
    assert "--force" in helped.output and "once each" in helped.output
