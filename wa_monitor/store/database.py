"""Opening the review database from the settings: the one door every command goes through.

`open_review_store` builds the engine, keeps a non-prod environment out of prod's
review data (`guard`), checks the schema, and disposes of the engine when any of that
fails. `ReviewStore(url)` itself stays for tests and tools that bring their own URL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from wa_monitor.core.errors import ConfigError, SharedDatabaseError, WaMonitorError
from wa_monitor.core.masking import mask_url
from wa_monitor.core.settings import Settings, read_env_file
from wa_monitor.store.heartbeats import read_heartbeats
from wa_monitor.store.review_store import ReviewStore, create_review_engine, engine_url

log = logging.getLogger("wa_monitor")

# "write": the command may change review data, so the prod/dev guard applies.
# "read": it only reads (status, doctor, compare), and may well look at prod's data.
Purpose = Literal["write", "read"]


def open_review_store(
    settings: Settings,
    *,
    purpose: Purpose = "write",
    check_schema: bool = True,
    pool_size: int = 5,
    pre_ping: bool = True,
) -> ReviewStore:
    """The review database the settings name, ready for `purpose`.

    Args:
        settings: where DATABASE_URL and the environment's name come from.
        purpose: "write" refuses a non-prod environment pointed at prod's database
            (SharedDatabaseError) unless ALLOW_SHARED_DATABASE; "read" does not.
        check_schema: refuse a schema this version does not know (SchemaVersionError);
            off for the commands that inspect or create it (`db current`, `db upgrade`).
        pool_size, pre_ping: as `create_review_engine`.

    Returns:
        The store; the caller disposes of it, or uses it as a context manager. When
        opening fails, its engine is disposed of before the error propagates.
    """
    url = settings.database_url
    store = ReviewStore(
        url, engine=create_review_engine(url, pool_size=pool_size, pre_ping=pre_ping)
    )
    try:
        if purpose == "write":
            guard(settings, store)
        if check_schema:
            store.check_schema()
    except BaseException:
        store.dispose()
        raise
    return store


# -- the prod/dev guard -----------------------------------------------------------------


def database_identity(url: str) -> tuple[Any, ...]:
    """What makes two DATABASE_URLs the same database (and PostgreSQL schema)."""
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            database = str(Path(database).expanduser().resolve())
        return ("sqlite", database)
    host = (parsed.host or "localhost").lower()
    if host in {"localhost", "::1"}:
        host = "127.0.0.1"
    options = str(parsed.query.get("options", ""))
    return ("postgresql", host, parsed.port or 5432, parsed.database or "", options)


def same_database(a: str, b: str) -> bool:
    try:
        return database_identity(a) == database_identity(b)
    except WaMonitorError:
        return a == b


def _url_of(env: Mapping[str, str]) -> str | None:
    return env.get("DATABASE_URL") or env.get("NEON_DATABASE_URL") or None


def guard(settings: Settings, store: ReviewStore | None = None) -> None:
    """Refuse a non-prod environment writing into prod's review data, unless allowed.

    Two signs of prod's database: prod's env file names the same DATABASE_URL, or a
    prod monitor's heartbeat is in it.
    """
    env = settings.env_name
    if env is None or env == "prod":
        return
    problems: list[str] = []
    prod_file = settings.prod_env_file
    if prod_file is not None and prod_file.is_file():
        try:
            prod_url = _url_of(read_env_file(prod_file))
        except ConfigError:
            prod_url = None
        if prod_url and same_database(prod_url, settings.database_url):
            problems.append(
                f"{env}'s DATABASE_URL {mask_url(settings.database_url)} is prod's "
                f"(see {prod_file})"
            )
    if store is not None and not problems:
        try:
            beats = read_heartbeats(store)
        except WaMonitorError:
            beats = []
        for beat in beats:
            status = beat.get("status") or {}
            if status.get("env") == "prod":
                problems.append(
                    f"{env}'s DATABASE_URL {mask_url(settings.database_url)} holds the "
                    f"heartbeat of prod's monitor {beat['instance']}"
                )
                break
    if not problems:
        return
    if settings.allow_shared_database:
        log.warning(
            "⚠️ %s; ALLOW_SHARED_DATABASE=true, so %s writes into prod's review data",
            problems[0],
            env,
        )
        return
    raise SharedDatabaseError(
        f"refusing to run: {problems[0]}. {env} must not write into prod's review data: "
        f"give {env} its own database (e.g. postgresql://…/wa_monitor_{env}, then "
        f"`wa-monitor --env-file /opt/wa-monitor/{env}/.env db upgrade`), or set "
        "ALLOW_SHARED_DATABASE=true if you really mean it"
    )
