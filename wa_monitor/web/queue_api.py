"""The work queue: the next drop to review, assignment and release."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from wa_monitor.web import queries as q
from wa_monitor.web.api import _changed, _config, _errors, _not_found, _store, drop_answer
from wa_monitor.web.auth import Admin, Reviewer
from wa_monitor.web.envelope import ApiError, Envelope, ErrorEnvelope, ok
from wa_monitor.web.models import USERNAME_PATTERN, Text, _Strict
from wa_monitor.web.models import Drop as DropModel

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)


class NextDrop(_Strict):
    project: Text | None = Field(
        default=None, max_length=100, description="Only this project's drops (default: any)"
    )


class Assignment(_Strict):
    agent: str = Field(
        pattern=USERNAME_PATTERN, description="The username of an enabled reviewer or admin"
    )


_not_waiting: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorEnvelope,
        "description": "The drop waits for no reviewer (approved, or its number is invalid)",
    }
}
_held: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorEnvelope,
        "description": "The drop is assigned to someone else: only they or an admin may "
        "release it (error.details.assignedAgent says who)",
    }
}


@router.post(
    "/wa-monitor-drops/next",
    response_model=Envelope[DropModel | None],
)
def next_drop(request: Request, caller: Reviewer, body: NextDrop | None = None) -> JSONResponse:
    """Take the oldest drop waiting for a reviewer that nobody holds.

    The drop (new or resubmitted, oldest wait first) is assigned to the caller and
    edit-locked for them; two reviewers asking at once get different drops. `data` is
    null, with the message "Nothing waits for review", when there is none.
    """
    project = body.project if body is not None else None
    if project is not None and _config(request).by_name(project) is None:
        raise ApiError(422, f"No project named {project!r}", details=[{"field": "body.project"}])
    row = q.next_drop(_store(request), caller.actor, project)
    if row is None:
        return ok(None, "Nothing waits for review")
    _changed(request)
    return ok(drop_answer(request, row), f"{row['drop_number']} is yours to review")


@router.post(
    "/wa-monitor-drops/{drop_id}/assign",
    response_model=Envelope[DropModel],
    responses={**_not_found, **_not_waiting},
)
def assign_drop(
    request: Request, caller: Admin, drop_id: uuid.UUID, body: Assignment
) -> JSONResponse:
    """Assign the drop to a reviewer (admins), recorded in its history."""
    try:
        row = q.assign(_store(request), drop_id, body.agent, caller.actor)
    except q.AgentRefused:
        raise ApiError(
            422,
            f"{body.agent} is no enabled reviewer or admin: pick one from the users page",
            details=[{"field": "body.agent"}],
        ) from None
    except q.NotInQueue as exc:
        raise ApiError(409, f"The drop is {exc.state}: it waits for no reviewer") from None
    if row is None:
        raise ApiError(404, f"No drop with id {drop_id}")
    _changed(request)
    return ok(drop_answer(request, row), f"{row['drop_number']} assigned to {body.agent}")


@router.post(
    "/wa-monitor-drops/{drop_id}/release",
    response_model=Envelope[DropModel],
    responses={**_not_found, **_held},
)
def release_drop(request: Request, caller: Reviewer, drop_id: uuid.UUID) -> JSONResponse:
    """Put the drop back in the queue (its assignee, or an admin), recorded in its history."""
    try:
        row = q.release(_store(request), drop_id, caller.actor, admin=caller.can("admin"))
    except q.AssignedToOther as exc:
        raise ApiError(
            403,
            f"The drop is assigned to {exc.holder}: only {exc.holder} or an admin can release it",
            details={"assignedAgent": exc.holder},
        ) from None
    if row is None:
        raise ApiError(404, f"No drop with id {drop_id}")
    _changed(request)
    return ok(drop_answer(request, row), f"{row['drop_number']} is back in the queue")
