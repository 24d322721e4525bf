"""Reading a client's list of drop numbers (CSV or XLSX) into the project's numbers.

The column is chosen by its header; each cell is read as the monitor reads a post (the
project's drop pattern, then `detect.normalise`), so a number on the list and the same
number posted in the group are the same text. Files are read row by row: a list of a
million rows never sits in memory as cells, only as its distinct numbers.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import IO, Any

from wa_monitor.core.detect import DropPattern
from wa_monitor.core.errors import WaMonitorError

# How many rejected cells a result names (all are counted).
SHOWN_REJECTS = 10
# The headers taken for the drop column when none is named, compared as `header_key` does.
DROP_HEADERS = (
    "drop number",
    "drop",
    "drop no",
    "drop nr",
    "drop num",
    "drop id",
    "drop ref",
    "drops",
    "dr number",
    "dr no",
    "dr nr",
    "dr",
)
_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024
_SEPARATORS = re.compile(r"[\s_\-.#:]+")
_ZIP_MAGIC = b"PK\x03\x04"

Progress = Callable[[int, int | None], None]  # (done, total): bytes of a CSV, rows of a sheet


class DropListError(WaMonitorError):
    """A list that cannot be read: the file, the sheet or the column; the message says why."""

    exit_code = 2


@dataclass(frozen=True)
class Rejected:
    """A cell of the drop column that holds no drop number (row 1 is the file's first)."""

    row: int
    value: str


@dataclass(frozen=True)
class DropList:
    """The numbers read from one file, and what was left out."""

    numbers: tuple[str, ...]  # distinct, in the order of the file
    column: str  # the header read ("" for a file without one)
    rows: int  # data rows read, blanks included
    duplicates: int
    rejected_count: int
    rejected: tuple[Rejected, ...]  # the first SHOWN_REJECTS

    def rejected_text(self) -> str:
        """The rejected cells in one line, e.g. `3 cells are not drop numbers: row 4 "x", …`."""
        if not self.rejected_count:
            return ""
        shown = ", ".join(f"row {r.row} {r.value[:40]!r}" for r in self.rejected)
        more = " …" if self.rejected_count > len(self.rejected) else ""
        cells = (
            "cell is not a drop number"
            if self.rejected_count == 1
            else "cells are not drop numbers"
        )
        return f"{self.rejected_count} {cells}: {shown}{more}"


def header_key(text: str) -> str:
    """A header as compared: lower case, runs of spaces, `_`, `-`, `.` as one space."""
    return _SEPARATORS.sub(" ", text.strip().lower()).strip()


def cell_number(value: Any, pattern: DropPattern) -> str | None:
    """The one drop number a cell holds, normalised as in posts; None for none or several."""
    found = pattern.find(cell_text(value))
    return found[0] if len(found) == 1 else None


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a number typed into a sheet: 12345678.0
    return str(value).strip()


def read_drop_list(
    source: Path | IO[bytes],
    pattern: DropPattern,
    *,
    filename: str | None = None,
    column: str | None = None,
    sheet: str | None = None,
    progress: Progress | None = None,
) -> DropList:
    """The drop numbers of a CSV or XLSX file.

    Args:
        source: a path, or a seekable binary file (an upload).
        pattern: the project's drop pattern; a cell is a number when it holds exactly one.
        filename: the name shown in errors (default: the path's).
        column: the header of the drop column (case, spaces and `_` ignored); without it,
            the first header in DROP_HEADERS, else a first row holding a drop number
            (a file without headers).
        sheet: the XLSX sheet (default: the first).
        progress: called now and then with (done, total).

    Raises DropListError: unreadable file, unknown sheet, no such column, no number.
    """
    name = filename or (source.name if isinstance(source, Path) else "the file")
    if isinstance(source, Path):
        try:
            with source.open("rb") as handle:
                return _read(handle, name, pattern, column, sheet, progress)
        except OSError as exc:
            raise DropListError(f"cannot read {name}: {exc.strerror or exc}") from None
    return _read(source, name, pattern, column, sheet, progress)


def _read(
    handle: IO[bytes],
    name: str,
    pattern: DropPattern,
    column: str | None,
    sheet: str | None,
    progress: Progress | None,
) -> DropList:
    start = handle.read(len(_ZIP_MAGIC))
    handle.seek(0)
    if start == _ZIP_MAGIC:
        rows = _xlsx_rows(handle, name, sheet, progress)
    elif sheet is not None:
        raise DropListError(f"{name} is not an XLSX workbook: --sheet is for XLSX files")
    elif name.lower().endswith((".xlsx", ".xlsm", ".xls")):
        raise DropListError(
            f"{name} is not an XLSX workbook (an .xls of old Excel?): save it as .xlsx or .csv"
        )
    else:
        rows = _csv_rows(handle, name, progress)
    return _collect(rows, name, pattern, column)


def _first_row(rows: Iterator[list[Any]], name: str) -> tuple[int, list[Any]]:
    """The first row with anything in it, and its number; an error for an empty file."""
    for row_number, row in enumerate(rows, start=1):
        if any(cell_text(c) for c in row):
            return row_number, row
    raise DropListError(f"{name} is empty: no header and no drop number in it")


def _no_number(name: str, header: str, rejected_count: int) -> DropListError:
    where = f"column {header!r}" if header else "the first column holding numbers"
    detail = f" ({rejected_count} cells hold something else)" if rejected_count else ""
    return DropListError(f"{name}: no drop number in {where}{detail}")


def _collect(
    rows: Iterator[list[Any]], name: str, pattern: DropPattern, column: str | None
) -> DropList:
    row_number, first = _first_row(rows, name)
    index, header = _drop_column(first, name, pattern, column)
    numbers: dict[str, None] = {}
    duplicates = rejected_count = data_rows = 0
    rejected: list[Rejected] = []
    pending = [(row_number, first)] if header == "" else []

    def take(number_row: int, row: list[Any]) -> None:
        nonlocal duplicates, rejected_count, data_rows
        data_rows += 1
        text = cell_text(row[index]) if index < len(row) else ""
        if not text:
            return
        number = cell_number(text, pattern)
        if number is None:
            rejected_count += 1
            if len(rejected) < SHOWN_REJECTS:
                rejected.append(Rejected(number_row, text))
        elif number in numbers:
            duplicates += 1
        else:
            numbers[number] = None

    for number_row, row in pending:
        take(number_row, row)
    for row in rows:
        row_number += 1
        take(row_number, row)
    if not numbers:
        raise _no_number(name, header, rejected_count)
    return DropList(
        numbers=tuple(numbers),
        column=header,
        rows=data_rows,
        duplicates=duplicates,
        rejected_count=rejected_count,
        rejected=tuple(rejected),
    )


def _drop_column(
    first: list[Any], name: str, pattern: DropPattern, column: str | None
) -> tuple[int, str]:
    """The drop column's index and header ("" when the first row is data)."""
    headers = [cell_text(c) for c in first]
    keys = [header_key(h) for h in headers]
    if column is not None:
        wanted = header_key(column)
        if wanted in keys:
            index = keys.index(wanted)
            return index, headers[index]
        raise DropListError(f"{name} has no column {column!r}; its headers are: {_listed(headers)}")
    for candidate in DROP_HEADERS:
        if candidate in keys:
            index = keys.index(candidate)
            return index, headers[index]
    for index, header in enumerate(headers):
        if cell_number(header, pattern) is not None:
            return index, ""  # no header row: the numbers start at once
    raise DropListError(
        f"{name}: no drop number column found; its headers are: {_listed(headers)}. "
        'Name the column (--column "Drop Number", or the upload\'s column field)'
    )


def _listed(headers: list[str]) -> str:
    shown = [h for h in headers if h][:20]
    return ", ".join(repr(h) for h in shown) if shown else "(none)"


# -- CSV ---------------------------------------------------------------------------------


class _Counting(io.RawIOBase):
    """A binary file that reports how far it has been read."""

    def __init__(self, raw: IO[bytes], total: int | None, progress: Progress | None) -> None:
        self.raw, self.total, self.progress, self.done = raw, total, progress, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.done += len(data)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return len(data)


def _size(handle: IO[bytes]) -> int | None:
    try:
        end = handle.seek(0, io.SEEK_END)
        handle.seek(0)
        return end
    except (OSError, ValueError):
        return None


def _csv_rows(handle: IO[bytes], name: str, progress: Progress | None) -> Iterator[list[Any]]:
    sample = handle.read(_SNIFF_BYTES)
    handle.seek(0)
    if b"\x00" in sample:
        raise DropListError(f"{name} is neither CSV text nor an XLSX workbook")
    encoding = _encoding(handle)
    text = codecs.decode(sample, encoding, "replace")
    delimiter = _delimiter(text)
    total = _size(handle)
    stream = io.TextIOWrapper(
        io.BufferedReader(_Counting(handle, total, progress)), encoding=encoding, newline=""
    )
    try:
        yield from csv.reader(stream, delimiter=delimiter)
    except csv.Error as exc:
        raise DropListError(f"{name} is not readable CSV: {exc}") from None
    finally:
        stream.detach()


def _encoding(handle: IO[bytes]) -> str:
    """UTF-8 (with or without a BOM) when the whole file decodes as it, else cp1252."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        while chunk := handle.read(1 << 20):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        encoding = "utf-8-sig"
    except UnicodeDecodeError:
        encoding = "cp1252"
    handle.seek(0)
    return encoding


def _delimiter(sample: str) -> str:
    lines = sample.splitlines()[:50]
    if len(lines) > 1 and not sample.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample cut a line short
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        return ","  # one column, or too little to tell


# -- XLSX --------------------------------------------------------------------------------


def _xlsx_rows(
    handle: IO[bytes], name: str, sheet: str | None, progress: Progress | None
) -> Iterator[list[Any]]:
    from openpyxl import load_workbook  # only when a workbook is read
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(handle, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as exc:
        raise DropListError(f"{name} is not a readable XLSX workbook ({exc})") from None
    try:
        if sheet is None:
            worksheet = book.worksheets[0]
        elif sheet in book.sheetnames:
            worksheet = book[sheet]
        else:
            raise DropListError(
                f"{name} has no sheet {sheet!r}; its sheets are: {_listed(book.sheetnames)}"
            )
        total = worksheet.max_row
        for done, row in enumerate(worksheet.iter_rows(values_only=True), 1):
            if progress is not None and done % 1000 == 0:
                progress(done, total)
            yield list(row)
    finally:
        book.close()


# -- a day's list (drop, date, time) -------------------------------------------------------

_EXCEL_EPOCH = date(1899, 12, 30)
_ISO_DAY = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T].*)?")
_DMY_DAY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T].*)?")
_CLOCK = re.compile(r"(\d{1,2})[:h](\d{2})(?::\d{2}(?:\.\d+)?)?")
# Plausible sheet serials for a date (1954 to 2119): a bare drop-like number is not one.
_SERIALS = (20_000, 80_000)
MAX_TIME_TEXT = 20


@dataclass(frozen=True)
class DayRow:
    """One number of a day's list, with the date and time its row gives."""

    row: int  # 1 is the file's first
    drop_number: str
    day: date  # the row's date, else the day asked for
    time: str  # "HH:MM", the cell as written when it is no clock time, or ""


@dataclass(frozen=True)
class DayList:
    """The rows of a client's list of the day's drops, and what was left out."""

    rows: tuple[DayRow, ...]  # one per distinct number, in the order of the file
    column: str
    duplicates: int
    rejected_count: int
    rejected: tuple[Rejected, ...]


def cell_day(value: Any, default: date) -> date:
    """The date a cell holds (a date, a sheet serial, YYYY-MM-DD or DD/MM/YYYY), else `default`."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if _SERIALS[0] <= value < _SERIALS[1]:
            return _EXCEL_EPOCH + timedelta(days=int(value))
        return default
    text = cell_text(value)
    for pattern, order in ((_ISO_DAY, (0, 1, 2)), (_DMY_DAY, (2, 1, 0))):
        found = pattern.fullmatch(text)
        if found is not None:
            year, month, day = (int(found.group(i + 1)) for i in order)
            try:
                return date(year, month, day)
            except ValueError:
                return default
    return default


def cell_time(value: Any) -> str:
    """A cell's time of day as HH:MM (a time, a date-time, a fraction of a day, `9:05`)."""
    if isinstance(value, datetime | dt_time):
        return f"{value.hour:02d}:{value.minute:02d}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        minutes = round((value % 1) * 24 * 60) % (24 * 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
    text = cell_text(value)
    found = _CLOCK.fullmatch(text)
    if found is not None and int(found.group(1)) < 24 and int(found.group(2)) < 60:
        return f"{int(found.group(1)):02d}:{found.group(2)}"
    return text[:MAX_TIME_TEXT]


def read_day_list(
    source: IO[bytes],
    pattern: DropPattern,
    *,
    project: str,
    day: date,
    filename: str | None = None,
) -> DayList:
    """The numbers of a client's list of a day's drops, each with its row's date and time.

    The sheet is either one table (a header row naming the drop column, and `Date` and
    `Time` columns when it has them) or one block of columns per project: a first row of
    project names over a row of headers; the block whose name holds `project` (or is held
    in it, case ignored) is read. A row without a readable date is of `day`; a cell of
    digits alone is read with a `DR` before them (a number typed into a sheet).

    Raises DropListError: unreadable file, no drop column, no block for the project, no
    number.
    """
    name = filename or "the file"
    start = source.read(len(_ZIP_MAGIC))
    source.seek(0)
    if start == _ZIP_MAGIC:
        rows = _xlsx_rows(source, name, None, None)
    elif name.lower().endswith((".xlsx", ".xlsm", ".xls")):
        raise DropListError(
            f"{name} is not an XLSX workbook (an .xls of old Excel?): save it as .xlsx or .csv"
        )
    else:
        rows = _csv_rows(source, name, None)
    return _collect_day(rows, name, pattern, project, day)


def _has_drop_header(row: list[Any]) -> bool:
    return any(header_key(cell_text(c)) in DROP_HEADERS for c in row)


def _columns(
    headers: list[Any], name: str, pattern: DropPattern, span: range
) -> tuple[int, str, int | None, int | None]:
    """The drop, date and time columns among `span` of a header row."""
    keys = {i: header_key(cell_text(headers[i])) for i in span if i < len(headers)}
    in_span = [headers[i] for i in span if i < len(headers)]
    offset = span.start
    index, header = _drop_column(in_span, name, pattern, None)
    dated = next((i for i, k in keys.items() if k == "date"), None)
    timed = next((i for i, k in keys.items() if k == "time"), None)
    return index + offset, header, dated, timed


def _project_block(first: list[Any], project: str, name: str) -> range:
    wanted = project.strip().lower()
    starts = [i for i, c in enumerate(first) if cell_text(c)]
    for n, i in enumerate(starts):
        label = cell_text(first[i]).lower()
        if wanted in label or label in wanted:
            end = starts[n + 1] if n + 1 < len(starts) else i + 5
            return range(i, max(end, i + 1))
    labels = [cell_text(first[i]) for i in starts]
    raise DropListError(
        f"{name}: no block of columns for project {project!r}; the first row names: "
        f"{_listed(labels)}"
    )


def _collect_day(
    rows: Iterator[list[Any]], name: str, pattern: DropPattern, project: str, day: date
) -> DayList:
    row_number, first = _first_row(rows, name)
    pending: list[tuple[int, list[Any]]] = []
    if _has_drop_header(first):
        index, header, dated, timed = _columns(first, name, pattern, range(len(first)))
    else:
        second = next(rows, None)
        if second is not None and _has_drop_header(second):
            row_number += 1
            block = _project_block(first, project, name)
            index, header, dated, timed = _columns(second, name, pattern, block)
        else:
            index, header = _drop_column(first, name, pattern, None)  # no headers at all
            dated = timed = None
            pending.append((row_number, first))
            if second is not None:
                row_number += 1
                pending.append((row_number, second))
    found: dict[str, DayRow] = {}
    duplicates = rejected_count = 0
    rejected: list[Rejected] = []

    def cell(row: list[Any], i: int | None) -> Any:
        return row[i] if i is not None and i < len(row) else None

    def take(number_row: int, row: list[Any]) -> None:
        nonlocal duplicates, rejected_count
        text = cell_text(cell(row, index))
        if not text:
            return
        number = cell_number(text, pattern)
        if number is None and text.isdigit():
            number = cell_number(f"DR{text}", pattern)  # typed into a sheet without its DR
        if number is None:
            rejected_count += 1
            if len(rejected) < SHOWN_REJECTS:
                rejected.append(Rejected(number_row, text))
        elif number in found:
            duplicates += 1
        else:
            found[number] = DayRow(
                number_row, number, cell_day(cell(row, dated), day), cell_time(cell(row, timed))
            )

    for number_row, row in pending:
        take(number_row, row)
    for row in rows:
        row_number += 1
        take(row_number, row)
    if not found:
        raise _no_number(name, header, rejected_count)
    return DayList(
        rows=tuple(found.values()),
        column=header,
        duplicates=duplicates,
        rejected_count=rejected_count,
        rejected=tuple(rejected),
    )
