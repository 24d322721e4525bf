"""The JSON API: the company dashboard's contract (FIELD_NOTES section 2) and a few more routes."""

from __future__ import annotations

import csv
import io
import math
import re
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.review_edits import LOCK_SECONDS, EditConflict, EditRejected, LockedByOther
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback import outbox as fb
from wa_monitor.store import users as user_store
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web import queries as q
from wa_monitor.web.auth import Admin, Caller, Reviewer, Viewer
from wa_monitor.web.changes import AnswerCache
from wa_monitor.web.envelope import (
    ApiError,
    Envelope,
    ErrorEnvelope,
    encode,
    ok,
    ok_encoded,
    utf8,
)
from wa_monitor.web.models import (
    USERNAME_PATTERN,
    DailyDrops,
    Day,
    DropDetail,
    DropPatchModel,
    DropsEnvelope,
    FeedbackDraft,
    FeedbackSent,
    FeedbackState,
    LockState,
    Me,
    NewUser,
    ProjectsSummary,
    ProjectStats,
    SendFeedback,
    UserOut,
    UserPatch,
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


@router.get("/wa-monitor-daily-drops", response_model=Envelope[DailyDrops])
def daily_drops(
    request: Request,
    _caller: Viewer,
    day: Annotated[
        Day | None, Query(alias="date", description="YYYY-MM-DD; default: today locally")
    ] = None,
) -> JSONResponse:
    """Distinct drops per project whose WhatsApp message fell on the day (business zone)."""
    config, store, answers = _config(request), _store(request), _answers(request)
    day = day or q.today(config.zone)
    counts = answers.get(
        ("daily-drops", day, config.timezone), lambda: q.daily_counts(store, day, config.zone)
    )
    drops = [{"date": day.isoformat(), "project": p, "count": n} for p, n in counts]
    return ok(
        {
            "drops": drops,
            "total": sum(n for _, n in counts),
            "date": day.isoformat(),
            "timezone": config.timezone,
        }
    )


async def drop_filter(
    id: Annotated[uuid.UUID | None, Query(description="One drop by its id")] = None,
    status: Annotated[Literal["complete", "incomplete"] | None, Query()] = None,
    project: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
    resubmitted: Annotated[bool | None, Query()] = None,
    dateFrom: Annotated[Day | None, Query(description="First local day (inclusive)")] = None,
    dateTo: Annotated[Day | None, Query(description="Last local day (inclusive)")] = None,
    search: Annotated[
        str | None, Query(max_length=50, pattern=NO_NUL, description="Part of a drop number")
    ] = None,
    feedback: Annotated[Literal["sent", "unsent"] | None, Query()] = None,
) -> q.DropFilter:
    if dateFrom and dateTo and dateFrom > dateTo:
        raise ApiError(422, "dateFrom is after dateTo", details=[{"field": "query.dateFrom"}])
    return q.DropFilter(
        id=id,
        status=status,
        project=project or None,
        resubmitted=resubmitted,
        date_from=dateFrom,
        date_to=dateTo,
        search=(search or "").strip() or None,
        feedback=feedback,
    )


Filters = Annotated[q.DropFilter, Depends(drop_filter)]


@router.get("/wa-monitor-drops", response_model=DropsEnvelope, responses=_not_found)
def list_drops(
    request: Request,
    _caller: Viewer,
    f: Filters,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    pageSize: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Drops, resubmitted first then newest WhatsApp message, with the summary cards."""
    store, zone = _store(request), _config(request).zone
    cache = _summaries(request)
    summary = cache.get(store, f, zone) if cache is not None else q.summary(store, f, zone)
    total = int(summary["total"])
    if f.id is not None and total == 0:
        raise ApiError(404, f"No drop with id {f.id}")
    pagination = {
        "page": page,
        "pageSize": pageSize,
        "total": total,
        "pages": max(1, math.ceil(total / pageSize)),
    }

    def read_page() -> str:
        rows = q.page_of_drops(store, f, zone, limit=pageSize, offset=(page - 1) * pageSize)
        return encode([drop_out(r, zone) for r in rows])

    data = _answers(request).get(("drops", f, str(zone), page, pageSize), read_page)
    return ok_encoded(
        data,
        summary=summary,
        meta={"timestamp": datetime.now(UTC).isoformat(), "pagination": pagination},
    )


_CSV_COLUMNS = (
    "dropNumber",
    "project",
    "status",
    "completedPhotos",
    "resubmitted",
    "userName",
    "senderPhone",
    "receivedLocal",
    "feedbackSentLocal",
    "incorrectSteps",
    "comment",
    *STEP_COLUMNS,
    "id",
)


@router.get(
    "/wa-monitor-drops.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "The filtered drops as CSV"}},
)
def export_drops(request: Request, _caller: Viewer, f: Filters) -> Response:
    """The filtered drops as CSV, in list order (every page)."""
    zone = _config(request).zone
    rows, _ = q.list_drops(_store(request), f, zone, limit=100_000)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_CSV_COLUMNS)
    for row in rows:
        d = drop_out(row, zone)
        d["incorrectSteps"] = " ".join(d["incorrectSteps"])
        writer.writerow([_csv_cell(d[c]) for c in _CSV_COLUMNS])
    stamp = q.today(zone).isoformat()
    return Response(
        utf8(buffer.getvalue()),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="wa-monitor-drops-{stamp}.csv"'},
    )


# What makes a spreadsheet read a cell as a formula: = + - @ first (their full-width
# forms too, which some locales accept), also after leading blanks or a tab, CR or LF.
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")


def _csv_cell(value: Any) -> Any:
    """A cell that no spreadsheet runs: formula-like text is prefixed with `'`."""
    if value is None:
        return ""
    if isinstance(value, str) and value:
        stripped = value.lstrip(" \t\r\n\u00a0\u3000")
        if value[0] in "\t\r\n" or stripped[:1] in _FORMULA_START:
            return "'" + value
    return value


@router.get(
    "/wa-monitor-drops/{drop_id}", response_model=Envelope[DropDetail], responses=_not_found
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
    response = ok({"drop": drop_out(row, zone), "edits": edits, "feedback": entries})
    response.headers["ETag"] = etag(row)
    return response


@router.patch(
    "/wa-monitor-drops/{drop_id}",
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
    if not given:
        raise ApiError(400, "Nothing to change: send steps, comment or incorrect steps")
    changes: dict[str, Any] = {k: v for k, v in given.items() if k in STEP_COLUMNS}
    for key, column in (
        ("comment", "comment"),
        ("completed", "completed"),
        ("incomplete", "incomplete"),
        ("incorrectSteps", "incorrect_steps"),
        ("incorrectComments", "incorrect_comments"),
    ):
        if key in given:
            changes[column] = given[key]
    if any(v is None for k, v in changes.items() if k != "comment"):
        raise ApiError(422, "Fields other than comment cannot be null")
    zone = _config(request).zone
    try:
        saved = q.update_review(
            _store(request), drop_id, caller.user.username, changes, version=version
        )
        _changed(request)
    except LockedByOther as exc:
        raise ApiError(409, f"Drop is currently being edited by {exc.holder}") from None
    except EditRejected as exc:
        raise ApiError(422, str(exc)) from None
    except EditConflict as exc:
        raise _conflict_error(exc, body.model_dump(exclude_unset=True, mode="json"), zone) from None
    if saved is None:
        raise ApiError(404, f"No drop with id {drop_id}")
    message = "Review saved"
    if saved.merged:
        message += f"; merged with what changed since version {version}: " + ", ".join(saved.merged)
    if saved.kept_lines:
        message += f"; the comment keeps {len(saved.kept_lines)} resubmission line(s)"
    response = ok(drop_out(saved.row, zone), message)
    response.headers["ETag"] = etag(saved.row)
    return response


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
    zone = _config(request).zone
    row = _drop_or_404(_store(request), drop_id)
    expires = (
        (row["locked_at"] + timedelta(seconds=LOCK_SECONDS)).astimezone(zone).isoformat()
        if row["locked_at"]
        else None
    )
    response = ok(
        {"drop": drop_out(row, zone), "lockedBy": row["locked_by"], "expiresAt": expires}, message
    )
    response.headers["ETag"] = etag(row)
    return response


@router.post(
    "/wa-monitor-drops/{drop_id}/lock",
    response_model=Envelope[LockState],
    responses={**_not_found, **_conflict},
)
def lock_drop(request: Request, caller: Reviewer, drop_id: uuid.UUID) -> JSONResponse:
    """Take (or refresh) the 5-minute edit lock."""
    try:
        found = q.lock(_store(request), drop_id, caller.user.username)
    except LockedByOther as exc:
        raise ApiError(409, f"Drop is currently being edited by {exc.holder}") from None
    if not found:
        raise ApiError(404, f"No drop with id {drop_id}")
    return _lock_answer(request, drop_id, "Drop locked for 5 minutes")


@router.post(
    "/wa-monitor-drops/{drop_id}/unlock",
    response_model=Envelope[LockState],
    responses={**_not_found, **_conflict},
)
def unlock_drop(request: Request, caller: Reviewer, drop_id: uuid.UUID) -> JSONResponse:
    """Release the edit lock (admins may release anyone's)."""
    try:
        found = q.unlock(
            _store(request), drop_id, caller.user.username, force=caller.user.can("admin")
        )
    except LockedByOther as exc:
        raise ApiError(409, f"Drop is currently being edited by {exc.holder}") from None
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
        requested_by=caller.user.username,
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
        return ok(data, "Feedback sent to the project's WhatsApp group")
    if entry.status == fb.FAILED:
        raise ApiError(
            502,
            f"The bridge refused the feedback: {entry.last_error}",
            details=data,
        )
    if entry.status == fb.UNCONFIRMED:
        return ok(data, _UNCONFIRMED_MESSAGE.format(reason=entry.last_error), status=202)
    return ok(
        data,
        f"The bridge did not take the feedback ({entry.last_error or 'busy'}); "
        "it is queued and will be retried",
        status=202,
    )


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
    entry = await fb.decide(store, sender, decision, entry_id, caller.user.username)
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


@router.get("/wa-monitor-project-stats", response_model=Envelope[ProjectStats])
def project_stats(
    request: Request,
    _caller: Viewer,
    project: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
) -> JSONResponse:
    """today / week / month / all time for one project (or all)."""
    config = _config(request)
    return ok(q.project_stats(_store(request), project or None, config.zone))


@router.get("/wa-monitor-projects-summary", response_model=Envelope[ProjectsSummary])
def projects_summary(
    request: Request,
    _caller: Viewer,
    startDate: Annotated[Day | None, Query(description="default: 30 days ago")] = None,
    endDate: Annotated[Day | None, Query(description="default: today")] = None,
) -> JSONResponse:
    """Totals, per project and agent, resubmission and first-time pass rates, failures."""
    config = _config(request)
    end = endDate or q.today(config.zone)
    start = startDate or end - timedelta(days=29)
    if start > end:
        raise ApiError(422, "startDate is after endDate", details=[{"field": "query.startDate"}])
    if (end - start).days > 3660:
        raise ApiError(422, "The range may span at most 10 years")
    return ok(q.projects_summary(_store(request), start, end, config.zone, config.step_labels))


# -- users (admin) ----------------------------------------------------------------------


def _user_out(u: user_store.User) -> dict[str, Any]:
    return UserOut(
        id=u.id,
        username=u.username,
        role=u.role,
        disabled=u.disabled,
        createdAt=u.created_at,
        lastLoginAt=u.last_login_at,
    ).model_dump(mode="json")


@router.get("/wa-monitor-users", response_model=Envelope[list[UserOut]])
def list_users(request: Request, _caller: Admin) -> JSONResponse:
    """Every dashboard user."""
    return ok([_user_out(u) for u in user_store.list_users(_store(request))])


@router.post(
    "/wa-monitor-users",
    response_model=Envelope[UserOut],
    status_code=201,
    responses={409: {"model": ErrorEnvelope}},
)
def add_user(request: Request, _caller: Admin, body: NewUser) -> JSONResponse:
    """Create a user."""
    try:
        user = user_store.add_user(_store(request), body.username, body.password, body.role)
    except user_store.UserError as exc:
        status = 409 if "already exists" in str(exc) else 422
        raise ApiError(status, str(exc)) from None
    return ok(_user_out(user), "User created", status=201)


@router.patch(
    "/wa-monitor-users/{username}", response_model=Envelope[UserOut], responses=_not_found
)
def patch_user(
    request: Request,
    caller: Admin,
    username: Annotated[str, Path(pattern=USERNAME_PATTERN)],
    body: UserPatch,
) -> JSONResponse:
    """Change a user's role, or disable / enable them."""
    store = _store(request)
    if body.role is None and body.disabled is None:
        raise ApiError(400, "Nothing to change: send role or disabled")
    if username == caller.user.username and (body.disabled or body.role not in (None, "admin")):
        raise ApiError(422, "Admins cannot demote or disable themselves")
    try:
        user = None
        if body.role is not None:
            user = user_store.set_role(store, username, body.role)
        if body.disabled is not None:
            user = user_store.set_disabled(store, username, body.disabled)
    except user_store.UserError as exc:
        raise ApiError(404, str(exc)) from None
    assert user is not None
    return ok(_user_out(user), "User updated")
