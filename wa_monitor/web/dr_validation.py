"""The front end's drop-number validation (/api/wa-monitor-dr-validation).

The client's list of a day's drops (CSV or XLSX: a date, drop and time column, or one
block of columns per project) is set against the drops the project's group first posted
that day. The page's two writes act on the reviews, as the front end means them:

- PUT records the drops the client installed that the group never posted: a review each,
  by "Manual Entry", at the list's date and time, incomplete (store/manual_drops); a
  number already recorded is left alone, so a second PUT adds nothing, but its review, if
  invalid, is valid again (the page "adds back" a drop it deleted). With a project's list
  of valid numbers, the numbers are put on it.
- DELETE marks a review that is no drop invalid (kept, with its history; it leaves the
  day's drops and the front end's lists) and takes its number off the project's list.
  A later import, or the list's removal, keeps it invalid unless the new list holds its
  number (store/drop_lists).

Both are audited in review_edits under the acting person.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from wa_monitor.core.config import Project, ProjectsConfig
from wa_monitor.core.drop_lists import (
    DayList,
    DropListError,
    cell_day,
    cell_number,
    cell_time,
    read_day_list,
)
from wa_monitor.store import drop_lists, manual_drops
from wa_monitor.store.drop_lists import DayDrop
from wa_monitor.store.manual_drops import ManualDrop
from wa_monitor.web.api import _changed, _config, _errors, _store
from wa_monitor.web.auth import Reviewer, Viewer
from wa_monitor.web.droplists import RejectedCell
from wa_monitor.web.envelope import MAX_DETAILS, ApiError, Envelope, ErrorEnvelope, ok
from wa_monitor.web.inputs import text_problem
from wa_monitor.web.models import FIRST_DAY, LAST_DAY, Day
from wa_monitor.web.queries import local_day_bounds, today

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)

PATH = "/wa-monitor-dr-validation"
# Numbers one "add the missing" may carry: a day's list is tens, a month's thousands.
MAX_ADDED = 50_000

_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorEnvelope, "description": "No such project (or drop)"},
    422: {
        "model": ErrorEnvelope,
        "description": "A field is missing or wrong, or the file cannot be read or holds no "
        "drop number; nothing was changed",
    },
}
ProjectQuery = Annotated[str, Query(min_length=1, max_length=100)]
ProjectForm = Annotated[str, Form(min_length=1, max_length=100)]


class ListedRow(BaseModel):
    date: date  # the row's date, else the date asked for
    dropNumber: str
    time: str  # HH:MM, or the cell as written, or ""
    listed: bool | None = Field(
        description="On the project's list of valid numbers (null: the project has none)"
    )
    postedAt: datetime | None = Field(
        description="When the group first posted it (or it was entered by hand), on whatever "
        "day (null: never)"
    )


class DayDropRow(BaseModel):
    id: str
    dropNumber: str
    date: date
    time: str  # HH:MM of its first post, in the projects' zone
    project: str
    completed: bool
    incomplete: bool


class Validation(BaseModel):
    inCsvAndDb: list[ListedRow]
    inCsvNotInDb: list[ListedRow]
    inDbNotInCsv: list[DayDropRow]
    csvTotal: int  # distinct numbers on the file
    dbTotal: int  # drops first posted that day
    project: str
    date: date
    column: str  # the drop column's header ("" for a file without headers)
    duplicates: int
    rejected: int  # cells of the drop column holding no drop number
    rejectedCells: list[RejectedCell]


class DayDrops(BaseModel):
    drops: list[DayDropRow]
    total: int


class MissingDrop(BaseModel):
    dropNumber: str = Field(min_length=1, max_length=100)
    date: str | None = Field(
        default=None, max_length=40, description="YYYY-MM-DD or DD/MM/YYYY; default: today"
    )
    time: str | None = Field(
        default=None, max_length=40, description="HH:MM; no time (or text that is none): 00:00"
    )


class AddMissing(BaseModel):
    drops: list[MissingDrop] = Field(min_length=1, max_length=MAX_ADDED)
    project: str = Field(min_length=1, max_length=100)


class Added(BaseModel):
    inserted: int = Field(description="Drops now recorded that were not (or were invalid)")
    ids: list[str] = Field(description="Their reviews' ids")
    restored: int = Field(description="Of them, reviews that were invalid, valid again")
    listed: int | None = Field(
        description="Numbers newly on the project's list of valid numbers (null: it has none)"
    )


class Removed(BaseModel):
    deleted: bool
    id: str
    dropNumber: str
    project: str | None
    invalid: bool  # the review is kept, marked invalid


def _project(config: ProjectsConfig, name: str, field: str) -> Project:
    reason = text_problem(name)
    if reason is not None:
        raise ApiError(422, f"Invalid input: {field} {reason}", details=[{"field": field}])
    project = config.by_name(name.strip())
    if project is None:
        raise ApiError(
            404,
            f"No project named {name!r} in the projects file",
            details=[{"field": field}],
        )
    return project


def _drop_row(drop: DayDrop, project: str, config: ProjectsConfig) -> DayDropRow:
    local = drop.posted_at.astimezone(config.zone) if drop.posted_at else None
    return DayDropRow(
        id=str(drop.id),
        dropNumber=drop.drop_number,
        date=local.date() if local else date.min,
        time=local.strftime("%H:%M") if local else "",
        project=project,
        completed=drop.completed,
        incomplete=drop.incomplete,
    )


def _day_drops(request: Request, project: Project, day: date) -> list[DayDropRow]:
    config = _config(request)
    start, end = local_day_bounds(day, config.zone)
    found = drop_lists.day_drops(_store(request), project.name, start, end)
    return [_drop_row(d, project.name, config) for d in found]


@router.get(PATH, response_model=Envelope[DayDrops], responses=_RESPONSES)
def day(
    request: Request,
    _caller: Viewer,
    project: ProjectQuery,
    day: Annotated[Day, Query(alias="date", description="YYYY-MM-DD, in the projects' zone")],
) -> JSONResponse:
    """The project's drops first posted on the day, oldest first."""
    found = _project(_config(request), project, "query.project")
    drops = _day_drops(request, found, day)
    return ok(DayDrops(drops=drops, total=len(drops)).model_dump(mode="json"))


def _read(upload: UploadFile, project: Project, day: date) -> DayList:
    filename = upload.filename or "the file"
    reason = text_problem(filename)
    if reason is not None:
        raise ApiError(422, f"Invalid input: filename {reason}", details=[{"field": "file"}])
    try:
        return read_day_list(
            upload.file, project.pattern, project=project.name, day=day, filename=filename
        )
    except DropListError as exc:
        raise ApiError(422, str(exc), details=[{"field": "file", "message": str(exc)}]) from None


@router.post(PATH, response_model=Envelope[Validation], responses=_RESPONSES)
def validate(
    request: Request,
    _caller: Reviewer,
    file: Annotated[UploadFile, File(description="The client's list of the day: CSV or XLSX")],
    project: ProjectForm,
    day: Annotated[Day, Form(alias="date", description="YYYY-MM-DD, in the projects' zone")],
) -> JSONResponse:
    """The client's list of the day against the drops the group first posted that day.

    Reads only: nothing is stored.
    """
    found = _project(_config(request), project, "body.project")
    read = _read(file, found, day)
    drops = _day_drops(request, found, day)
    known = drop_lists.known(_store(request), found.name, (r.drop_number for r in read.rows))
    of_day = {d.dropNumber for d in drops}
    on_file = {r.drop_number for r in read.rows}
    rows = [
        ListedRow(
            date=r.day,
            dropNumber=r.drop_number,
            time=r.time,
            listed=None if known.listed is None else r.drop_number in known.listed,
            postedAt=known.first_posted.get(r.drop_number),
        )
        for r in read.rows
    ]
    answer = Validation(
        inCsvAndDb=[r for r in rows if r.dropNumber in of_day],
        inCsvNotInDb=[r for r in rows if r.dropNumber not in of_day],
        inDbNotInCsv=[d for d in drops if d.dropNumber not in on_file],
        csvTotal=len(rows),
        dbTotal=len(drops),
        project=found.name,
        date=day,
        column=read.column,
        duplicates=read.duplicates,
        rejected=read.rejected_count,
        rejectedCells=[RejectedCell(row=r.row, value=r.value) for r in read.rejected],
    )
    return ok(answer.model_dump(mode="json"))


def _installed(
    drop: MissingDrop, i: int, today_: date, config: ProjectsConfig
) -> tuple[datetime, date] | dict[str, Any]:
    """The drop's date and time in the business zone, or the detail of a date that is none."""
    given = (drop.date or "").strip()
    day = cell_day(given, date.min) if given else today_
    if day == date.min or not FIRST_DAY <= day <= LAST_DAY:
        return {
            "field": f"body.drops.{i}.date",
            "message": f"{given!r} is no day from {FIRST_DAY} to {LAST_DAY} "
            "(YYYY-MM-DD or DD/MM/YYYY)",
        }
    clock = cell_time((drop.time or "").strip())
    hour, _, minute = clock.partition(":")
    at = time(int(hour), int(minute)) if len(clock) == 5 and clock[2] == ":" else time()
    return datetime.combine(day, at, config.zone), day


@router.put(PATH, response_model=Envelope[Added], status_code=201, responses=_RESPONSES)
def add_missing(
    request: Request, caller: Reviewer, body: Annotated[AddMissing, Body()]
) -> JSONResponse:
    """Record the drops the client installed that the group never posted (see above).

    A number the project has a review of already is left alone; all or nothing: a number
    or date that is none refuses the whole request (422, each one in `details`).
    """
    config = _config(request)
    found = _project(config, body.project, "body.project")
    day_now = today(config.zone)
    drops: list[ManualDrop] = []
    bad: list[dict[str, Any]] = []
    for i, drop in enumerate(body.drops):
        text = drop.dropNumber.strip()
        number = cell_number(text, found.pattern)
        if number is None and text.isdigit():
            number = cell_number(f"DR{text}", found.pattern)  # as a day's list reads it
        if number is None:
            bad.append({"field": f"body.drops.{i}.dropNumber", "message": "not a drop number"})
            continue
        when = _installed(drop, i, day_now, config)
        if isinstance(when, dict):
            bad.append(when)
        else:
            drops.append(ManualDrop(number, *when))
    if bad:
        raise ApiError(
            422,
            f"{len(bad)} of the drops hold no drop number of {found.name} or no date; "
            "nothing was added",
            details=bad[:MAX_DETAILS],
        )
    added = manual_drops.add(_store(request), found.name, drops, actor=caller.actor)
    _changed(request)
    answer = Added(
        inserted=len(added.ids),
        ids=[str(i) for i in added.ids],
        restored=added.restored,
        listed=added.listed,
    )
    return ok(
        answer.model_dump(mode="json"), f"{len(added.ids)} drop(s) added successfully", status=201
    )


@router.delete(PATH, response_model=Envelope[Removed], responses=_RESPONSES)
def take_off(
    request: Request,
    caller: Reviewer,
    review_id: Annotated[str, Query(alias="id", min_length=1, max_length=100)],
) -> JSONResponse:
    """Mark the drop invalid (its review is kept) and take its number off its project's
    list; a second call answers the same."""
    try:
        key = uuid.UUID(review_id)
    except ValueError:
        raise ApiError(
            422, "Invalid input: query.id is not a drop's id", details=[{"field": "query.id"}]
        ) from None
    done = manual_drops.invalidate(_store(request), key, actor=caller.actor)
    if done is None:
        raise ApiError(404, f"Drop with identifier '{review_id}' not found")
    _changed(request)
    answer = Removed(
        deleted=True, id=str(key), dropNumber=done.drop_number, project=done.project, invalid=True
    )
    message = f"{done.drop_number} marked invalid: it is no drop; its review is kept"
    return ok(answer.model_dump(mode="json"), message)
