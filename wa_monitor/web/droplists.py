"""Each project's list of valid drop numbers: imports and the day's reconciliation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi import Path as PathParameter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from wa_monitor.core.config import Project, ProjectsConfig
from wa_monitor.core.drop_lists import DropList, DropListError, read_drop_list
from wa_monitor.store import drop_lists
from wa_monitor.web.api import _config, _errors, _store
from wa_monitor.web.auth import Admin, Reviewer, Viewer
from wa_monitor.web.envelope import ApiError, Envelope, ErrorEnvelope, ok
from wa_monitor.web.inputs import MAX_UPLOAD_BYTES, text_problem

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)

_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such project in the projects file"},
    413: {
        "model": ErrorEnvelope,
        "description": f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB",
    },
    422: {
        "model": ErrorEnvelope,
        "description": "The file cannot be read, or has no drop number column (the message "
        "lists its headers), or no drop number; nothing was changed",
    },
}
ProjectName = Annotated[str, PathParameter(min_length=1, max_length=100)]
UploadField = Annotated[UploadFile, File(description="The client's list: CSV or XLSX")]
ColumnField = Annotated[
    str | None,
    Form(
        max_length=200,
        description='The drop number column\'s header, e.g. "Drop Number" (default: the '
        "first header like drop, drop number, dr)",
    ),
]


class DropListInfo(BaseModel):
    project: str
    total: int  # 0: no list, every number is valid
    importedAt: datetime | None
    importedBy: str | None
    filename: str | None


class RejectedCell(BaseModel):
    row: int
    value: str


class DropListImport(BaseModel):
    project: str
    added: int
    removed: int
    total: int
    changed: int  # drops whose validity the import changed
    column: str  # the header read ("" for a file without headers)
    duplicates: int
    rejected: int  # cells of the column holding no drop number
    rejectedCells: list[RejectedCell]  # the first few, with their rows


class Reconciliation(BaseModel):
    project: str
    date: date
    listed: int
    notPosted: list[str]  # on the file, never posted in the group
    notListed: list[str]  # posted that day, not on the file


def _project(config: ProjectsConfig, name: str) -> Project:
    project = config.by_name(name)
    if project is None:
        raise ApiError(404, f"No project named {name!r} in the projects file")
    return project


def _text(field: str, value: str | None) -> None:
    reason = text_problem(value) if value is not None else None
    if reason is not None:
        raise ApiError(422, f"Invalid input: {field} {reason}", details=[{"field": field}])


def _read(upload: UploadFile, project: Project, column: str | None) -> DropList:
    """The upload's numbers; a file that cannot be read is a 422 saying why."""
    column = column.strip() if column else None
    _text("column", column)
    filename = upload.filename or "the file"
    _text("filename", filename)
    try:
        return read_drop_list(
            upload.file, project.pattern, filename=filename, column=column or None
        )
    except DropListError as exc:
        raise ApiError(422, str(exc)) from None


@router.get("/wa-monitor-drop-lists", response_model=Envelope[list[DropListInfo]])
def list_info(request: Request, _caller: Viewer) -> JSONResponse:
    """Each project's list of valid drop numbers: its size and its latest import."""
    infos = {i.project: i for i in drop_lists.info(_store(request))}
    configured = [p.name for p in _config(request).projects]
    names = configured + sorted(set(infos) - set(configured))
    answer = []
    for name in names:
        info = infos.get(name)
        answer.append(
            DropListInfo(
                project=name,
                total=info.total if info else 0,
                importedAt=info.imported_at if info else None,
                importedBy=info.imported_by if info else None,
                filename=info.filename if info else None,
            ).model_dump(mode="json")
        )
    return ok(answer)


@router.post(
    "/wa-monitor-drop-lists/{name}",
    response_model=Envelope[DropListImport],
    responses=_UPLOAD_ERRORS,
)
def import_list(
    request: Request,
    caller: Admin,
    name: ProjectName,
    file: UploadField,
    column: ColumnField = None,
) -> JSONResponse:
    """Replace the project's list with the numbers of the file, atomically.

    The project's drops are judged again in the same transaction; on any error the list
    is left as it was.
    """
    _text("path.name", name)
    found = _project(_config(request), name)
    read = _read(file, found, column)
    result = drop_lists.replace(
        _store(request),
        found.name,
        read.numbers,
        actor=f"dashboard:{caller.user.username}",
        filename=file.filename,
    )
    answer = DropListImport(
        project=found.name,
        added=result.added,
        removed=result.removed,
        total=result.total,
        changed=result.changed,
        column=read.column,
        duplicates=read.duplicates,
        rejected=read.rejected_count,
        rejectedCells=[RejectedCell(row=r.row, value=r.value) for r in read.rejected],
    )
    message = (
        f"{found.name}: {result.total} numbers, {result.added} added, {result.removed} removed"
    )
    if read.rejected_count:
        message += f"; {read.rejected_text()}"
    return ok(answer.model_dump(mode="json"), message)


@router.post(
    "/wa-monitor-reconcile",
    response_model=Envelope[Reconciliation],
    responses=_UPLOAD_ERRORS,
)
def reconcile(
    request: Request,
    _caller: Reviewer,
    file: UploadField,
    project: Annotated[str, Form(min_length=1, max_length=100)],
    day: Annotated[
        date | None,
        Form(alias="date", description="YYYY-MM-DD (default: today in the projects' zone)"),
    ] = None,
    column: ColumnField = None,
) -> JSONResponse:
    """The day's list from the client against the group's posts, side by side."""
    _text("project", project)
    config = _config(request)
    found = _project(config, project)
    read = _read(file, found, column)
    when = day or datetime.now(UTC).astimezone(config.zone).date()
    result = drop_lists.reconcile(_store(request), found.name, read.numbers, when, config.zone)
    answer = Reconciliation(
        project=found.name,
        date=when,
        listed=len(read.numbers),
        notPosted=result.not_posted,
        notListed=result.not_listed,
    )
    return ok(answer.model_dump(mode="json"))
