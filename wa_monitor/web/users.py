"""The dashboard's users (admin): list, add, change role, disable, reset a password.

Every change is audited (who, when, what: never the password) and the users page shows
the recent ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from wa_monitor.store import users as user_store
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.api import _config, _errors, _not_found, _store
from wa_monitor.web.auth import Admin
from wa_monitor.web.envelope import ApiError, Envelope, ErrorEnvelope, ok
from wa_monitor.web.models import (
    USERNAME_PATTERN,
    NewUser,
    Text,
    UserOut,
    UserPatch,
    _Strict,
    local_text,
)

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)
Username = Annotated[str, Path(pattern=USERNAME_PATTERN)]


class NewPassword(_Strict):
    password: Text = Field(min_length=8, max_length=200)


class UserChangeOut(BaseModel):
    at: datetime
    atLocal: str | None
    actor: str = Field(description="The admin who made the change")
    username: str = Field(description="The account changed")
    change: str = Field(description="What changed, in one line")


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


@router.get("/wa-monitor-users-audit", response_model=Envelope[list[UserChangeOut]])
def list_user_changes(request: Request, _caller: Admin) -> JSONResponse:
    """The latest account changes (added, role, disabled, enabled, password reset)."""
    zone = _config(request).zone
    changes = [
        UserChangeOut(
            at=c.at.astimezone(zone),
            atLocal=local_text(c.at, zone),
            actor=c.actor,
            username=c.username,
            change=c.change,
        ).model_dump(mode="json")
        for c in user_store.recent_changes(_store(request))
    ]
    return ok(changes)


@router.post(
    "/wa-monitor-users",
    response_model=Envelope[UserOut],
    status_code=201,
    responses={409: {"model": ErrorEnvelope}},
)
def add_user(request: Request, caller: Admin, body: NewUser) -> JSONResponse:
    """Create a user."""
    store = _store(request)
    try:
        user = user_store.add_user(store, body.username, body.password, body.role)
    except user_store.UserError as exc:
        status = 409 if "already exists" in str(exc) else 422
        raise ApiError(status, str(exc)) from None
    user_store.record_change(store, caller.user.username, user.username, f"added as {user.role}")
    return ok(_user_out(user), "User created", status=201)


@router.patch(
    "/wa-monitor-users/{username}", response_model=Envelope[UserOut], responses=_not_found
)
def patch_user(
    request: Request, caller: Admin, username: Username, body: UserPatch
) -> JSONResponse:
    """Change a user's role, or disable / enable them."""
    store = _store(request)
    if body.role is None and body.disabled is None:
        raise ApiError(400, "Nothing to change: send role or disabled")
    if username == caller.user.username and (body.disabled or body.role not in (None, "admin")):
        raise ApiError(422, "Admins cannot demote or disable themselves")
    before = _existing(store, username)
    user = before
    if body.role is not None:
        user = user_store.set_role(store, username, body.role)
        if user.role != before.role:
            user_store.record_change(
                store, caller.user.username, username, f"role {before.role} → {user.role}"
            )
    if body.disabled is not None:
        user = user_store.set_disabled(store, username, body.disabled)
        if user.disabled != before.disabled:
            user_store.record_change(
                store, caller.user.username, username, "disabled" if user.disabled else "enabled"
            )
    return ok(_user_out(user), "User updated")


@router.post(
    "/wa-monitor-users/{username}/password",
    response_model=Envelope[UserOut],
    responses=_not_found,
)
def reset_password(
    request: Request, caller: Admin, username: Username, body: NewPassword
) -> JSONResponse:
    """Set a user's password and end their sessions (they sign in again with it)."""
    store = _store(request)
    _existing(store, username)
    try:
        user = user_store.set_password(store, username, body.password)
    except user_store.UserError as exc:
        raise ApiError(422, str(exc)) from None
    user_store.record_change(
        store, caller.user.username, username, "password reset (sessions ended)"
    )
    return ok(_user_out(user), f"Password of {username} reset; their sessions ended")


def _existing(store: ReviewStore, username: str) -> user_store.User:
    for u in user_store.list_users(store):
        if u.username == username:
            return u
    raise ApiError(404, f"No user {username!r}")
