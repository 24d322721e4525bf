"""The JSON API: the company dashboard's contract (FIELD_NOTES section 2) and a few more routes."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from time import time as _wall_time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from wa_monitor.core import queue
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.gateways import EVOLUTION, WAHA
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.queue import Clocks
from wa_monitor.core.review_edits import (
    LOCK_SECONDS,
    EditConflict,
    EditRejected,
    LockedByOther,
    corrected_number,
    held_by_other,
)
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback import outbox as fb
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web import queries as q
from wa_monitor.web.auth import Caller, Reviewer, Viewer
from wa_monitor.web.changes import AnswerCache
from wa_monitor.web.envelope import (
    ApiError,
    Envelope,
    ErrorEnvelope,
    PagedMeta,
    encode,
    ok,
    ok_encoded,
    ok_streamed,
)
from wa_monitor.web.models import (
    REVIEW_STATES,
    Day,
    DropDetail,
    DropPatchModel,
    FeedbackDraft,
    FeedbackSent,
    FeedbackState,
    LockRequest,
    LockState,
    Me,
    SendFeedback,
    Summary,
    drop_out,
    feedback_state,
    local_text,
)
from wa_monitor.web.models import Drop as DropModel

NO_NUL = r"^[^\x00]*$"
# Printable ASCII, as HTTP's structured-field strings are: stored as sent, shown as stored.
IDEMPOTENCY_KEY = r"^[\x21-\x7e]+$"

_errors: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": text}
    for code, text in (
        (400, "Malformed request (e.g. a body that is not JSON)"),
        (401, "Not signed in, or a bad API token"),
        (403, "The role does not allow this, or the CSRF token is missing"),
        (413, "The request body is larger than 256 KiB"),
        (415, "A multipart body (send JSON)"),
        (422, "Invalid input (text that is not valid Unicode, out of range, too long…)"),
        (500, "Internal or database error"),
    )
}
_not_found: dict[int | str, dict[str, Any]] = {404: {"model": ErrorEnvelope}}
_conflict: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorEnvelope, "description": "Someone else holds the edit lock"}
}
_edit_conflict: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorEnvelope,
        "description": "Someone else holds the edit lock, or the drop changed since the "
        "edit's version in what the edit changes: error.details holds `current` (the drop "
        "now), `sent` (the edit), `conflicts` and both versions",
    }
}
# An ETag as GET answers it: the review's version, quoted (RFC 9110 strong validator).
_ETAG = re.compile(r'"([1-9][0-9]{0,9})"')


def etag(row: dict[str, Any]) -> str:
    return f'"{int(row["version"])}"'


def _if_match(value: str | None) -> int | None:
    """The version an If-Match header names; None for none or `*` (any version)."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.fullmatch(value.strip())
    if match is None:
        raise ApiError(
            400,
            'If-Match must be the ETag of GET /api/wa-monitor-drops/{id}, e.g. "3" '
            "(one strong ETag, quoted)",
            details=[{"field": "header.If-Match"}],
        )
    return int(match.group(1))


router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)


def _store(request: Request) -> ReviewStore:
    store: ReviewStore = request.app.state.store
    return store


def _config(request: Request) -> ProjectsConfig:
    config: ProjectsConfig = request.app.state.config
    return config


def clocks(request: Request) -> Clocks:
    """Each project's review clock (its working hours, else WORKING_HOURS; its target)."""
    return queue_clocks(request.app.state)[0]


def queue_clocks(state: Any) -> tuple[Clocks, tzinfo]:
    """The review queue's clocks and the business zone of an app's state (its projects
    file, as last reloaded, and its settings): what /metrics counts overdue drops by."""
    config: ProjectsConfig = state.config
    settings = getattr(state, "settings", None)
    text = getattr(settings, "working_hours", None) or "always"
    # Built once per projects file (a reload replaces state.config), not per request.
    built: tuple[ProjectsConfig, str, Clocks] | None = getattr(state, "queue_clocks", None)
    if built is None or built[0] is not config or built[1] != text:
        built = (config, text, queue.clocks_for(config.projects, WorkingHours.parse(text)))
        state.queue_clocks = built
    return built[2], config.zone


def queue_view(request: Request) -> q.QueueView:
    """The clocks, at this moment: what the drops' waiting hours and overdue are read at."""
    return q.QueueView(clocks(request))


def drop_answer(request: Request, row: dict[str, Any]) -> dict[str, Any]:
    """A review row as the API's drop, with its wait (`_queue`) read now."""
    zone = _config(request).zone
    q.attach_queue([row], zone, queue_view(request))
    return drop_out(row, zone)


def _sender(request: Request) -> fb.FeedbackSender:
    sender: fb.FeedbackSender = request.app.state.sender
    return sender


def _summaries(request: Request) -> q.SummaryCache | None:
    """The server's summary cache (`serve` installs one), else None: computed per request."""
    cache: q.SummaryCache | None = getattr(request.app.state, "summary_cache", None)
    return cache


def _answers(request: Request) -> AnswerCache[Any]:
    """Answers kept until the review database says they changed (see web/changes.py)."""
    answers: AnswerCache[Any] = request.app.state.answers
    return answers


def _drop_answers(request: Request) -> AnswerCache[Any]:
    """Like `_answers`, also stale when group_messages changes (the drops' photo figures)."""
    answers: AnswerCache[Any] = request.app.state.drop_answers
    return answers


def _changed(request: Request) -> None:
    """This process changed reviews: its next summaries are computed afresh."""
    cache = _summaries(request)
    if cache is not None:
        cache.clear()


def _drop_or_404(store: ReviewStore, drop_id: uuid.UUID) -> dict[str, Any]:
    row = q.get_drop(store, drop_id)
    if row is None:
        raise ApiError(404, f"No drop with id {drop_id}")
    return row


@router.get("/wa-monitor-me", response_model=Envelope[Me])
def me(caller: Viewer) -> JSONResponse:
    """Who the caller is and what role they hold."""
    return ok({"username": caller.user.username, "role": caller.user.role, "via": caller.via})


def _drop_id(text: str | None) -> uuid.UUID | None:
    """`?id=` as a review id; any other text names no drop (404, as the contract has it)."""
    if text is None or not text.strip():
        return None
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise ApiError(404, f"Drop with identifier '{text}' not found") from None


async def drop_filter(
    caller: Viewer,
    id: Annotated[
        str | None,
        Query(max_length=100, pattern=NO_NUL, description="One drop by its id: answers it alone"),
    ] = None,
    status: Annotated[Literal["complete", "incomplete"] | None, Query()] = None,
    project: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    resubmitted: Annotated[bool | None, Query()] = None,
    dateFrom: Annotated[Day | None, Query(description="First local day (inclusive)")] = None,
    dateTo: Annotated[Day | None, Query(description="Last local day (inclusive)")] = None,
    search: Annotated[
        str | None,
        Query(
            max_length=50,
            pattern=NO_NUL,
            description="Part of a drop number or of a project's name",
        ),
    ] = None,
    feedback: Annotated[Literal["sent", "unsent"] | None, Query()] = None,
    reviewState: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Comma-separated states: " + ", ".join(REVIEW_STATES),
            examples=["new,resubmitted"],
        ),
    ] = None,
    overdue: Annotated[
        bool | None,
        Query(description="Waiting for a reviewer longer than the project's review_target"),
    ] = None,
    assignedAgent: Annotated[
        str | None,
        Query(max_length=100, pattern=NO_NUL, description="The reviewer who holds the drops"),
    ] = None,
    sort: Annotated[
        Literal["queue", "latest"] | None,
        Query(
            description="queue: waiting for a reviewer first, oldest first, then waiting for "
            "the installer, approved, invalid; latest: resubmitted first, newest message "
            "first. Default: queue; latest for a front-end token (its dashboard lists drops "
            "newest first and does not sort them)"
        ),
    ] = None,
) -> q.DropFilter:
    if dateFrom and dateTo and dateFrom > dateTo:
        raise ApiError(422, "dateFrom is after dateTo", details=[{"field": "query.dateFrom"}])
    drop_id = _drop_id(id)
    states = _states(reviewState)
    return q.DropFilter(
        id=drop_id,
        status=status,
        project=project or None,
        resubmitted=resubmitted,
        date_from=dateFrom,
        date_to=dateTo,
        search=(search or "").strip() or None,
        feedback=feedback,
        review_states=states,
        overdue=overdue,
        assigned_agent=(assignedAgent or "").strip() or None,
        sort=sort or ("latest" if caller.front_end else "queue"),
        # The front end has no invalid numbers: a drop it deleted leaves its lists.
        valid_only=caller.front_end and not states and drop_id is None,
    )


def _states(text: str | None) -> tuple[str, ...]:
    """`new,resubmitted` as the states it names, in the queue's order; 422 for an unknown."""
    names = {part.strip() for part in (text or "").split(",") if part.strip()}
    unknown = sorted(names - set(REVIEW_STATES))
    if unknown:
        raise ApiError(
            422,
            f"Unknown review state {', '.join(unknown)}: use any of {', '.join(REVIEW_STATES)}",
            details=[{"field": "query.reviewState"}],
        )
    return tuple(state for state in queue.STATES if state in names)


Filters = Annotated[q.DropFilter, Depends(drop_filter)]


class QueueSummary(Summary):
    """The summary cards; invalid numbers are no drops and counted only in byState."""

    byState: dict[str, int] = Field(
        description="Reviews per state (every state present, invalid included)"
    )
    overdue: int = Field(description="Drops waiting for a reviewer longer than the target")


class FrontEndPagination(BaseModel):
    """The page as the company dashboard's newer version reads it (top-level `pagination`)."""

    currentPage: int
    pageSize: int
    totalDrops: int
    totalPages: int
    hasNextPage: bool
    hasPreviousPage: bool


class DropsEnvelope(BaseModel):
    success: bool = True
    data: list[DropModel]
    summary: QueueSummary
    pagination: FrontEndPagination
    meta: PagedMeta


# The waiting hours of a page are read again after this long, even if no drop changed.
_AGE_SECONDS = 60
# An answer of every drop up to this many is kept like a page; a longer one is streamed.
_WHOLE_CACHED = 500


def _pages(page: int, size: int, total: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page in our dashboard's terms (meta.pagination) and in the company's."""
    pages = max(1, math.ceil(total / size))
    ours = {"page": page, "pageSize": size, "total": total, "pages": pages}
    theirs = {
        "currentPage": page,
        "pageSize": size,
        "totalDrops": total,
        "totalPages": pages,
        "hasNextPage": page < pages,
        "hasPreviousPage": page > 1,
    }
    return ours, theirs


@router.get(
    "/wa-monitor-drops",
    response_model=DropsEnvelope,
    responses={
        **_not_found,
        200: {
            "description": "The drops, or with `id` the one drop as `data` (an object)",
        },
    },
)
def list_drops(
    request: Request,
    _caller: Viewer,
    f: Filters,
    page: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    pageSize: Annotated[int | None, Query(ge=1, le=500)] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=1000, description="The page size (the company dashboard's)")
    ] = None,
) -> Response:
    """Drops in the work queue's order (or `sort=latest`), with the summary cards.

    The queue: waiting for a reviewer (new, resubmitted, in review) oldest first, then
    waiting for the installer, approved, and invalid numbers last (a front-end token sees
    none without `reviewState`: it has no notion of them). Without `page`,
    `pageSize` or `limit` the answer holds every drop the filters match (streamed); with
    `id`, `data` is that one drop.
    """
    store, zone = _store(request), _config(request).zone
    view = queue_view(request)
    if f.id is not None:
        found = q.page_of_drops(store, f, zone, limit=1, view=view)
        if not found:
            raise ApiError(404, f"Drop with identifier '{f.id}' not found")
        response = ok(drop_out(found[0], zone))
        response.headers["ETag"] = etag(found[0])
        return response
    cache = _summaries(request)
    if cache is not None:
        summary = dict(cache.get(store, f, zone, view.clocks))
    else:
        summary = q.summary(store, f, zone, view)
    # Pages count every listed review, invalid numbers too.
    total = int(summary.pop("listed"))
    minute = int(_wall_time() // _AGE_SECONDS)
    if page is None and pageSize is None and limit is None:
        ours, theirs = _pages(1, max(1, total), total)
        extra = {
            "summary": summary,
            "pagination": theirs,
            "meta": {"timestamp": datetime.now(UTC).isoformat(), "pagination": ours},
        }
        if total <= _WHOLE_CACHED:

            def read_all() -> str:
                # No limit: a count a moment old must not cut the answer short.
                rows = q.page_of_drops(store, f, zone, limit=None, view=view)
                return encode([drop_out(r, zone) for r in rows])

            whole: tuple[Any, ...] = ("drops", f, str(zone), view.clocks, minute, "all")
            return ok_encoded(_drop_answers(request).get(whole, read_all), **extra)
        rows = (
            encode(drop_out(r, zone))
            for batch in q.stream_drops(store, f, zone, view=view)
            for r in batch
        )
        return ok_streamed(rows, **extra)
    size = limit or pageSize or 50
    page = page or 1
    ours, theirs = _pages(page, size, total)

    def read_page() -> str:
        rows = q.page_of_drops(store, f, zone, limit=size, offset=(page - 1) * size, view=view)
        return encode([drop_out(r, zone) for r in rows])

    key = ("drops", f, str(zone), view.clocks, minute, page, size)
    data = _drop_answers(request).get(key, read_page)
    return ok_encoded(
        data,
        summary=summary,
        pagination=theirs,
        meta={"timestamp": datetime.now(UTC).isoformat(), "pagination": ours},
    )


# `:uuid`: other paths under /wa-monitor-drops/ (next) are not taken for a drop's id.
@router.get(
    "/wa-monitor-drops/{drop_id:uuid}", response_model=Envelope[DropDetail], responses=_not_found
)
def get_drop(request: Request, _caller: Viewer, drop_id: uuid.UUID) -> JSONResponse:
    """One drop with its edit history and feedback attempts."""
    store, zone = _store(request), _config(request).zone
    row = _drop_or_404(store, drop_id)
    edits = [
        {**e, "at": e["at"].astimezone(zone).isoformat(), "atLocal": local_text(e["at"], zone)}
        for e in q.edits(store, drop_id)
    ]
    entries = [
        FeedbackState.model_validate(feedback_state(e.__dict__, zone)).model_dump(mode="json")
        for e in fb.entries_for(store, drop_id)
    ]
    response = ok({"drop": drop_answer(request, row), "edits": edits, "feedback": entries})
    response.headers["ETag"] = etag(row)
    return response


@router.patch(
    "/wa-monitor-drops/{drop_id:uuid}",
    response_model=Envelope[DropModel],
    responses={**_not_found, **_edit_conflict},
)
def patch_drop(
    request: Request,
    caller: Reviewer,
    drop_id: uuid.UUID,
    body: DropPatchModel,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            max_length=100,
            description="The ETag of the GET the edit was made on (or `version` in the body)",
        ),
    ] = None,
) -> JSONResponse:
    """Tick steps, mark steps incorrect with comments, comment; recorded with who and when.

    With the version the edit was made on (`version`, or If-Match with GET's ETag), an
    edit of a drop that changed since is merged when what it changes was not changed
    meanwhile, else refused with 409 and both versions. Without one the edit applies as
    it comes, but an edited comment keeps the monitor's resubmission lines (see
    review_edits.plan_edit).
    """
    given = body.model_dump(exclude_unset=True)
    version = given.pop("version", None)
    header_version = _if_match(if_match)
    if version is not None and header_version is not None and version != header_version:
        raise ApiError(400, f"version {version} and If-Match {if_match} name different versions")
    version = version if version is not None else header_version
    number = given.pop("dropNumber", None)
    if not given and number is None:
        raise ApiError(
            400, "Nothing to change: send steps, comment, incorrect steps, serials or dropNumber"
        )
    changes: dict[str, Any] = {k: v for k, v in given.items() if k in STEP_COLUMNS}
    serials = {q.SERIALS[k]: given.pop(k) for k in list(given) if k in q.SERIALS}
    for key, column in (
        ("comment", "comment"),
        ("completed", "completed"),
        ("incomplete", "incomplete"),
        ("incorrectSteps", "incorrect_steps"),
        ("incorrectComments", "incorrect_comments"),
        ("incorrectReasons", "incorrect_reasons"),
    ):
        if key in given:
            changes[column] = given[key]
    if any(v is None for k, v in changes.items() if k != "comment"):
        raise ApiError(422, "Fields other than comment and the serials cannot be null")
    # An empty serial is none.
    changes.update({column: value or None for column, value in serials.items()})
    config, store = _config(request), _store(request)
    zone = config.zone
    if number is not None:
        number = _corrected_number(config, _drop_or_404(store, drop_id), number)
    try:
        saved = q.update_review(
            store, drop_id, caller.actor, changes, version=version, drop_number=number
        )
        _changed(request)
    except LockedByOther as exc:
        raise _locked_error(store, drop_id, exc) from None
    except EditRejected as exc:
        raise ApiError(422, str(exc)) from None
    except q.NumberTaken as exc:
        raise ApiError(
            409,
            f"{exc.number} is already a drop of this project: open that drop, or correct "
            "this one to another number",
            details=[
                {"field": "body.dropNumber", "dropId": str(drop_id), "value": exc.number},
                {"dropId": str(exc.other), "dropNumber": exc.number},
            ],
        ) from None
    except EditConflict as exc:
        q.attach_photos(_store(request), [exc.current])
        raise _conflict_error(exc, body.model_dump(exclude_unset=True, mode="json"), zone) from None
    if saved is None:
        raise ApiError(404, f"No drop with id {drop_id}")
    message = "Review saved"
    if saved.merged:
        message += f"; merged with what changed since version {version}: " + ", ".join(saved.merged)
    if saved.kept_lines:
        message += f"; the comment keeps {len(saved.kept_lines)} resubmission line(s)"
    response = ok(drop_answer(request, saved.row), message)
    response.headers["ETag"] = etag(saved.row)
    return response


def _corrected_number(config: ProjectsConfig, row: dict[str, Any], value: str) -> str:
    """The corrected number, normalised, if it is one of the drop's project's (else 422)."""
    project = config.by_name(row["project"]) if row["project"] else None
    pattern = project.pattern if project is not None else config.drop_pattern
    try:
        return corrected_number(value, pattern)
    except EditRejected as exc:
        raise ApiError(422, str(exc), details=[{"field": "body.dropNumber"}]) from None


def _conflict_error(exc: EditConflict, sent: dict[str, Any], zone: tzinfo) -> ApiError:
    current = drop_out(exc.current, zone)
    what = " and ".join("the comment" if g == "comment" else "the steps" for g in exc.groups)
    return ApiError(
        409,
        f"{current['dropNumber']} changed since version {exc.version} was read (it is at "
        f"version {current['version']}): {what} changed meanwhile too. Nothing was saved; "
        f"both versions are in error.details. To keep yours, send it again with version "
        f"{current['version']}",
        details={
            "conflicts": exc.groups,
            "yourVersion": exc.version,
            "currentVersion": current["version"],
            "current": current,
            "sent": sent,
        },
        headers={"ETag": f'"{current["version"]}"'},
    )


def _lock_answer(request: Request, drop_id: uuid.UUID, message: str) -> JSONResponse:
    """The lock as both dashboards read it: ours the drop and expiry, the company's
    `{locked, lockedBy, lockedAt}` and `{unlocked}`."""
    zone = _config(request).zone
    row = _drop_or_404(_store(request), drop_id)
    # A live lock of anyone's ("" is nobody's name).
    held = held_by_other(row["locked_by"], row["locked_at"], "", datetime.now(UTC))
    expires = (
        (row["locked_at"] + timedelta(seconds=LOCK_SECONDS)).astimezone(zone).isoformat()
        if row["locked_at"]
        else None
    )
    response = ok(
        {
            "locked": held,
            "unlocked": not held,
            "drop": drop_answer(request, row),
            "lockedBy": row["locked_by"],
            "lockedAt": row["locked_at"].astimezone(zone).isoformat() if row["locked_at"] else None,
            "expiresAt": expires,
        },
        message,
    )
    response.headers["ETag"] = etag(row)
    return response


def _locked_error(store: ReviewStore, drop_id: uuid.UUID, exc: LockedByOther) -> ApiError:
    """409 with the holder and since when inside the error object (`error.lockedBy`)."""
    row = q.get_drop(store, drop_id)
    since = row["locked_at"].isoformat() if row and row["locked_at"] else None
    return ApiError(
        409,
        f"Drop is currently being edited by {exc.holder}",
        extra={"lockedBy": exc.holder, "lockedAt": since},
    )


LockBody = Annotated[LockRequest | None, Body()]


@router.post(
    "/wa-monitor-drops/{drop_id}/lock",
    response_model=Envelope[LockState],
    responses={**_not_found, **_conflict},
)
def lock_drop(
    request: Request, caller: Reviewer, drop_id: uuid.UUID, body: LockBody = None
) -> JSONResponse:
    """Take (or refresh) the 5-minute edit lock, for the acting person of a front end."""
    actor = caller.acting_as(body.userName if body else None).actor
    store = _store(request)
    try:
        found = q.lock(store, drop_id, actor)
    except LockedByOther as exc:
        raise _locked_error(store, drop_id, exc) from None
    if not found:
        raise ApiError(404, f"No drop with id {drop_id}")
    return _lock_answer(request, drop_id, "Drop locked for 5 minutes")


@router.post(
    "/wa-monitor-drops/{drop_id}/unlock",
    response_model=Envelope[LockState],
    responses={**_not_found, **_conflict},
)
def unlock_drop(
    request: Request, caller: Reviewer, drop_id: uuid.UUID, body: LockBody = None
) -> JSONResponse:
    """Release the edit lock (admins may release anyone's)."""
    actor = caller.acting_as(body.userName if body else None).actor
    store = _store(request)
    try:
        found = q.unlock(store, drop_id, actor, force=caller.can("admin"))
    except LockedByOther as exc:
        raise _locked_error(store, drop_id, exc) from None
    if not found:
        raise ApiError(404, f"No drop with id {drop_id}")
    return _lock_answer(request, drop_id, "Drop unlocked")


@router.get(
    "/wa-monitor-drops/{drop_id}/feedback",
    response_model=Envelope[FeedbackDraft],
    responses=_not_found,
)
def feedback_draft(request: Request, _caller: Viewer, drop_id: uuid.UUID) -> JSONResponse:
    """The feedback message generated from the saved review (edit it before sending)."""
    row = _drop_or_404(_store(request), drop_id)
    draft = fb.draft_for(row, _config(request))
    return ok(
        {
            "dropId": str(drop_id),
            "dropNumber": row["drop_number"],
            "project": row["project"],
            "recipient": draft.recipient,
            "message": draft.message,
        }
    )


@router.post(
    "/wa-monitor-send-feedback",
    response_model=Envelope[FeedbackSent],
    status_code=200,
    responses={
        202: {
            "model": Envelope[FeedbackSent],
            "description": "Queued (the bridge will be retried), or delivery unconfirmed "
            "(status `unconfirmed`: check the group, then send again or mark as sent)",
        },
        400: {"model": ErrorEnvelope, "description": "Drop number or project mismatch"},
        409: {
            "model": ErrorEnvelope,
            "description": "Request key reused for another feedback, or the same message was "
            "sent or queued moments ago (details: that outbox entry; send `resend: true`)",
        },
        502: {"model": ErrorEnvelope, "description": "The bridge refused the message"},
        **_not_found,
    },
)
async def send_feedback(
    request: Request,
    caller: Reviewer,
    body: SendFeedback,
    idempotency_key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", min_length=8, max_length=100, pattern=IDEMPOTENCY_KEY),
    ] = None,
) -> JSONResponse:
    """Post the feedback to the project's group through the bridge (outbox, retried).

    The bridge is awaited without holding a handler thread: a slow bridge delays this
    answer, never anyone else's.
    """
    config = _config(request)
    asked = fb.FeedbackRequest(
        review_id=body.dropId,
        drop_number=body.dropNumber,
        message=body.message,
        requested_by=caller.actor,
        project=body.project,
        idempotency_key=idempotency_key,
        request_key=body.requestKey,
        resend=body.resend,
    )
    try:
        done = await fb.request_feedback(_store(request), _sender(request), config, asked)
    except fb.NoSuchReview as exc:
        raise ApiError(404, str(exc)) from None
    except fb.FeedbackRefused as exc:
        raise ApiError(400, str(exc)) from None
    except fb.KeyReused:
        raise ApiError(409, "This request key was already used for a different feedback") from None
    except fb.DuplicateFeedback as exc:
        raise ApiError(
            409,
            _duplicate_message(exc.entry, config.zone),
            details=_sent_data(exc.entry, exc.group, config.zone),
        ) from None
    _changed(request)
    entry = done.entry
    data = _sent_data(entry, done.group, config.zone)
    if entry.status == fb.SENT:
        where = done.group or "the project's WhatsApp group"
        return ok(data, f"Feedback sent to {where}")
    if entry.status == fb.FAILED:
        raise ApiError(
            502,
            f"The {_GATEWAY_NAMES.get(entry.gateway or '', 'bridge')} refused the feedback: "
            f"{entry.last_error}",
            details=data,
        )
    if entry.status == fb.UNCONFIRMED:
        return ok(data, _UNCONFIRMED_MESSAGE.format(reason=entry.last_error), status=202)
    return ok(
        data,
        f"The {_GATEWAY_NAMES.get(entry.gateway or '', 'bridge')} did not take the feedback "
        f"({entry.last_error or 'busy'}); it is queued and will be retried",
        status=202,
    )


# How the answers name the gateway a feedback went through.
_GATEWAY_NAMES = {WAHA: "WAHA gateway", EVOLUTION: "Evolution API gateway"}


_UNCONFIRMED_MESSAGE = (
    "Delivery unconfirmed: {reason}. The message may be in the group: check the group, "
    "then send it again or mark it as sent"
)


def _sent_data(entry: fb.OutboxEntry, group: str | None, zone: tzinfo) -> dict[str, Any]:
    """The contract's `{dropNumber, project, group, recipient, sentAt}` and the outbox state."""
    return {
        "dropNumber": entry.drop_number,
        "project": entry.project,
        "group": group,
        "recipient": entry.recipient,
        "sentAt": entry.sent_at.astimezone(zone).isoformat() if entry.sent_at else None,
        "status": entry.status,
        "outboxId": entry.id,
        "attempts": entry.attempts,
        "lastError": entry.last_error,
        "gateway": entry.gateway,
        "messageId": entry.gateway_message_id,
    }


def _duplicate_message(entry: fb.OutboxEntry, zone: tzinfo) -> str:
    when = local_text(entry.sent_at or entry.created_at, zone)
    done = {
        fb.SENT: f"was sent to the group at {when}",
        fb.UNCONFIRMED: f"was sent at {when} without confirmation (check the group)",
    }.get(entry.status, f"is queued since {when}")
    return (
        f"The same feedback for {entry.drop_number} {done} by {entry.requested_by or '?'} "
        f"(outbox #{entry.id}); send it with resend: true to post it again"
    )


@router.get("/wa-monitor-feedback-outbox", response_model=Envelope[list[FeedbackState]])
def outbox(
    request: Request,
    _caller: Viewer,
    dropId: Annotated[uuid.UUID, Query()],
) -> JSONResponse:
    """A drop's feedback attempts, newest first."""
    zone = _config(request).zone
    entries = fb.entries_for(_store(request), dropId)
    return ok(
        [
            FeedbackState.model_validate(feedback_state(e.__dict__, zone)).model_dump(mode="json")
            for e in entries
        ]
    )


OutboxId = Annotated[int, Path(ge=1, le=2**63 - 1)]


async def _outbox_action(
    request: Request,
    caller: Caller,
    decision: fb.Decision,
    entry_id: int,
    missing: str,
    message: str,
) -> JSONResponse:
    store, sender = _store(request), _sender(request)
    entry = await fb.decide(store, sender, decision, entry_id, caller.actor)
    if entry is None:
        raise ApiError(404, missing)
    _changed(request)
    state = feedback_state(entry.__dict__, _config(request).zone)
    return ok(FeedbackState.model_validate(state).model_dump(mode="json"), message)


@router.post(
    "/wa-monitor-feedback-outbox/{entry_id}/retry",
    response_model=Envelope[FeedbackState],
    responses=_not_found,
)
async def retry_feedback(request: Request, caller: Reviewer, entry_id: OutboxId) -> JSONResponse:
    """Queue a failed feedback again."""
    return await _outbox_action(
        request,
        caller,
        fb.Decision.RETRY,
        entry_id,
        f"No failed feedback #{entry_id}",
        "Feedback queued",
    )


@router.post(
    "/wa-monitor-feedback-outbox/{entry_id}/send-again",
    response_model=Envelope[FeedbackState],
    responses=_not_found,
)
async def send_feedback_again(
    request: Request, caller: Reviewer, entry_id: OutboxId
) -> JSONResponse:
    """Send an unconfirmed feedback again, at the caller's word (recorded): the group may
    get it twice if the first attempt did arrive."""
    return await _outbox_action(
        request,
        caller,
        fb.Decision.SEND_AGAIN,
        entry_id,
        f"No unconfirmed feedback #{entry_id}",
        "Feedback sent again",
    )


@router.post(
    "/wa-monitor-feedback-outbox/{entry_id}/mark-sent",
    response_model=Envelope[FeedbackState],
    responses=_not_found,
)
async def mark_feedback_sent(
    request: Request, caller: Reviewer, entry_id: OutboxId
) -> JSONResponse:
    """Record that an unconfirmed (or failed) feedback is in the group (recorded, by whom)."""
    return await _outbox_action(
        request,
        caller,
        fb.Decision.MARK_SENT,
        entry_id,
        f"No unconfirmed or failed feedback #{entry_id}",
        "Feedback marked as sent",
    )
