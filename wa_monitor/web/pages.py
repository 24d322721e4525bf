"""The HTML pages: sign-in, sign-out and the reviewers' page `/wa-monitor`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from wa_monitor import __version__
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.reviews import RESUBMISSION_MARK
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.web import queries as q
from wa_monitor.web import stats_queries as sq
from wa_monitor.web.auth import Caller, Sessions, identify, same, sign_in
from wa_monitor.web.envelope import ApiError

log = logging.getLogger("wa_monitor.web")
router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
POLL_MS = 5000
# The review states as the filter and the badges name them, in the queue's order.
REVIEW_STATE_TEXT = (
    ("new", "New"),
    ("in_review", "In review"),
    ("resubmitted", "Resubmitted"),
    ("needs_correction", "Needs correction"),
    ("approved", "Approved"),
    ("invalid", "Invalid"),
)
# Characters that mean something to the HTML parser: `<!--<script>` keeps a script
# element open past its `</script>`, `&` starts a character reference, `'` ends a
# single-quoted attribute.
_HTML_JSON_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    ord("'"): "\\u0027",
}


def html_json(value: Any) -> Markup:
    """`value` as JSON that stays inert anywhere in an HTML page, inside `<script>` too.

    Every JSON a template embeds goes through this (the templates' `tojson` filter). The
    characters above occur only inside JSON strings, where their escapes mean the same;
    ASCII output also escapes U+2028 and U+2029 (line ends to older JavaScript parsers)
    and lone surrogates (which UTF-8 cannot encode).
    """
    return Markup(json.dumps(value, ensure_ascii=True).translate(_HTML_JSON_ESCAPES))


templates.env.filters["tojson"] = html_json


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never an open redirect.

    Browsers drop tabs and line breaks from URLs (`/<TAB>/evil.example` is
    `//evil.example`) and read `\\` as `/`, so neither may appear anywhere.
    """
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or any(c.isspace() or not c.isprintable() for c in target)
    ):
        return "/wa-monitor"
    return target


def _caller(request: Request) -> Caller | None:
    try:
        return identify(request)
    except ApiError:
        return None


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/wa-monitor", status_code=303)


def _login_page(
    request: Request, *, error: str | None = None, status: int = 200, next_url: str = ""
) -> HTMLResponse:
    sessions: Sessions = request.app.state.sessions
    token = sessions.login_token(request)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"error": error, "next": _safe_next(next_url), "csrf": token, "version": __version__},
        status_code=status,
    )
    sessions.set_login_cookie(request, response, token)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "") -> Response:
    if _caller(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_page(request, next_url=next)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    sessions: Sessions = request.app.state.sessions
    if not same(csrf, sessions.login_cookie_token(request)):
        return _login_page(
            request,
            error="The sign-in form expired; please try again.",
            status=403,
            next_url=next,
        )
    result = await sign_in(request, username, password)
    if result.retry_after:
        minutes = max(1, round(result.retry_after / 60))
        error = (
            "Too many sign-ins at once. Try again in a few seconds."
            if result.busy
            else f"Too many failed sign-ins. Try again in about {minutes} minute(s)."
        )
        page = _login_page(request, error=error, status=429, next_url=next)
        page.headers["Retry-After"] = str(result.retry_after)
        return page
    if result.user is None:
        return _login_page(request, error="Wrong user name or password.", status=401, next_url=next)
    response = RedirectResponse(_safe_next(next), status_code=303)
    sessions.start(request, response, result.user)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    sessions: Sessions = request.app.state.sessions
    session = sessions.read(request)
    if session is not None and not same(csrf, session.csrf):
        raise ApiError(403, "Missing or wrong CSRF token; reload the page")
    response = RedirectResponse("/login", status_code=303)
    sessions.end(request, response)
    return response


@router.get("/wa-monitor", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    caller = _caller(request)
    if caller is None or caller.via != "session":
        # A link to a drop or a filtered list comes back to it after signing in.
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here)}", status_code=303)
    config: ProjectsConfig = request.app.state.config
    store = request.app.state.store
    day = q.today(config.zone)
    counts = sq.daily_counts(store, day, config.zone)
    cards = q.summary(store, q.DropFilter(), config.zone)
    boot: dict[str, Any] = {
        "csrf": caller.csrf,
        "user": caller.user.username,
        "role": caller.user.role,
        "canEdit": caller.can("reviewer"),
        "steps": [[s, config.step_labels.get(s, s)] for s in STEP_COLUMNS],
        "projects": [p.name for p in config.projects],
        "timezone": config.timezone,
        "zoneAbbr": _zone_abbr(config),
        "pollMs": int(getattr(request.app.state, "poll_ms", POLL_MS)),
        "isAdmin": caller.can("admin"),
        "groups": {p.name: p.description for p in config.projects},
        "states": dict(REVIEW_STATE_TEXT),
        # The monitor's resubmission lines in a comment start with this.
        "resubmissionMark": RESUBMISSION_MARK,
    }
    return templates.TemplateResponse(
        request,
        "dashboard.html",
        {
            "user": caller.user,
            "csrf": caller.csrf,
            "boot": boot,
            "projects": [p.name for p in config.projects],
            "counts": counts,
            "total": sum(n for _, n in counts),
            "day": day,
            "zone_abbr": _zone_abbr(config),
            "cards": cards,
            "states": REVIEW_STATE_TEXT,
            "version": __version__,
        },
    )


def _zone_abbr(config: ProjectsConfig) -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).astimezone(config.zone).tzname() or config.timezone


def _forbidden(request: Request, caller: Caller, message: str) -> Response:
    return templates.TemplateResponse(
        request,
        "forbidden.html",
        {"user": caller.user, "csrf": caller.csrf, "message": message, "version": __version__},
        status_code=403,
    )


def _admin_page(request: Request, path: str, what: str, ask: str) -> Caller | Response:
    """The signed-in admin, or the page that answers anyone else (sign-in, or refused)."""
    caller = _caller(request)
    if caller is None or caller.via != "session":
        return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
    if not caller.can("admin"):
        log.warning(
            "🔒 %s (%s) was refused the %s page", caller.user.username, caller.user.role, what
        )
        return _forbidden(
            request,
            caller,
            f"The {what} page is for admins; {caller.user.username} is a "
            f"{caller.user.role}. Ask an admin to {ask}.",
        )
    return caller


@router.get("/wa-monitor/projects", response_class=HTMLResponse)
def projects_page(request: Request) -> Response:
    """The admins' projects page: list, add, disable and enable projects; recent changes."""
    caller = _admin_page(request, "/wa-monitor/projects", "projects", "add or disable a project")
    if not isinstance(caller, Caller):
        return caller
    from wa_monitor.web.projects import form_fields

    config: ProjectsConfig = request.app.state.config
    boot: dict[str, Any] = {
        "csrf": caller.csrf,
        "user": caller.user.username,
        "timezone": config.timezone,
        "zoneAbbr": _zone_abbr(config),
        "fields": form_fields(),
    }
    return templates.TemplateResponse(
        request,
        "projects.html",
        {
            "user": caller.user,
            "csrf": caller.csrf,
            "boot": boot,
            "fields": boot["fields"],
            "path": str(config.path),
            "version": __version__,
        },
    )


@router.get("/wa-monitor/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    """The admins' users page: list, add, role, disable / enable, reset a password; audit."""
    caller = _admin_page(request, "/wa-monitor/users", "users", "add or change an account")
    if not isinstance(caller, Caller):
        return caller
    from wa_monitor.store.users import MIN_PASSWORD, ROLES

    config: ProjectsConfig = request.app.state.config
    boot: dict[str, Any] = {
        "csrf": caller.csrf,
        "user": caller.user.username,
        "timezone": config.timezone,
        "zoneAbbr": _zone_abbr(config),
        "roles": list(ROLES),
        "minPassword": MIN_PASSWORD,
    }
    return templates.TemplateResponse(
        request,
        "users.html",
        {
            "user": caller.user,
            "csrf": caller.csrf,
            "boot": boot,
            "roles": ROLES,
            "min_password": MIN_PASSWORD,
            "version": __version__,
        },
    )


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page links: the same SVG icon."""
    return FileResponse(
        Path(__file__).parent / "static" / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )
