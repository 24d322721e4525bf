"""The photos of a drop: its gallery, its thread of texts, and a reviewer's decisions on a photo."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import PhotoDecisionError, UnknownPhoto
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.monitor.photo_linker import decide_photo
from wa_monitor.store import group_messages as gm
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web import queries as q
from wa_monitor.web.api import _errors, _not_found
from wa_monitor.web.auth import Reviewer, Viewer
from wa_monitor.web.envelope import ApiError, Envelope, ok
from wa_monitor.web.models import Photo, PhotoPatch, ThreadMessage, photo_out, thread_out

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)
PhotoId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The photo's id")]


def _store(request: Request) -> ReviewStore:
    store: ReviewStore = request.app.state.store
    return store


def _config(request: Request) -> ProjectsConfig:
    config: ProjectsConfig = request.app.state.config
    return config


def _no_drop(drop_id: uuid.UUID) -> ApiError:
    return ApiError(404, f"No drop with id {drop_id}")


@router.get(
    "/wa-monitor-drops/{drop_id}/photos",
    response_model=Envelope[list[Photo]],
    responses=_not_found,
)
def drop_photos(request: Request, _caller: Viewer, drop_id: uuid.UUID) -> JSONResponse:
    """The drop's photos, videos and documents: by round, in posting order within it.

    `url` and `thumbUrl` are set once the file was fetched and verified (`status`
    available); `duplicateOf` names the earliest similar photo posted for another drop.
    """
    rows = q.drop_photos(_store(request), drop_id)
    if rows is None:
        raise _no_drop(drop_id)
    zone = _config(request).zone
    return ok([photo_out(r, zone) for r in rows])


@router.get(
    "/wa-monitor-drops/{drop_id}/thread",
    response_model=Envelope[list[ThreadMessage]],
    responses=_not_found,
)
def drop_thread(request: Request, _caller: Viewer, drop_id: uuid.UUID) -> JSONResponse:
    """The installer's texts linked to the drop (context for the review), in posting order."""
    rows = q.drop_thread(_store(request), drop_id)
    if rows is None:
        raise _no_drop(drop_id)
    zone = _config(request).zone
    return ok([thread_out(r, zone) for r in rows])


@router.patch(
    "/wa-monitor-photos/{photo_id}",
    response_model=Envelope[Photo],
    responses=_not_found,
)
def patch_photo(
    request: Request, caller: Reviewer, photo_id: PhotoId, body: PhotoPatch
) -> JSONResponse:
    """Assign the photo to a step (`step`, null for none), move it to another drop of its
    group (`dropId`) or round (`round`), or detach it from every drop (`dropId` null);
    confirm or dismiss one of its quality hints for every reviewer (`hint`, state null
    takes the verdict back).

    Audited (the drop's edit history shows step and link changes) and kept over every
    later re-scan; a hint's verdict is kept until the row names another file.
    """
    given = body.model_fields_set
    if not given:
        raise ApiError(400, "Nothing to change: send step, dropId, round or hint")
    if "hint" in given and body.hint is None:
        raise ApiError(
            422,
            'hint needs a kind and a state: {"kind": "blurred", "state": "dismissed"}',
            details=[{"field": "body.hint"}],
        )
    if body.step is not None and body.step not in STEP_COLUMNS:
        raise ApiError(
            422,
            f"{body.step!r:.60} is not a step; step is one of {', '.join(STEP_COLUMNS)}, or "
            "null for none",
            details=[{"field": "body.step", "allowed": list(STEP_COLUMNS)}],
        )
    store, config = _store(request), _config(request)
    current = q.photo(store, photo_id)
    if current is None:
        raise ApiError(404, f"No photo with id {photo_id}")
    if body.hint is not None:
        if current["chat_jid"] not in config.by_group():
            raise ApiError(404, f"No photo with id {photo_id} in the monitored groups")
        kinds = gm.hint_kinds(current["hints"])
        if body.hint.kind not in kinds:
            raise ApiError(
                422,
                gm.no_hint_message(photo_id, body.hint.kind, kinds),
                details=[{"field": "body.hint.kind", "allowed": kinds}],
            )
    decision: dict[str, Any] = {}
    if "step" in given:
        decision["step"] = body.step
    if "round" in given:
        decision["round"] = body.round
    if "dropId" in given:
        if body.dropId is None:
            if "round" in given:
                raise ApiError(422, "A detached photo has no round: send dropId or round, not both")
            decision["detach"] = True
        else:
            decision["drop_number"] = _drop_of_group(store, config, current, body.dropId)
    actor = caller.actor
    try:
        if decision:
            decide_photo(store, config, photo_id, actor=actor, **decision)
        if body.hint is not None:
            # After the link decision, which checks more: a 422 there leaves the hint be.
            with store.begin() as conn:
                gm.set_hint_state(
                    conn, photo_id, body.hint.kind, body.hint.state, actor, gm.utcnow()
                )
    except UnknownPhoto as exc:
        raise ApiError(404, str(exc)) from None
    except PhotoDecisionError as exc:
        raise ApiError(422, str(exc)) from None
    saved = q.photo(store, photo_id)
    if saved is None:  # removed meanwhile
        raise ApiError(404, f"No photo with id {photo_id}")
    return ok(photo_out(saved, config.zone), "Photo saved")


def _drop_of_group(
    store: ReviewStore, config: ProjectsConfig, photo: dict[str, Any], drop_id: uuid.UUID
) -> str:
    """The drop number of `drop_id`, which must be a drop of the photo's own group."""
    target = q.review_group(store, drop_id)
    if target is None:
        raise ApiError(
            422,
            f"No drop with id {drop_id} to move the photo to",
            details=[{"field": "body.dropId"}],
        )
    group = config.by_group().get(photo["chat_jid"])
    if group is None or target["project"] != group.name:
        where = f"{group.name}'s group" if group is not None else "a group no longer monitored"
        raise ApiError(
            422,
            f"{target['drop_number']} is a drop of {target['project'] or 'no project'}; this "
            f"photo was posted in {where}: a photo can only be moved to a drop of its own group",
            details=[{"field": "body.dropId"}],
        )
    return str(target["drop_number"])
