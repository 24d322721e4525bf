"""The projects page's API: list, add and disable projects (admins), audited as the user.

Include with `app.include_router(wa_monitor.web.projects.router)`. It edits the
projects file the dashboard was started with (`app.state.config.path`), so the
dashboard must run where that file is writable; the monitor picks changes up at
its next scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi import Path as PathParameter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from wa_monitor.core.config import PROJECT_FIELDS, ProjectField, ProjectsConfig
from wa_monitor.core.errors import BridgeStoreError, ConfigError
from wa_monitor.monitor.projects_edit import (
    EditResult,
    add_project,
    audit_rows,
    resolve_group,
    set_enabled,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.auth import Admin
from wa_monitor.web.envelope import ApiError, ok

router = APIRouter(prefix="/api", tags=["projects"])
ProjectName = Annotated[str, PathParameter(max_length=100)]
# The fields create_project reads itself (the group may be named instead of its JID).
_ASKED = {"name", "group_jid", "description"}


def _body_field(spec: ProjectField) -> tuple[Any, Any]:
    """The type and constraints of one field of the add form's body."""
    if spec.kind == "flag":
        return bool, Field(default=spec.default)
    if spec.added == "required" and spec.kind != "jid":  # a JID may come as a group's name
        return str, Field(min_length=1, max_length=spec.max_length)
    return str | None, Field(default=None, max_length=spec.max_length)


class _GroupLookup(BaseModel):
    # Instead of groupJid: the group's name in the bridge store, looked up on adding.
    groupName: str | None = Field(default=None, max_length=200)


ADDED_FIELDS = tuple(f for f in PROJECT_FIELDS if f.added)
# The add form's body: the fields of the projects file that adding asks for, camelCase.
# Its attributes come from the table, which mypy cannot read: to it, the body is Any.
if TYPE_CHECKING:
    NewProject = Any
else:
    NewProject = create_model(
        "NewProject", __base__=_GroupLookup, **{f.api_name: _body_field(f) for f in ADDED_FIELDS}
    )


def form_fields() -> list[dict[str, Any]]:
    """The fields of the projects page's form and list (texts, then flags), for its script."""
    ordered = sorted(ADDED_FIELDS, key=lambda f: f.kind == "flag")
    return [
        {
            "name": f.api_name,
            "label": f.label,
            "column": f.column or f.label,
            "help": f.help,
            "kind": f.kind,
            "required": f.added == "required",
            "maxLength": f.max_length,
            "default": f.default,
            "off": f.negative.capitalize() or f"Not {f.label.lower()}",
        }
        for f in ordered
    ]


def _path(request: Request) -> Path:
    config: ProjectsConfig = request.app.state.config
    return config.path


def _store(request: Request) -> ReviewStore:
    store: ReviewStore = request.app.state.store
    return store


def _project_list(config: ProjectsConfig) -> list[dict[str, Any]]:
    return [
        {f.api_name: getattr(p, f.attribute or f.key) for f in ADDED_FIELDS}
        for p in config.projects
    ]


def _done(request: Request, result: EditResult, message: str) -> JSONResponse:
    request.app.state.config = result.config  # the dashboard sees the change at once
    return ok(
        {"projects": _project_list(result.config), "audited": result.audited, "diff": result.diff},
        message,
    )


@router.get("/wa-monitor-projects")
def list_projects(request: Request, _caller: Admin) -> JSONResponse:
    """The projects file's projects, and its recent audited changes."""
    from wa_monitor.core.config import load_config

    message = None
    try:
        config = load_config(_path(request))
    except ConfigError as exc:
        # Show what the dashboard runs with, and say why the file could not be read.
        config = request.app.state.config
        message = f"The projects file cannot be read ({exc}); showing the loaded projects"
    history = [
        {"at": r["at"].isoformat(), "actor": r["actor"], "source": r["source"], "diff": r["diff"]}
        for r in audit_rows(_store(request), config.path, limit=20)
    ]
    return ok({"projects": _project_list(config), "history": history}, message)


@router.post("/wa-monitor-projects")
def create_project(
    request: Request,
    caller: Admin,
    body: Annotated[NewProject, Body()],
) -> JSONResponse:
    """Add a project by group JID, or by the group's name in the bridge store."""
    if bool(body.groupJid) == bool(body.groupName):
        raise ApiError(422, "Give exactly one of groupJid and groupName")
    jid = body.groupJid
    description = body.description
    if body.groupName:
        settings = request.app.state.settings
        if settings.whatsapp_db_path is None:
            raise ApiError(422, "The dashboard has no WHATSAPP_DB_PATH: give groupJid")
        from wa_monitor.sources.bridge import BridgeStore

        bridge = BridgeStore(settings.whatsapp_db_path, settings.whatsapp_store_path)
        try:
            group = resolve_group(bridge, body.groupName)
        except ConfigError as exc:
            raise ApiError(422, str(exc)) from None
        except BridgeStoreError as exc:
            raise ApiError(422, f"Cannot look the group up: {exc}; give groupJid") from None
        finally:
            bridge.close()
        jid = group.jid
        description = description or group.name
    assert jid is not None
    try:
        result = add_project(
            _path(request),
            name=body.name,
            group_jid=jid,
            description=description or body.name,
            **{f.key: getattr(body, f.api_name) for f in ADDED_FIELDS if f.key not in _ASKED},
            actor=f"dashboard:{caller.user.username}",
            source="dashboard",
            store=_store(request),
        )
    except ConfigError as exc:
        raise ApiError(422, str(exc)) from None
    return _done(request, result, f"Project {body.name} added; monitored from the next scan")


@router.post("/wa-monitor-projects/{name}/disable")
def disable(request: Request, caller: Admin, name: ProjectName) -> JSONResponse:
    return _toggle(request, caller.user.username, name, False)


@router.post("/wa-monitor-projects/{name}/enable")
def enable(request: Request, caller: Admin, name: ProjectName) -> JSONResponse:
    return _toggle(request, caller.user.username, name, True)


def _toggle(request: Request, username: str, name: str, enabled: bool) -> JSONResponse:
    try:
        result = set_enabled(
            _path(request),
            name,
            enabled,
            actor=f"dashboard:{username}",
            source="dashboard",
            store=_store(request),
        )
    except ConfigError as exc:
        status = 404 if "no project named" in str(exc) else 422
        raise ApiError(status, str(exc)) from None
    return _done(request, result, f"Project {name} {'enabled' if enabled else 'disabled'}")
