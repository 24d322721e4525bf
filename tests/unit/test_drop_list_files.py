"""Reading a client's drop list (CSV, XLSX), and what a batch does with numbers off the list."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from wa_monitor.core.detect import DEFAULT_DROP_PATTERN, compile_pattern
from wa_monitor.core.drop_lists import DropList, DropListError, header_key, read_drop_list
from wa_monitor.core.reviews import (
    ExistingReview,
    Post,
    invalid_replies,
    invalid_reply_text,
    plan_batch,
    reply_key,
)

PATTERN = compile_pattern(r"(?i)\bDR\s?\d{6,8}\b")
ZONE = ZoneInfo("Africa/Johannesburg")
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def csv_list(data: bytes, name: str = "list.csv", **kwargs: str) -> DropList:
    return read_drop_list(io.BytesIO(data), PATTERN, filename=name, **kwargs)  # type: ignore[arg-type]


def xlsx(rows: list[list[object]], sheets: dict[str, list[list[object]]] | None = None) -> bytes:
    book = Workbook()
    first = book.active
    assert first is not None
    for row in rows:
        first.append(row)
    for title, extra in (sheets or {}).items():
        sheet = book.create_sheet(title)
        for row in extra:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# -- CSV -------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_drop_column_is_found_by_its_header_whatever_the_delimiter(delimiter: str) -> None:
    lines = ["Pole,Drop Number,Address", "P1,DR1234567,1 Main", "P2,dr 7654321,2 Main"]
    data = "\n".join(line.replace(",", delimiter) for line in lines).encode()

    result = csv_list(data)

    assert result.numbers == ("DR1234567", "DR7654321")
    assert result.column == "Drop Number"


def test_utf8_with_a_bom_and_cp1252_are_both_read() -> None:
    bom = "\ufeffDrop Number;Straße\nDR1234567;x\n".encode()
    cp1252 = "Drop;Client\nDR1234568;Café Müller\n".encode("cp1252")

    assert csv_list(bom).numbers == ("DR1234567",)
    assert csv_list(bom).column == "Drop Number"  # the BOM is not part of the header
    assert csv_list(cp1252).numbers == ("DR1234568",)


def test_a_named_column_ignores_case_spaces_and_underscores() -> None:
    data = b"drop,DROP_NUMBER\nDR1111111,DR2222222\n"

    assert csv_list(data, column="Drop Number").numbers == ("DR2222222",)
    assert header_key("  Drop_Number ") == header_key("drop-number") == "drop number"


def test_cells_that_are_not_drop_numbers_are_counted_and_shown_with_their_rows() -> None:
    rows = ["Drop Number", "DR1234567", "", "n/a", "DR1234567", "DR 7654321", "DR1234567 DR2345678"]
    rows += [f"pending {i}" for i in range(12)]

    result = csv_list("\n".join(rows).encode())

    assert result.numbers == ("DR1234567", "DR7654321")
    assert result.duplicates == 1
    assert result.rejected_count == 14  # n/a, the cell naming two numbers, 12 "pending"
    assert result.rejected[0].row == 4 and result.rejected[0].value == "n/a"
    assert len(result.rejected) == 10
    assert "14 cells are not drop numbers: row 4 'n/a'" in result.rejected_text()


def test_a_file_without_headers_is_read_from_its_first_row() -> None:
    result = csv_list(b"DR1234567\nDR2345678\n")

    assert result.numbers == ("DR1234567", "DR2345678")
    assert result.column == ""


def test_a_missing_column_names_the_headers_found() -> None:
    with pytest.raises(DropListError, match=r"no column 'Drop'.*'Pole', 'Address'"):
        csv_list(b"Pole,Address\nP1,1 Main\n", column="Drop")
    with pytest.raises(DropListError, match=r"no drop number column found.*'Pole', 'Address'"):
        csv_list(b"Pole,Address\nP1,1 Main\n")


def test_empty_and_numberless_files_are_refused() -> None:
    with pytest.raises(DropListError, match="is empty"):
        csv_list(b"\n\n")
    with pytest.raises(DropListError, match="no drop number in column 'Drop'"):
        csv_list(b"Drop\nx\ny\n")
    with pytest.raises(DropListError, match="neither CSV text nor an XLSX"):
        csv_list(b"\x00\x01\x02binary")
    with pytest.raises(DropListError, match="not an XLSX workbook"):
        csv_list(b"Drop\nDR1234567\n", name="list.xls")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DropListError, match=r"cannot read nowhere\.csv"):
        read_drop_list(tmp_path / "nowhere.csv", PATTERN)


def test_the_default_pattern_normalises_as_posts_do() -> None:
    pattern = compile_pattern(DEFAULT_DROP_PATTERN)
    data = b"Drop\n DR12345678 \nDR1234567\n"

    result = read_drop_list(io.BytesIO(data), pattern)

    assert result.numbers == ("DR12345678",)
    assert result.rejected_count == 1


def test_progress_reaches_the_file_size() -> None:
    data = ("Drop\n" + "\n".join(f"DR{i:08d}" for i in range(50_000))).encode()
    seen: list[tuple[int, int | None]] = []

    result = read_drop_list(io.BytesIO(data), PATTERN, progress=lambda d, t: seen.append((d, t)))

    assert len(result.numbers) == 50_000
    assert seen[-1] == (len(data), len(data))


# -- XLSX ------------------------------------------------------------------------------


def test_xlsx_first_sheet_by_default_and_another_by_name() -> None:
    data = xlsx(
        [["Pole", "DR Number"], ["P1", "DR1234567"], ["P2", 12345678], [None, None]],
        sheets={"Week 2": [["Drop"], ["DR7654321"]]},
    )

    assert csv_list(data, name="plan.xlsx").numbers == ("DR1234567",)
    assert csv_list(data, name="plan.xlsx").rejected_count == 1  # 12345678 has no DR
    assert csv_list(data, name="plan.xlsx", sheet="Week 2").numbers == ("DR7654321",)
    with pytest.raises(DropListError, match=r"no sheet 'Week 3'.*'Week 2'"):
        csv_list(data, name="plan.xlsx", sheet="Week 3")


def test_a_broken_workbook_is_a_clear_error() -> None:
    with pytest.raises(DropListError, match="not a readable XLSX workbook"):
        csv_list(b"PK\x03\x04 not really a zip", name="plan.xlsx")


def test_sheet_is_for_workbooks_only() -> None:
    with pytest.raises(DropListError, match="--sheet is for XLSX"):
        csv_list(b"Drop\nDR1234567\n", sheet="One")


# -- recording invalid numbers ----------------------------------------------------------

JID = "120363418298130331@g.us"


def post(drop: str, message_id: str, minutes: int = 0, project: str = "Lawley") -> Post:
    return Post(
        chat_jid=JID,
        message_id=message_id,
        drop_number=drop,
        project=project,
        sender="27821234567",
        sender_name="Thabo",
        time=NOW + timedelta(minutes=minutes),
    )


def test_a_new_drop_off_the_list_is_planned_invalid() -> None:
    posts = [post("DR1111111", "m1"), post("DR2222222", "m2")]

    plan = plan_batch(posts, {}, ZONE, NOW, invalid={("Lawley", "DR2222222")})

    flags = {i["drop_number"]: i["invalid"] for i in plan.inserts}
    assert flags == {"DR1111111": False, "DR2222222": True}


def test_one_reply_per_post_of_an_invalid_number_for_projects_that_ask() -> None:
    posts = [post("DR2222222", "m1"), post("DR2222222", "m2", 5), post("DR1111111", "m3")]
    invalid = {("Lawley", "DR2222222")}
    plan = plan_batch(posts, {}, ZONE, NOW, invalid=invalid)

    replies = invalid_replies(plan, {}, invalid, auto_reply={"Lawley"}, now=NOW)

    assert sorted(r.request_key for r in replies) == [f"invalid:{JID}:m1", f"invalid:{JID}:m2"]
    [review] = [i for i in plan.inserts if i["drop_number"] == "DR2222222"]
    assert {r.review_id for r in replies} == {review["id"]}
    assert replies[0].recipient == JID
    assert replies[0].message == (
        "❌ DR2222222 is not a drop number of the Lawley plan: check it and post again"
    )
    assert invalid_replies(plan, {}, invalid, auto_reply={"Mohadin"}, now=NOW) == []


def test_a_repost_of_a_known_invalid_drop_gets_its_own_reply() -> None:
    review = ExistingReview(
        id=uuid.uuid4(),
        whatsapp_message_date=NOW,
        last_message_date=NOW,
        user_name="Thabo",
        submitted_by="27821234567",
        incomplete=False,
        feedback_sent=None,
        comment=None,
    )
    existing = {("Lawley", "DR2222222"): review}
    invalid = {("Lawley", "DR2222222")}
    plan = plan_batch([post("DR2222222", "m9", 30)], existing, ZONE, NOW, invalid=invalid)

    [reply] = invalid_replies(plan, existing, invalid, auto_reply={"Lawley"}, now=NOW)

    assert reply.review_id == review.id and reply.request_key == f"invalid:{JID}:m9"


def test_a_post_naming_two_invalid_numbers_gets_one_reply_naming_both() -> None:
    posts = [post("DR2222222", "m1"), post("DR3333333", "m1")]
    invalid = {("Lawley", "DR2222222"), ("Lawley", "DR3333333")}
    plan = plan_batch(posts, {}, ZONE, NOW, invalid=invalid)

    [reply] = invalid_replies(plan, {}, invalid, auto_reply={"Lawley"}, now=NOW)

    assert reply.message == invalid_reply_text(["DR2222222", "DR3333333"], "Lawley")
    assert "DR2222222, DR3333333 are not drop numbers" in reply.message


def test_reply_keys_fit_the_outbox_column() -> None:
    assert reply_key("a@g.us", "m1") == "invalid:a@g.us:m1"
    long = reply_key("x" * 60 + "@g.us", "y" * 60)
    assert len(long) <= 100 and long.startswith("invalid:")
    assert long != reply_key("x" * 60 + "@g.us", "y" * 59 + "z")


def test_planning_the_same_posts_again_asks_for_the_same_replies() -> None:
    # A re-scan plans the batch again: the same keys, which the outbox holds once.
    posts = [post("DR2222222", "m1"), post("DR1111111", "m2")]
    invalid = {("Lawley", "DR2222222")}
    first = plan_batch(posts, {}, ZONE, NOW, invalid=invalid)
    again = plan_batch(list(reversed(posts)), {}, ZONE, NOW + timedelta(minutes=5), invalid)

    keys = [r.request_key for r in invalid_replies(first, {}, invalid, {"Lawley"}, NOW)]
    assert keys == [r.request_key for r in invalid_replies(again, {}, invalid, {"Lawley"}, NOW)]
    assert keys == [f"invalid:{JID}:m1"]


def test_posts_older_than_a_day_get_no_reply() -> None:
    # A first scan of a group's history must not answer weeks of old posts.
    posts = [post("DR2222222", "old", minutes=-25 * 60), post("DR2222222", "new", minutes=-60)]
    invalid = {("Lawley", "DR2222222")}
    plan = plan_batch(posts, {}, ZONE, NOW, invalid=invalid)

    replies = invalid_replies(plan, {}, invalid, {"Lawley"}, NOW)

    assert [r.request_key for r in replies] == [f"invalid:{JID}:new"]
