"""Drop lists on both backends: imports, invalid drops, replies once, reconciliation, CLI, API."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from openpyxl import Workbook

from tests.helpers import T0, Bridge, config_from, make_monitor
from tests.integration.test_api_support import (
    LAWLEY_JID,
    PROJECTS_YAML,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.cli.main import main
from wa_monitor.store import drop_lists
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import drop_list_imports, feedback_outbox
from wa_monitor.web.app import create_app

ZONE = projects_config().zone


def outbox(store: ReviewStore) -> list[dict[str, Any]]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(feedback_outbox).order_by(feedback_outbox.c.id))
        return [dict(r._mapping) for r in rows]


def test_an_import_replaces_the_list_and_says_what_changed(store: ReviewStore) -> None:
    first = drop_lists.replace(store, "Lawley", ["DR1", "DR2", "DR3"], actor="admin")
    again = drop_lists.replace(
        store, "Lawley", ["DR2", "DR3", "DR4", "DR4"], actor="cli:ops", filename="week2.csv"
    )

    assert (first.added, first.removed, first.total) == (3, 0, 3)
    assert (again.added, again.removed, again.total) == (1, 1, 3)
    with store.begin() as conn:
        audit = conn.execute(sa.select(drop_list_imports).order_by(drop_list_imports.c.id)).all()
    assert [(a.actor, a.filename, a.added, a.removed) for a in audit] == [
        ("admin", None, 3, 0),
        ("cli:ops", "week2.csv", 1, 1),
    ]
    [info] = drop_lists.info(store)
    assert (info.project, info.total, info.imported_by, info.filename) == (
        "Lawley",
        3,
        "cli:ops",
        "week2.csv",
    )
    assert drop_lists.is_listed(store, "Lawley", "DR4")
    assert not drop_lists.is_listed(store, "Lawley", "DR1")
    assert drop_lists.is_listed(store, "Mohadin", "DR1")  # no list: everything is valid


def test_an_import_re_judges_the_projects_drops(store: ReviewStore) -> None:
    record(
        store,
        post("DR11111111", minutes_ago(30)),
        post("DR22222222", minutes_ago(20)),
        post("DR22222222", minutes_ago(10), project="Mohadin"),
    )

    result = drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")

    assert result.changed == 1
    assert not review(store, "DR11111111")["invalid"]
    assert review(store, "DR22222222")["invalid"]
    assert review(store, "DR22222222")["review_state"] == "invalid"
    assert not review(store, "DR22222222", "Mohadin")["invalid"]  # another project's

    back = drop_lists.replace(store, "Lawley", ["DR11111111", "DR22222222"], actor="admin")
    assert back.changed == 1 and not review(store, "DR22222222")["invalid"]
    drop_lists.replace(store, "Lawley", ["DR99999999"], actor="admin")
    cleared = drop_lists.replace(store, "Lawley", [], actor="admin")  # no list: all valid
    assert cleared.changed == 2 and cleared.total == 0
    assert not review(store, "DR11111111")["invalid"]


def test_a_post_off_the_list_is_recorded_invalid_and_kept(store: ReviewStore) -> None:
    drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")

    record(store, post("DR11111111", minutes_ago(5)), post("DR33333333", minutes_ago(4)))

    assert not review(store, "DR11111111")["invalid"]
    assert review(store, "DR33333333")["invalid"]
    assert outbox(store) == []  # the project does not ask for replies


def test_one_reply_per_post_whatever_re_records_it(store: ReviewStore) -> None:
    drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")
    bad = post("DR33333333", minutes_ago(5), message_id="3EB0BAD1")
    good = post("DR11111111", minutes_ago(5), message_id="3EB0GOOD")
    zone = ZONE

    store.record_batch([bad, good], {}, zone, auto_reply={"Lawley"})
    store.record_batch([bad, good], {}, zone, auto_reply={"Lawley"})  # a re-scan
    store.record_batch([bad], {}, zone, auto_reply={"Lawley"})  # a second monitor

    [reply] = outbox(store)
    assert reply["request_key"] == f"invalid:{LAWLEY_JID}:3EB0BAD1"
    assert reply["recipient"] == LAWLEY_JID and reply["status"] == "pending"
    assert reply["review_id"] == review(store, "DR33333333")["id"]
    assert reply["message"] == (
        "❌ DR33333333 is not a drop number of the Lawley plan: check it and post again"
    )

    repost = post("DR33333333", minutes_ago(1), message_id="3EB0BAD2")
    store.record_batch([repost], {}, zone, auto_reply={"Lawley"})
    assert [r["request_key"] for r in outbox(store)] == [
        f"invalid:{LAWLEY_JID}:3EB0BAD1",
        f"invalid:{LAWLEY_JID}:3EB0BAD2",
    ]


def test_a_hundred_thousand_numbers_import_in_seconds(store: ReviewStore) -> None:
    numbers = [f"DR{n:08d}" for n in range(100_000)]
    started = time.monotonic()
    first = drop_lists.replace(store, "Lawley", numbers, actor="admin")
    shifted = drop_lists.replace(store, "Lawley", [*numbers[1000:], "DR99999999"], actor="admin")
    took = time.monotonic() - started

    assert (first.added, first.total) == (100_000, 100_000)
    assert (shifted.added, shifted.removed, shifted.total) == (1, 1000, 99_001)
    assert took < 10
    check = drop_lists.reconcile(store, "Lawley", numbers, date(2026, 1, 5), ZONE)
    assert len(check.not_posted) == 100_000  # a list this long reconciles too


def test_reconciliation_shows_both_sides(store: ReviewStore) -> None:
    today = today_minutes_ago(0).astimezone(ZONE).date()
    record(
        store,
        post("DR11111111", today_minutes_ago(3)),
        post("DR22222222", today_minutes_ago(2)),
        post("DR44444444", minutes_ago(60 * 24 * 3)),  # posted days ago
    )

    result = drop_lists.reconcile(
        store, "Lawley", ["DR11111111", "DR33333333", "DR44444444"], today, ZONE
    )

    assert result.not_posted == ["DR33333333"]
    assert result.not_listed == ["DR22222222"]
    yesterday: date = today - timedelta(days=1)
    assert drop_lists.reconcile(store, "Lawley", [], yesterday, ZONE).not_listed == []


# -- the CLI ---------------------------------------------------------------------------


def cli(tmp_path: Path, db_url: str, *args: str) -> Result:
    env = {k: None for k in ("DATABASE_URL", "NEON_DATABASE_URL", "WA_MONITOR_CONFIG")}
    config = tmp_path / "projects.yaml"
    config.write_text(PROJECTS_YAML)
    env_file = tmp_path / ".env"
    env_file.write_text(f"DATABASE_URL={db_url}\n")
    base = ["--env-file", str(env_file), "--config", str(config)]
    return CliRunner().invoke(main, [*base, *args], env=env, catch_exceptions=False)


def test_the_cli_imports_a_list_and_reports_what_it_left_out(
    store: ReviewStore, tmp_path: Path
) -> None:
    first = tmp_path / "plan.csv"
    first.write_text("Pole;Drop Number\nP1;DR11111111\nP2;DR22222222\nP3;tbc\nP4;DR11111111\n")
    record(store, post("DR33333333", minutes_ago(5)))

    result = cli(tmp_path, store.url, "drops", "import-list", "--project", "Lawley", str(first))

    assert result.exit_code == 0, result.output
    assert "Lawley: 2 drop numbers from plan.csv (column 'Drop Number'): 2 added, 0 removed" in (
        result.output
    )
    assert "1 drop(s) of Lawley changed validity" in result.output
    assert "1 cell is not a drop number: row 4 'tbc'" in result.output
    assert "1 repeated number(s) counted once" in result.output
    assert review(store, "DR33333333")["invalid"]

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["DR number"], ["DR22222222"], ["DR33333333"]):
        sheet.append(row)
    book.save(tmp_path / "plan.xlsx")
    again = cli(
        tmp_path, store.url, "drops", "import-list", "--project", "Lawley",
        str(tmp_path / "plan.xlsx"), "--column", "dr_number",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "2 drop numbers from plan.xlsx (column 'DR number'): 1 added, 1 removed" in again.output
    assert not review(store, "DR33333333")["invalid"]

    info = cli(tmp_path, store.url, "drops", "list-info")
    assert info.exit_code == 0, info.output
    assert "Lawley" in info.output and "plan.xlsx" in info.output
    assert "no list: every number is valid" in info.output  # Mohadin


def test_the_cli_refuses_bad_input_with_exit_2_and_changes_nothing(
    store: ReviewStore, tmp_path: Path
) -> None:
    drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")
    plan = tmp_path / "plan.csv"
    plan.write_text("Pole,Address\nP1,1 Main\n")

    unknown = cli(tmp_path, store.url, "drops", "import-list", "--project", "Nope", str(plan))
    missing = cli(
        tmp_path, store.url, "drops", "import-list", "--project", "Lawley", str(tmp_path / "x.csv")
    )
    no_column = cli(tmp_path, store.url, "drops", "import-list", "--project", "Lawley", str(plan))
    named = cli(
        tmp_path, store.url, "drops", "import-list", "--project", "Lawley", str(plan),
        "--column", "Drop",
    )  # fmt: skip

    assert unknown.exit_code == 2 and "no project named 'Nope'" in unknown.output
    assert "Lawley, Mohadin" in unknown.output
    assert missing.exit_code == 2 and "cannot read x.csv" in missing.output
    assert no_column.exit_code == 2 and "no drop number column found" in no_column.output
    assert "'Pole', 'Address'" in no_column.output
    assert named.exit_code == 2 and "has no column 'Drop'" in named.output
    [info] = drop_lists.info(store)
    assert info.total == 1


def test_the_cli_reconciles_a_day(store: ReviewStore, tmp_path: Path) -> None:
    when = today_minutes_ago(10)
    record(store, post("DR11111111", when), post("DR22222222", when))
    day = when.astimezone(ZONE).date().isoformat()
    listed = tmp_path / "today.csv"
    listed.write_text("Drop\nDR11111111\nDR33333333\n")

    result = cli(
        tmp_path, store.url, "drops", "reconcile", "--project", "Lawley", str(listed),
        "--date", day,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "On the list, never posted (1)" in result.output
    assert "Posted that day, not on the list (1)" in result.output
    [line] = [line for line in result.output.splitlines() if "DR33333333" in line]
    assert "DR22222222" in line  # side by side
    assert drop_lists.info(store) == []  # nothing imported


# -- the API ---------------------------------------------------------------------------


@pytest.fixture
def api(store: ReviewStore) -> Iterator[tuple[TestClient, People]]:
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    people = add_people(store)
    with TestClient(app) as client:
        yield client, people


def test_an_admin_uploads_a_list_and_viewers_see_its_size(
    api: tuple[TestClient, People], store: ReviewStore
) -> None:
    client, people = api
    record(store, post("DR33333333", minutes_ago(5)))
    data = b"Drop Number\nDR11111111\nDR22222222\nnope\n"

    done = client.post(
        "/api/wa-monitor-drop-lists/Lawley",
        files={"file": ("plan.csv", data, "text/csv")},
        headers=people.bearer("admin"),
    )

    assert done.status_code == 200, done.text
    body = done.json()["data"]
    assert (body["added"], body["removed"], body["total"], body["changed"]) == (2, 0, 2, 1)
    assert body["rejected"] == 1 and body["rejectedCells"] == [{"row": 4, "value": "nope"}]
    listing = client.get("/api/wa-monitor-drop-lists", headers=people.bearer("viewer"))
    lists = {i["project"]: i for i in listing.json()["data"]}
    assert lists["Lawley"]["total"] == 2 and lists["Lawley"]["importedBy"] == "dashboard:admin"
    assert lists["Mohadin"]["total"] == 0 and lists["Mohadin"]["importedAt"] is None
    drop = client.get(
        "/api/wa-monitor-drops", params={"project": "Lawley"}, headers=people.bearer("viewer")
    ).json()["data"]
    assert [d["invalid"] for d in drop if d["dropNumber"] == "DR33333333"] == [True]


def test_uploads_are_refused_clearly_and_change_nothing(
    api: tuple[TestClient, People], store: ReviewStore
) -> None:
    client, people = api
    drop_lists.replace(store, "Lawley", ["DR11111111"], actor="admin")
    url = "/api/wa-monitor-drop-lists/Lawley"
    admin = people.bearer("admin")

    def upload(data: bytes, path: str = url, **form: str) -> Any:
        return client.post(path, files={"file": ("plan.csv", data)}, data=form, headers=admin)

    no_column = upload(b"Pole,Address\nP1,1 Main\n")
    named = upload(b"Pole,Drop\nP1,DR22222222\n", column="Drop Number")
    unknown = upload(b"Drop\nDR22222222\n", path="/api/wa-monitor-drop-lists/Nope")
    too_big = upload(b"Drop\n" + b"DR22222222\n" * (2 * 1024 * 1024))
    reviewer = client.post(
        url, files={"file": ("plan.csv", b"Drop\nDR2\n")}, headers=people.bearer("reviewer")
    )

    assert no_column.status_code == 422
    assert "no drop number column found" in no_column.json()["error"]["message"]
    assert named.status_code == 422 and "'Pole', 'Drop'" in named.json()["error"]["message"]
    assert unknown.status_code == 404
    assert too_big.status_code == 413 and "20 MiB" in too_big.json()["error"]["message"]
    assert reviewer.status_code == 403
    [info] = drop_lists.info(store)
    assert info.total == 1
    # Other routes still refuse multipart bodies.
    other = client.post(
        "/api/wa-monitor-drops/next", files={"file": ("x.csv", b"x")}, headers=admin
    )
    assert other.status_code == 415


def test_a_reviewer_reconciles_the_day(api: tuple[TestClient, People], store: ReviewStore) -> None:
    client, people = api
    when = today_minutes_ago(10)
    record(store, post("DR11111111", when), post("DR22222222", when))

    done = client.post(
        "/api/wa-monitor-reconcile",
        files={"file": ("today.csv", b"Drop\nDR11111111\nDR33333333\n")},
        data={"project": "Lawley", "date": when.astimezone(ZONE).date().isoformat()},
        headers=people.bearer("reviewer"),
    )

    assert done.status_code == 200, done.text
    body = done.json()["data"]
    assert body["notPosted"] == ["DR33333333"] and body["notListed"] == ["DR22222222"]
    bad_date = client.post(
        "/api/wa-monitor-reconcile",
        files={"file": ("today.csv", b"Drop\nDR11111111\n")},
        data={"project": "Lawley", "date": "yesterday"},
        headers=people.bearer("reviewer"),
    )
    assert bad_date.status_code == 422


def test_the_openapi_document_covers_the_drop_list_routes(
    api: tuple[TestClient, People],
) -> None:
    client, _ = api
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]

    assert "get" in paths["/api/wa-monitor-drop-lists"]
    assert "post" in paths["/api/wa-monitor-drop-lists/{name}"]
    assert "413" in paths["/api/wa-monitor-reconcile"]["post"]["responses"]


# -- the monitor -----------------------------------------------------------------------

AUTO_REPLY_YAML = f"""\
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "{LAWLEY_JID}"
    description: Lawley Activation 3 group
    auto_reply_invalid: true
"""


def test_the_monitor_replies_once_to_a_post_off_the_list_across_re_deliveries(
    tmp_path: Path, db_url: str
) -> None:
    bridge = Bridge(tmp_path / "bridge")
    monitor = make_monitor(bridge, db_url, config_from(AUTO_REPLY_YAML))
    drop_lists.replace(monitor.store, "Lawley", ["DR11111111"], actor="admin")
    bridge.post(LAWLEY_JID, "DR88888888 all photos", when=T0)  # history: no reply
    bad_id, _ = bridge.post(LAWLEY_JID, "DR99999999 all photos", when=minutes_ago(5))
    bridge.post(LAWLEY_JID, "DR11111111 all photos", when=minutes_ago(4))

    monitor.scan()
    bridge.redeliver(LAWLEY_JID, bad_id)  # the bridge stores the same message again
    monitor.scan()
    again = make_monitor(bridge, db_url, config_from(AUTO_REPLY_YAML))  # a second monitor
    again.scan()

    [reply] = outbox(monitor.store)
    assert reply["request_key"] == f"invalid:{LAWLEY_JID}:{bad_id}"
    assert reply["message"].startswith("❌ DR99999999 is not a drop number of the Lawley plan")
    assert review(monitor.store, "DR99999999")["invalid"]
    assert review(monitor.store, "DR88888888")["invalid"]  # recorded invalid all the same
    assert not review(monitor.store, "DR11111111")["invalid"]


def test_an_xlsx_upload_reads_the_named_sheet_column(
    api: tuple[TestClient, People], store: ReviewStore
) -> None:
    client, people = api
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["Pole", "Drop No"], ["P1", "DR11111111"], ["P2", "DR22222222"]):
        sheet.append(row)
    data = io.BytesIO()
    book.save(data)
    xlsx_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    done = client.post(
        "/api/wa-monitor-drop-lists/Mohadin",
        files={"file": ("plan.xlsx", data.getvalue(), xlsx_type)},
        data={"column": "drop_no"},
        headers=people.bearer("admin"),
    )
    broken = client.post(
        "/api/wa-monitor-drop-lists/Mohadin",
        files={"file": ("plan.xlsx", b"PK\x03\x04 torn", xlsx_type)},
        headers=people.bearer("admin"),
    )

    assert done.status_code == 200, done.text
    assert done.json()["data"]["total"] == 2 and done.json()["data"]["column"] == "Drop No"
    assert broken.status_code == 422
    assert "not a readable XLSX workbook" in broken.json()["error"]["message"]
    assert [i.total for i in drop_lists.info(store)] == [2]
