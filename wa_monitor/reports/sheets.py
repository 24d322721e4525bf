"""The sheets drops are written into: the dashboard's export columns, CSV and XLSX cells
that no spreadsheet runs as a formula. Shared by the dashboard's exports and the reports."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from wa_monitor.core.steps import STEP_COLUMNS

COLUMNS = (
    "dropNumber",
    "project",
    "status",
    "reviewState",
    "assignedAgent",
    "completedPhotos",
    "photoCount",
    "resubmitted",
    "userName",
    "senderPhone",
    "receivedLocal",
    "feedbackSentLocal",
    "incorrectSteps",
    "incorrectReasons",
    "incorrectComments",
    "comment",
    "feedbackText",
    *STEP_COLUMNS,
    "id",
)
# The columns that hold a local time: text in the CSV, a real date and time in the XLSX.
_TIMES = {"receivedLocal": "latest", "feedbackSentLocal": "feedback_sent"}
XLSX_ROWS = 1_048_575  # a sheet's rows, less the header
XLSX_TEXT = 32_767  # characters a cell holds
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def export_values(drop: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """A drop's export cells by column: lists and maps as text a reader can follow."""
    values = {c: drop.get(c) for c in COLUMNS}
    values["incorrectSteps"] = " ".join(drop["incorrectSteps"])
    values["incorrectReasons"] = _by_step(
        {s: ", ".join(r) for s, r in drop["incorrectReasons"].items()}, labels
    )
    values["incorrectComments"] = _by_step(drop["incorrectComments"], labels)
    feedback = drop.get("feedback")
    values["feedbackText"] = feedback["message"] if feedback else None
    return values


def _by_step(texts: Mapping[str, str], labels: Mapping[str, str]) -> str:
    """`ONT barcode: blurred, serial unreadable; UPS serial: wrong angle`, in step order."""
    order = {s: i for i, s in enumerate(STEP_COLUMNS)}
    steps = sorted(texts, key=lambda s: order.get(s, len(order)))
    return "; ".join(f"{labels.get(s, s)}: {texts[s]}" for s in steps if texts[s])


def write_xlsx(
    file: IO[bytes],
    drops: Iterator[tuple[dict[str, Any], dict[str, Any]]],
    labels: Mapping[str, str],
    zone: tzinfo,
) -> int:
    """Write the drops as a one-sheet workbook (openpyxl's write-only mode); the rows."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Drops")
    sheet.freeze_panes = "A2"
    sheet.append(list(COLUMNS))
    count = 0
    for row, drop in drops:
        if count == XLSX_ROWS:
            break
        values = export_values(drop, labels)
        moments = {
            "latest": row["last_message_date"] or row["whatsapp_message_date"],
            "feedback_sent": row["feedback_sent"],
        }
        for column, moment in _TIMES.items():
            values[column] = _local(moments[moment], zone)
        sheet.append([xlsx_cell(sheet, values[c]) for c in COLUMNS])
        count += 1
    book.save(file)
    return count


def write_table_xlsx(
    file: IO[bytes], title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Write plain rows as a one-sheet workbook, cells kept as their types; the rows."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    sheet.freeze_panes = "A2"
    sheet.append(list(columns))
    count = 0
    for row in rows:
        sheet.append([xlsx_cell(sheet, value) for value in row])
        count += 1
    book.save(file)
    return count


def _local(when: datetime | None, zone: tzinfo) -> datetime | None:
    """A spreadsheet's date and time: the business zone's wall clock (it has no zones)."""
    return when.astimezone(zone).replace(tzinfo=None, microsecond=0) if when else None


# What makes a spreadsheet read a cell as a formula: = + - @ first (their full-width
# forms too, which some locales accept), also after leading blanks or a tab, CR or LF.
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
# Characters XML 1.0 cannot hold (openpyxl refuses them): dropped from XLSX text. Line
# ends become LF, which is what an XML reader makes of a CR anyway.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_LINE_END = re.compile(r"\r\n?")


def formula_like(value: str) -> bool:
    stripped = value.lstrip(" \t\r\n\u00a0\u3000")
    return bool(value) and (value[0] in "\t\r\n" or stripped[:1] in _FORMULA_START)


def csv_cell(value: Any) -> Any:
    """A cell that no spreadsheet runs: formula-like text is prefixed with `'`."""
    if value is None:
        return ""
    if isinstance(value, str) and formula_like(value):
        return "'" + value
    return value


def xlsx_cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    """A cell as its type: text stays text (openpyxl would take `=…` for a formula)."""
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = "yyyy-mm-dd hh:mm"
        return cell
    if not isinstance(value, str):
        return value
    text = _LINE_END.sub("\n", _NOT_XML.sub("", value))
    if len(text) > XLSX_TEXT:
        text = text[: XLSX_TEXT - 1] + "…"  # Excel refuses a workbook with a longer one
    if not formula_like(text):
        return text
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"  # a string, whatever it starts with
    cell.quotePrefix = True  # and it stays one when someone edits it in Excel
    return cell
