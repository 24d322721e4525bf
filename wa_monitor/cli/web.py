"""The dashboard's commands: `wa-monitor serve`, `wa-monitor users …`, `wa-monitor tokens …`."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.table import Table

from wa_monitor.cli.console import err, handle_errors, out
from wa_monitor.cli.context import App, pass_app
from wa_monitor.core.logs import setup_logging
from wa_monitor.core.times import shown
from wa_monitor.monitor.projects_edit import os_actor
from wa_monitor.store.database import open_review_store
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import ROLES, list_users, record_change

log = logging.getLogger("wa_monitor.web")
WEB_POOL_SIZE = 20
# Without PostgreSQL's change feed (SQLite), the summary cards of the drop list are reused
# this long per filter set (queries.SummaryCache).
SUMMARY_SECONDS = 2.0


@contextmanager
def _store(app: App) -> Iterator[ReviewStore]:
    store = app.review_store()
    try:
        yield store
    finally:
        store.dispose()


def _web_store(app: App) -> ReviewStore:
    """The review database for the server: a pool sized for its concurrent work.

    WEB_THREADS (8) handlers, the feedback sender and the summary cards' refreshes each
    hold at most one connection: 20 (+ SQLAlchemy's overflow of 10) leaves room.
    """
    return open_review_store(app.settings, pool_size=WEB_POOL_SIZE)


@click.command("serve")
@click.option("--host", help="Address to listen on (default: WEB_HOST, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), help="Port to listen on (default: WEB_PORT, 8000)."
)
@click.option(
    "--dev",
    is_flag=True,
    help="Trusted local use: run without SECRET_KEY (sessions end when the server stops).",
)
@pass_app
@handle_errors
def serve(app: App, host: str | None, port: int | None, dev: bool) -> None:
    """Serve the reviewers' dashboard (/wa-monitor) and the JSON API (/api/…)."""
    import uvicorn

    from wa_monitor.web.app import create_app
    from wa_monitor.web.changes import feed_for

    settings = app.settings
    # Each instance's .env gives its own port: the unit runs a bare `serve`.
    host, port = host or settings.web_host, port or settings.web_port
    setup_logging(settings, zone=app.zone())
    config = app.config()
    store = _web_store(app)
    if dev and not settings.secret_key:
        err.print(
            "[yellow]warning:[/] --dev without SECRET_KEY: sessions use a random key and "
            "end when the server stops; do not expose this server",
            markup=True,
        )
    web = create_app(
        settings,
        config,
        store,
        dev=dev,
        run_scheduler=True,
        changes=feed_for(store.engine),
        summary_seconds=SUMMARY_SECONDS,
    )
    log.info("🌐 Dashboard on http://%s:%d/wa-monitor (database %s)", host, port, store.masked_url)
    if not any(not user.disabled for user in list_users(store)):
        log.warning(
            "👤 No user can sign in yet: add one with `wa-monitor users add NAME --role admin`"
        )
    proxies = list(settings.trusted_proxies)
    if proxies:
        log.info("🌐 X-Forwarded-For and X-Forwarded-Proto believed from %s", ", ".join(proxies))
    # What start-up built lives as long as the process: out of the collector's sight, a
    # full collection no longer walks it (pauses of up to 200 ms under webhook load).
    gc.collect()
    gc.freeze()
    try:
        uvicorn.run(
            web,
            host=host,
            port=port,
            log_level="warning",
            # Forwarded headers say who the client is only when a proxy of ours set them:
            # believed from anyone, they let a client pick the address its failed
            # sign-ins count against (uvicorn's default trusts 127.0.0.1).
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies,
            # uvicorn's lines go through our handlers (format, masking, one line each).
            log_config=None,
        )
    finally:
        store.dispose()


def _actor() -> str:
    """Who changed an account from the terminal, as the users page's audit shows it."""
    return f"cli:{os_actor()}"


@click.group("users")
def users() -> None:
    """Dashboard users: viewer (read), reviewer (edit, send feedback), admin (users)."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="reviewer", show_default=True)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Prompted for when omitted (at least 8 characters).",
)
@pass_app
@handle_errors
def users_add(app: App, username: str, role: str, password: str) -> None:
    """Create a user."""
    from wa_monitor.store.users import add_user

    with _store(app) as store:
        user = add_user(store, username, password, role)
        record_change(store, _actor(), user.username, f"added as {user.role}")
    out.print(f"user {user.username} created ({user.role})")


@users.command("list")
@pass_app
@handle_errors
def users_list(app: App) -> None:
    """List the users."""
    from wa_monitor.store.users import list_users

    with _store(app) as store:
        found = list_users(store)
    zone = app.zone()
    table = Table(title="Dashboard users")
    for column in ("User", "Role", "State", "Last sign-in"):
        table.add_column(column)
    for u in found:
        last = shown(u.last_login_at, zone)
        table.add_row(u.username, u.role, "disabled" if u.disabled else "active", last)
    out.print(table)
    if not found:
        out.print("no users yet: `wa-monitor users add NAME --role admin`")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@pass_app
@handle_errors
def users_set_role(app: App, username: str, role: str) -> None:
    """Change a user's role (a new role ends their sessions: they sign in again)."""
    from wa_monitor.store.users import set_role

    with _store(app) as store:
        user = set_role(store, username, role)
        record_change(store, _actor(), user.username, f"role set to {user.role}")
    out.print(f"user {user.username} is now {user.role}")


@users.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="Enable the user again instead.")
@pass_app
@handle_errors
def users_disable(app: App, username: str, enable: bool) -> None:
    """Disable a user (signs them out, refuses their API tokens)."""
    from wa_monitor.store.users import set_disabled

    with _store(app) as store:
        user = set_disabled(store, username, not enable)
        record_change(store, _actor(), user.username, "disabled" if user.disabled else "enabled")
    out.print(f"user {user.username} {'disabled' if user.disabled else 'enabled'}")


@users.command("set-password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@pass_app
@handle_errors
def users_set_password(app: App, username: str, password: str) -> None:
    """Set a user's password (ends their sessions, wherever they are signed in)."""
    from wa_monitor.store.users import set_password

    with _store(app) as store:
        set_password(store, username, password)
        record_change(store, _actor(), username, "password set (sessions ended)")
    out.print(f"password of {username} changed")


@click.group("tokens")
def tokens() -> None:
    """API tokens for machine clients (Authorization: Bearer …)."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the token is for, e.g. reporting.")
@click.option(
    "--front-end",
    is_flag=True,
    help="For a front end that forwards its signed-in people's requests: they may name "
    "the acting person (X-Acting-User, or the userName it sends), who locks, edits and "
    "feedback record; admin routes refuse the token. See docs/fibreflow.md.",
)
@pass_app
@handle_errors
def tokens_create(app: App, username: str, name: str, front_end: bool) -> None:
    """Create an API token acting as USERNAME (with that user's role); printed once."""
    from wa_monitor.store.users import create_token

    with _store(app) as store:
        token, secret = create_token(store, username, name, front_end=front_end)
    kind = "front-end token" if front_end else "token"
    err.print(f"{kind} #{token.id} for {username} ({name}); store it now, it is not shown again:")
    click.echo(secret)


@tokens.command("list")
@pass_app
@handle_errors
def tokens_list(app: App) -> None:
    """List the API tokens (never their secrets)."""
    from wa_monitor.store.users import list_tokens

    with _store(app) as store:
        found = list_tokens(store)
    zone = app.zone()
    table = Table(title="API tokens")
    for column in ("#", "User", "Name", "Kind", "Created", "Last used", "State"):
        table.add_column(column)
    for t in found:
        table.add_row(
            str(t.id),
            t.username,
            t.name,
            "front end" if t.front_end else "API",
            shown(t.created_at, zone),
            shown(t.last_used_at, zone),
            "revoked" if t.revoked_at else "active",
        )
    out.print(table)


@tokens.command("revoke")
@click.argument("token_id", type=int)
@pass_app
@handle_errors
def tokens_revoke(app: App, token_id: int) -> None:
    """Revoke an API token."""
    from wa_monitor.store.users import revoke_token

    with _store(app) as store:
        revoke_token(store, token_id)
    out.print(f"token #{token_id} revoked")


COMMANDS = (serve, users, tokens)
