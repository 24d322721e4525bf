"""The exports of the filtered drops, CSV and XLSX, in list order (every page).

Both read the drops a page at a time and send them as they go: 100 000 drops never sit
in memory at once (the XLSX is written to a temporary file first; a ZIP needs its end).
No cell is ever run as a formula by the spreadsheet that opens it.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from wa_monitor.reports.sheets import COLUMNS, XLSX_TYPE, export_values, write_xlsx
from wa_monitor.reports.sheets import csv_cell as _csv_cell
from wa_monitor.web import queries as q
from wa_monitor.web.api import Filters, _config, _errors, _not_found, _store, queue_view
from wa_monitor.web.auth import Viewer
from wa_monitor.web.envelope import utf8
from wa_monitor.web.models import drop_out

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)

PAGE = 5000  # drops read at a time
_CHUNK = 64 * 1024


def _drops(request: Request, f: q.DropFilter) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The filtered drops in list order, a page at a time: (the row, the API's drop)."""
    store, zone, view = _store(request), _config(request).zone, queue_view(request)
    offset = 0
    while True:
        rows = q.page_of_drops(store, f, zone, limit=PAGE, offset=offset, view=view)
        for row in rows:
            yield row, drop_out(row, zone)
        if len(rows) < PAGE:
            return
        offset += PAGE


def _filename(request: Request, extension: str) -> dict[str, str]:
    stamp = q.today(_config(request).zone).isoformat()
    return {"Content-Disposition": f'attachment; filename="wa-monitor-drops-{stamp}.{extension}"'}


@router.get(
    "/wa-monitor-drops.csv",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The filtered drops as CSV"},
        **_not_found,
    },
)
def export_drops(request: Request, _caller: Viewer, f: Filters) -> StreamingResponse:
    """The filtered drops as CSV, in list order (every page), with each drop's review
    state, assignee, reasons and comments per step, latest feedback and photo count."""
    labels = _config(request).step_labels

    def lines() -> Iterator[bytes]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        for count, (_row, drop) in enumerate(_drops(request, f), start=1):
            values = export_values(drop, labels)
            writer.writerow([_csv_cell(values[c]) for c in COLUMNS])
            if count % 200 == 0:
                yield _take(buffer)
        yield _take(buffer)

    return StreamingResponse(
        lines(), media_type="text/csv; charset=utf-8", headers=_filename(request, "csv")
    )


def _take(buffer: io.StringIO) -> bytes:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return utf8(text)


@router.get(
    "/wa-monitor-drops.xlsx",
    response_class=StreamingResponse,
    responses={
        200: {"content": {XLSX_TYPE: {}}, "description": "The filtered drops as XLSX"},
        **_not_found,
    },
)
def export_drops_xlsx(request: Request, _caller: Viewer, f: Filters) -> StreamingResponse:
    """The filtered drops as an Excel workbook: the CSV's columns, times as real dates
    (business zone), text never read as a formula."""
    config = _config(request)
    file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (streamed)
    try:
        write_xlsx(file, _drops(request, f), config.step_labels, config.zone)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return StreamingResponse(
        _read_and_close(file), media_type=XLSX_TYPE, headers=_filename(request, "xlsx")
    )


def _read_and_close(file: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := file.read(_CHUNK):
            yield chunk
    finally:
        file.close()
