"""The API's request and response shapes (camelCase, as the dashboard's contract has them)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from wa_monitor.core.review_edits import MAX_REASONS, clean_reasons, split_comment
from wa_monitor.core.steps import MAX_REASON_LENGTH, STEP_COLUMNS
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


class SerialConflict(BaseModel):
    field: Literal["ontSerialScanned", "upsSerialScanned"]
    dropId: uuid.UUID
    dropNumber: str


ReviewState = Literal["new", "in_review", "needs_correction", "resubmitted", "approved", "invalid"]
REVIEW_STATES: tuple[str, ...] = (
    "new",
    "in_review",
    "needs_correction",
    "resubmitted",
    "approved",
    "invalid",
)


class _DropBase(BaseModel):
    id: uuid.UUID
    dropNumber: str
    status: Literal["complete", "incomplete"]
    reviewDate: date
    userName: str
    completedPhotos: int
    outstandingPhotos: int
    comment: str | None = Field(
        description="The reviewer's comment with the monitor's resubmission lines, as stored"
    )
    reviewerComment: str | None = Field(
        description="The comment without the monitor's lines: what the reviewer wrote"
    )
    monitorNotes: list[str] = Field(
        description="The monitor's lines in the comment (one per resubmission), oldest first"
    )
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
    photoCount: int = Field(description="Media linked to the drop (photos, videos, documents)")
    photosByStep: dict[StepName, int] = Field(description="The photo id assigned to each step")
    ontSerialScanned: str | None = Field(description="The ONT serial read from the photos")
    upsSerialScanned: str | None = Field(description="The UPS serial read from the photos")
    serialConflicts: list[SerialConflict] = Field(
        description="The other drops a serial of this drop is recorded on"
    )
    reviewState: ReviewState = Field(
        description="new (never reviewed), in_review (a reviewer holds it), needs_correction "
        "(feedback with missing or incorrect items sent: waiting for the installer), "
        "resubmitted (re-posted after feedback), approved (all 12 correct), invalid (the "
        "number is not on the project's list)"
    )
    assignedAgent: str | None = Field(description="The reviewer who holds the drop")
    assignedAt: datetime | None
    waitingSince: datetime | None = Field(
        description="What the queue waits on: the resubmission after feedback, the "
        "feedback while the installer corrects, else the first post"
    )
    waitingWorkingHours: float | None = Field(
        default=None,
        description="Working hours waited since waitingSince (the project's working "
        "hours), for a drop waiting for a reviewer",
    )
    overdue: bool = Field(
        default=False, description="Waiting for a reviewer longer than the project's target"
    )
    invalid: bool = Field(description="The number is not on the project's list")
    incorrectReasons: dict[StepName, list[str]] = Field(
        description="The reasons picked per rejected step"
    )
    postDeleted: bool = Field(
        default=False,
        description="Every WhatsApp post of the drop was deleted ('delete for everyone'); "
        "a later post of it clears this",
    )
    postDeletedAt: datetime | None = Field(
        default=None, description="When the last of its posts was deleted in WhatsApp"
    )
    # The company dashboard's fields that WA Monitor has no source for: always empty.
    outstandingPhotosLoadedTo1map: bool = False
    ontConsumptionId: str | None = None
    upsConsumptionId: str | None = None
    scanGpsLat: float | None = None
    scanGpsLng: float | None = None
    onemapOntBarcode: str | None = None
    onemapOntActivationCode: str | None = None
    onemapUpsSerial: str | None = None
    onemapInstallerName: str | None = None
    onemapInstallationDate: str | None = None


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
    own_comment, notes = split_comment(row["comment"])
    data = {
        "id": row["id"],
        "dropNumber": row["drop_number"],
        "status": "complete" if row["completed"] else "incomplete",
        "reviewDate": row["review_date"],
        "userName": row["user_name"],
        "completedPhotos": done,
        "outstandingPhotos": len(STEP_COLUMNS) - done,
        "comment": row["comment"],
        "reviewerComment": own_comment,
        "monitorNotes": list(notes),
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
        **photo_fields(row),
        "reviewState": row["review_state"],
        "assignedAgent": row["assigned_agent"],
        "assignedAt": _local(row["assigned_at"], zone),
        "waitingSince": _local(row["waiting_since"], zone),
        "invalid": bool(row["invalid"]),
        "incorrectReasons": {k: list(v) for k, v in (row["incorrect_reasons"] or {}).items()},
        "postDeleted": row.get("post_deleted_at") is not None,
        "postDeletedAt": _local(row.get("post_deleted_at"), zone),
        **(row.get("_queue") or {}),
    }
    return Drop.model_validate(data).model_dump(mode="json")  # type: ignore[no-any-return]


def photo_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The drop's photo figures (queries attach them as `_photos`; none attached: none)."""
    photos = row.get("_photos") or {}
    return {
        "photoCount": int(photos.get("count", 0)),
        "photosByStep": dict(photos.get("by_step", {})),
        "ontSerialScanned": row.get("ont_serial_scanned"),
        "upsSerialScanned": row.get("ups_serial_scanned"),
        "serialConflicts": list(photos.get("conflicts", [])),
    }


MEDIA_STATUSES = ("pending", "available", "failed", "unavailable")


class Barcode(BaseModel):
    format: str
    text: str


HintState = Literal["confirmed", "dismissed"]


class Hint(BaseModel):
    kind: str = Field(description="blurred, dark, old")
    message: str
    value: float | None = Field(default=None, description="The measure behind the hint")
    state: HintState | None = Field(
        default=None, description="A reviewer confirmed or dismissed it (null: not yet)"
    )
    by: str | None = Field(default=None, description="Who confirmed or dismissed it")
    at: datetime | None = Field(default=None, description="When it was confirmed or dismissed")


class DuplicateOf(BaseModel):
    photoId: int
    dropId: uuid.UUID | None
    dropNumber: str | None
    postedAt: datetime


class Photo(BaseModel):
    """A media message linked to a drop, as the gallery shows it."""

    id: int
    dropId: uuid.UUID | None
    dropNumber: str | None
    messageId: str
    round: int | None = Field(description="0 the first submission, 1 resubmission 1, …")
    postedAt: datetime
    sender: str
    caption: str | None
    mediaType: str = Field(description="image, video, document, audio (the bridge's)")
    status: Literal["pending", "available", "failed", "unavailable"]
    step: StepName | None
    thumbUrl: str | None = Field(description="The thumbnail (JPEG), once available")
    url: str | None = Field(description="The file itself, once available")
    width: int | None
    height: int | None
    sha256: str | None
    contentType: str | None = Field(description="As the file's bytes show it, once fetched")
    size: int | None
    filename: str | None
    lastError: str | None = Field(description="Why the file could not be fetched (yet)")
    duplicateOf: DuplicateOf | None = Field(
        description="The earliest similar photo posted for another drop"
    )
    barcodes: list[Barcode]
    hints: list[Hint]


class ThreadMessage(BaseModel):
    messageId: str
    round: int | None
    postedAt: datetime
    sender: str
    senderName: str | None
    text: str


def _entries(value: Any, *keys: str) -> list[dict[str, Any]]:
    """The well-formed entries of a JSON list column (text under `keys`); others left out,
    so one odd entry written by an older worker never fails the whole gallery."""
    if not isinstance(value, list):
        return []
    return [
        v for v in value if isinstance(v, dict) and all(isinstance(v.get(k), str) for k in keys)
    ]


def photo_out(row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A group_messages media row as the API's photo (JSON-ready)."""
    available = row["status"] == "available" and row["sha256"] is not None
    duplicate = None
    if row.get("dup_id") is not None:
        duplicate = {
            "photoId": row["dup_id"],
            "dropId": row["dup_review_id"],
            "dropNumber": row["dup_drop_number"],
            "postedAt": _local(row["dup_posted_at"], zone),
        }
    data = {
        "id": row["id"],
        "dropId": row["review_id"],
        "dropNumber": row["drop_number"],
        "messageId": row["message_id"],
        "round": row["round"],
        "postedAt": _local(row["posted_at"], zone),
        "sender": row["sender"],
        "caption": row["content"] or None,
        "mediaType": row["media_type"],
        "status": row["status"] if row["status"] in MEDIA_STATUSES else "pending",
        "step": row["step"] if row["step"] in STEP_COLUMNS else None,
        "thumbUrl": f"/media/{row['sha256']}/thumb" if available and row["thumb_sha256"] else None,
        "url": f"/media/{row['sha256']}" if available else None,
        "width": row["width"],
        "height": row["height"],
        "sha256": row["sha256"] if available else None,
        "contentType": row["content_type"],
        "size": row["size"],
        "filename": row["filename"],
        "lastError": row["last_error"],
        "duplicateOf": duplicate,
        "barcodes": _entries(row["barcodes"], "format", "text"),
        "hints": [_hint(h, zone) for h in _entries(row["hints"], "kind", "message")],
    }
    return Photo.model_validate(data).model_dump(mode="json")


def _hint(entry: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """A stored hint as the API's; a verdict is shown only whole (state, who and when)."""
    value = entry.get("value")
    hint: dict[str, Any] = {
        "kind": entry["kind"],
        "message": entry["message"],
        "value": value if isinstance(value, int | float) and not isinstance(value, bool) else None,
        "state": None,
        "by": None,
        "at": None,
    }
    state, by, at = entry.get("state"), entry.get("by"), entry.get("at")
    if state in ("confirmed", "dismissed") and isinstance(by, str) and isinstance(at, str):
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            return hint
        if when.tzinfo is not None:
            hint.update(state=state, by=by, at=when.astimezone(zone))
    return hint


def thread_out(row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    return ThreadMessage.model_validate(
        {
            "messageId": row["message_id"],
            "round": row["round"],
            "postedAt": _local(row["posted_at"], zone),
            "sender": row["sender"],
            "senderName": row["sender_name"],
            "text": row["content"] or "",
        }
    ).model_dump(mode="json")


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


def _clean_reasons(value: list[str]) -> list[str]:
    return clean_reasons(value)


# A rejected step's reasons as sent: trimmed and without repeats once valid.
Reasons = Annotated[
    list[Annotated[Text, Field(min_length=1, max_length=MAX_REASON_LENGTH)]],
    Field(max_length=MAX_REASONS),
    AfterValidator(_clean_reasons),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A serial as a sticker prints it: printable, no spaces inside needed, at most the column.
Serial = Annotated[Text, Field(max_length=100, pattern=r"^[\x21-\x7e]*$")]


class HintDecision(_Strict):
    """A reviewer's verdict on one of the photo's quality hints, for every reviewer."""

    kind: str = Field(max_length=50, description="The hint's kind (blurred, dark, old)")
    state: HintState | None = Field(
        description="confirmed (the photo is indeed blurred, dark, old), dismissed (it is "
        "not), or null to take the verdict back"
    )


class PhotoPatch(_Strict):
    """A reviewer's decision on a photo: its step, its drop (null: detached), its round,
    a verdict on one of its quality hints."""

    step: str | None = Field(
        default=None, max_length=100, description="A step column name, or null for none"
    )
    dropId: uuid.UUID | None = Field(
        default=None,
        description="Move the photo to this drop (of the same group); null detaches it",
    )
    round: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        strict=True,  # a JSON integer: not true, "1" or 1.0
        description="0 the first submission, 1 resubmission 1, …",
    )
    hint: HintDecision | None = Field(
        default=None, description="Confirm or dismiss one of the photo's quality hints"
    )


class DropPatch(_Strict):
    dropNumber: Text | None = Field(
        default=None,
        max_length=50,
        description="Corrects a mistyped drop number: normalised, checked against the "
        "project's pattern (422), refused when the project has a drop of that number (409)",
    )
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
    incorrectReasons: Annotated[dict[StepName, Reasons], _at_most(len(STEP_COLUMNS))] | None = (
        Field(
            default=None,
            description="The reasons per rejected step, picked from the step's list (GET "
            "/api/wa-monitor-steps) or free text: 1-80 characters, at most 10 per step, "
            "trimmed, repeats (letter case aside) dropped. Replaces the drop's reasons; a "
            "step with reasons is marked incorrect (422 when incorrectSteps of the same edit "
            "leaves it out), an empty list clears the step's reasons",
        )
    )
    version: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The drop's version the edit was made on (or If-Match): an edit of a "
        "drop changed since is merged when what it changes was not changed meanwhile, "
        "else refused (409) with both versions. Send only the fields you changed",
    )
    ontSerialScanned: Serial | None = Field(
        default=None, description="The ONT serial as the reviewer confirms it (null: none)"
    )
    upsSerialScanned: Serial | None = Field(
        default=None, description="The UPS serial as the reviewer confirms it (null: none)"
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


class StepOut(BaseModel):
    step: StepName
    label: str = Field(description="The label reviewers see (the projects file's `steps:`)")
    reasons: list[str] = Field(description="The standard reasons for rejecting the step")


class NewUser(_Strict):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: Text = Field(min_length=8, max_length=200)
    role: Literal["viewer", "reviewer", "admin"]


class UserPatch(_Strict):
    role: Literal["viewer", "reviewer", "admin"] | None = None
    disabled: bool | None = None


# -- responses --------------------------------------------------------------------------


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


class LockRequest(_Strict):
    userName: str | None = Field(
        default=None,
        max_length=100,
        description="A front-end token's acting person (X-Acting-User wins); others: ignored",
    )


class LockState(BaseModel):
    locked: bool = Field(description="Whether the drop is edit-locked now")
    unlocked: bool = Field(description="Whether the drop is free to edit now")
    drop: Drop  # type: ignore[valid-type]
    lockedBy: str | None
    lockedAt: datetime | None
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
    gateway: str | None = None  # the gateway of the last attempt
    messageId: str | None = None  # WhatsApp's id of the message, when the gateway said it


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
