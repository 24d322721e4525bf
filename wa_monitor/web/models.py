"""The API's request and response shapes (camelCase, as the dashboard's contract has them)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.web.envelope import Envelope, Meta, PagedMeta
from wa_monitor.web.inputs import text_problem

StepName = Literal[
    "step_01_house_photo",
    "step_02_cable_from_pole",
    "step_03_cable_entry_outside",
    "step_04_cable_entry_inside",
    "step_05_wall_for_installation",
    "step_06_ont_back_after_install",
    "step_07_power_meter_reading",
    "step_08_ont_barcode",
    "step_09_ups_serial",
    "step_10_final_installation",
    "step_11_green_lights",
    "step_12_customer_signature",
]
assert tuple(StepName.__args__) == STEP_COLUMNS  # type: ignore[attr-defined]


class FeedbackState(BaseModel):
    id: int
    status: Literal["pending", "sending", "sent", "failed", "unconfirmed"]
    attempts: int
    lastError: str | None
    nextAttemptAt: datetime | None
    createdAt: datetime
    sentAt: datetime | None
    requestedBy: str | None
    recipient: str
    message: str


class _DropBase(BaseModel):
    id: uuid.UUID
    dropNumber: str
    status: Literal["complete", "incomplete"]
    reviewDate: date
    userName: str
    completedPhotos: int
    outstandingPhotos: int
    comment: str | None
    createdAt: datetime
    updatedAt: datetime
    project: str | None
    completed: bool
    incomplete: bool
    feedbackSent: datetime | None
    senderPhone: str | None
    resubmitted: bool
    lockedBy: str | None
    lockedAt: datetime | None
    incorrectSteps: list[StepName]
    incorrectComments: dict[str, str]
    whatsappMessageDate: datetime | None
    lastMessageDate: datetime | None
    feedbackCount: int
    receivedLocal: str | None = Field(description="Latest WhatsApp message, business zone")
    feedbackSentLocal: str | None
    feedback: FeedbackState | None = Field(description="The latest feedback outbox entry")
    version: int = Field(
        description="Counts the review's writes (its ETag); send it with an edit (PATCH)"
    )


# The twelve step columns keep their snake_case names, as in the contract.
Drop = create_model(  # type: ignore[call-overload]
    "Drop", __base__=_DropBase, **{s: (bool, ...) for s in STEP_COLUMNS}
)


def local_text(when: datetime | None, zone: tzinfo) -> str | None:
    """`2025-11-09 19:15 SAST`: a time as reviewers read it."""
    if when is None:
        return None
    local = when.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _local(when: datetime | None, zone: tzinfo) -> datetime | None:
    return when.astimezone(zone) if when is not None else None


def feedback_state(entry: dict[str, Any] | None, zone: tzinfo) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "id": entry["id"],
        "status": entry["status"],
        "attempts": entry["attempts"],
        "lastError": entry["last_error"],
        "nextAttemptAt": _local(entry["next_attempt_at"], zone),
        "createdAt": _local(entry["created_at"], zone),
        "sentAt": _local(entry["sent_at"], zone),
        "requestedBy": entry["requested_by"],
        "recipient": entry["recipient"],
        "message": entry["message"],
    }


def drop_out(row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A review row as the contract's camelCase drop (JSON-ready)."""
    done = sum(1 for s in STEP_COLUMNS if row[s])
    latest = row["last_message_date"] or row["whatsapp_message_date"]
    data = {
        "id": row["id"],
        "dropNumber": row["drop_number"],
        "status": "complete" if row["completed"] else "incomplete",
        "reviewDate": row["review_date"],
        "userName": row["user_name"],
        "completedPhotos": done,
        "outstandingPhotos": len(STEP_COLUMNS) - done,
        "comment": row["comment"],
        "createdAt": _local(row["created_at"], zone),
        "updatedAt": _local(row["updated_at"], zone),
        "project": row["project"],
        "completed": bool(row["completed"]),
        "incomplete": bool(row["incomplete"]),
        "feedbackSent": _local(row["feedback_sent"], zone),
        "senderPhone": row["submitted_by"],
        "resubmitted": bool(row["resubmitted"]),
        "lockedBy": row["locked_by"],
        "lockedAt": _local(row["locked_at"], zone),
        "incorrectSteps": list(row["incorrect_steps"] or []),
        "incorrectComments": dict(row["incorrect_comments"] or {}),
        "whatsappMessageDate": _local(row["whatsapp_message_date"], zone),
        "lastMessageDate": _local(row["last_message_date"], zone),
        "feedbackCount": int(row["feedback_count"] or 0),
        "receivedLocal": local_text(latest, zone),
        "feedbackSentLocal": local_text(row["feedback_sent"], zone),
        "feedback": feedback_state(row.get("_outbox"), zone),
        "version": int(row["version"]),
        **{s: bool(row[s]) for s in STEP_COLUMNS},
    }
    return Drop.model_validate(data).model_dump(mode="json")  # type: ignore[no-any-return]


# -- requests ---------------------------------------------------------------------------


def _valid_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded in any answer:
    # refuse both as invalid input (web/inputs.py refuses them first, for every route).
    reason = text_problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def _at_most(items: int) -> BeforeValidator:
    # Checked before the items are: refusing 100,000 keys must not validate each of them.
    def check(value: Any) -> Any:
        if isinstance(value, dict | list) and len(value) > items:
            raise ValueError(f"must have at most {items} items, not {len(value)}")
        return value

    return BeforeValidator(check)


Text = Annotated[str, AfterValidator(_valid_text)]
USERNAME_PATTERN = r"^[A-Za-z0-9._@\-]{1,100}$"
# Dates the dashboard filters and counts by: WhatsApp has no older messages, and the
# business zone's midnights of every day in range are instants both databases can hold.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)


def _in_range(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"must be a day from {FIRST_DAY} to {LAST_DAY}")
    return day


Day = Annotated[date, AfterValidator(_in_range)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DropPatch(_Strict):
    comment: Text | None = Field(default=None, max_length=5000)
    completed: bool | None = None
    incomplete: bool | None = None
    incorrectSteps: Annotated[list[StepName], _at_most(len(STEP_COLUMNS))] | None = Field(
        default=None, max_length=len(STEP_COLUMNS)
    )
    incorrectComments: (
        Annotated[
            dict[StepName, Annotated[Text, Field(max_length=1000)]], _at_most(len(STEP_COLUMNS))
        ]
        | None
    ) = Field(default=None, description="A comment per incorrect step (at most 12)")
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The drop's version the edit was made on (or If-Match): an edit of a "
        "drop changed since is merged when what it changes was not changed meanwhile, "
        "else refused (409) with both versions. Send only the fields you changed",
    )
    # The twelve step columns are added below (snake_case, as in the contract).


DropPatchModel = create_model(  # type: ignore[call-overload]
    "DropPatch", __base__=DropPatch, **{s: (bool | None, None) for s in STEP_COLUMNS}
)


class SendFeedback(_Strict):
    dropId: uuid.UUID
    dropNumber: Text = Field(min_length=1, max_length=50)
    message: Text = Field(min_length=1, max_length=4000)
    project: Text | None = Field(default=None, max_length=100)
    requestKey: Text | None = Field(
        default=None,
        min_length=8,
        max_length=100,
        description="Idempotency key (or the Idempotency-Key header): a retried request "
        "with the same key never sends twice",
    )
    resend: bool = Field(
        default=False,
        description="Post it even though the same message for this drop was sent or queued "
        "moments ago (otherwise 409 with that outbox entry)",
    )


class NewUser(_Strict):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: Text = Field(min_length=8, max_length=200)
    role: Literal["viewer", "reviewer", "admin"]


class UserPatch(_Strict):
    role: Literal["viewer", "reviewer", "admin"] | None = None
    disabled: bool | None = None


# -- responses --------------------------------------------------------------------------


class DailyDrop(BaseModel):
    date: date
    project: str | None
    count: int


class DailyDrops(BaseModel):
    drops: list[DailyDrop]
    total: int
    date: date
    timezone: str


class Summary(BaseModel):
    total: int
    incomplete: int
    complete: int
    feedbackSent: int
    resubmitted: int
    averageFeedbackCount: float
    totalFeedback: int


class DropsEnvelope(BaseModel):
    success: bool = True
    data: list[Drop]  # type: ignore[valid-type]
    summary: Summary
    meta: PagedMeta


class Edit(BaseModel):
    actor: str
    action: str
    changes: Any
    at: datetime
    atLocal: str | None


class DropDetail(BaseModel):
    drop: Drop  # type: ignore[valid-type]
    edits: list[Edit]
    feedback: list[FeedbackState]


class LockState(BaseModel):
    drop: Drop  # type: ignore[valid-type]
    lockedBy: str | None
    expiresAt: datetime | None


class FeedbackDraft(BaseModel):
    dropId: uuid.UUID
    dropNumber: str
    project: str | None
    recipient: str | None
    message: str


class FeedbackSent(BaseModel):
    dropNumber: str
    project: str | None
    group: str | None
    recipient: str
    sentAt: datetime | None
    status: Literal["pending", "sending", "sent", "failed", "unconfirmed"]
    outboxId: int
    attempts: int
    lastError: str | None


class Period(BaseModel):
    total: int
    complete: int
    incomplete: int
    completionRate: float


class ProjectStats(BaseModel):
    project: str | None
    today: Period
    week: Period
    month: Period
    allTime: Period


class Tally(BaseModel):
    total: int
    complete: int
    incomplete: int
    resubmitted: int
    completionRate: float
    firstTimePassRate: float


class ProjectTally(Tally):
    project: str | None


class AgentTally(Tally):
    agent: str
    phone: str | None


class Failure(BaseModel):
    step: str
    label: str
    count: int
    percentage: float


class FeedbackStats(BaseModel):
    dropsWithFeedback: int
    messagesSent: int
    feedbackRate: float
    averagePerDrop: float
    pending: int
    failed: int
    sent: int


class ProjectsSummary(BaseModel):
    startDate: date
    endDate: date
    totals: Tally
    byProject: list[ProjectTally]
    resubmissionRate: float
    firstTimePassRate: float
    commonFailures: list[Failure]
    feedbackStats: FeedbackStats
    agentPerformance: list[AgentTally]


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    disabled: bool
    createdAt: datetime | None = None
    lastLoginAt: datetime | None = None


class Me(BaseModel):
    username: str
    role: str
    via: Literal["session", "token"]


__all__ = ["Envelope", "Meta"]
