"""Opening the review database from the settings: the one door every command goes through.

`open_review_store` builds the engine, keeps an instance out of another instance's
review data (`guard`), checks the schema, and disposes of the engine when any of that
fails. `ReviewStore(url)` itself stays for tests and tools that bring their own URL.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from wa_monitor.core.errors import ConfigError, SharedDatabaseError, WaMonitorError
from wa_monitor.core.masking import mask_url
from wa_monitor.core.settings import Settings, read_env_file
from wa_monitor.store.heartbeats import read_heartbeats
from wa_monitor.store.review_store import ReviewStore, create_review_engine, engine_url

log = logging.getLogger("wa_monitor")

# "write": the command may change review data, so the guard between instances applies.
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
        purpose: "write" refuses an instance pointed at another instance's database
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


# -- the guard between instances ----------------------------------------------------------


def database_identity(url: str, base: Path | None = None) -> tuple[Any, ...]:
    """What makes two DATABASE_URLs the same database (and PostgreSQL schema).

    A relative SQLite path is read from `base` (the instance's working directory), else
    from the current one.
    """
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            path = Path(database).expanduser()
            if base is not None and not path.is_absolute():
                path = base / path
            database = str(path.resolve())
        return ("sqlite", database)
    host = (parsed.host or "localhost").lower()
    if host in {"localhost", "::1"}:
        host = "127.0.0.1"
    options = str(parsed.query.get("options", ""))
    return ("postgresql", host, parsed.port or 5432, parsed.database or "", options)


def same_database(a: str, b: str, *, base_a: Path | None = None) -> bool:
    try:
        return database_identity(a, base_a) == database_identity(b)
    except WaMonitorError:
        return a == b


def _url_of(env: Mapping[str, str]) -> str | None:
    return env.get("DATABASE_URL") or env.get("NEON_DATABASE_URL") or None


def instance_env_files(patterns: Sequence[str]) -> list[Path]:
    """The env files the patterns name (globs expanded), each once."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        for name in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            path = Path(name).expanduser()
            if path.is_file():
                found.setdefault(path.resolve(), None)
    return list(found)


def env_file_instance(path: Path, env: Mapping[str, str]) -> str:
    """The instance an env file configures: its WA_MONITOR_ENV, else its name.

    PREFIX/acme/.env is acme's (the unit's layout); /etc/wa-monitor/acme.env is too.
    """
    named = (env.get("WA_MONITOR_ENV") or "").strip().lower()
    if named:
        return named
    return path.parent.name if path.name == ".env" else path.stem


def _claims(settings: Settings, store: ReviewStore | None) -> list[tuple[str, str]]:
    """(the other instance, why) for each sign that the database is another's."""
    own = settings.env_name
    claims: list[tuple[str, str]] = []
    url = mask_url(settings.database_url)
    for path in instance_env_files(settings.instance_env_files):
        try:
            env = read_env_file(path)
        except ConfigError:
            continue
        other = env_file_instance(path, env)
        theirs = _url_of(env)
        if (
            other != own
            and theirs
            and same_database(theirs, settings.database_url, base_a=path.parent)
        ):
            claims.append((other, f"{own}'s DATABASE_URL {url} is {other}'s (see {path})"))
    beats: list[dict[str, Any]] = []
    if store is not None:
        try:
            beats = read_heartbeats(store)
        except WaMonitorError:
            beats = []
    for beat in beats:
        status = beat.get("status") or {}
        if status.get("shared_database"):
            continue  # written under ALLOW_SHARED_DATABASE: it claims nothing
        writer = status.get("env")
        if writer == own:
            # This instance's monitor has been writing here: the database is its own, and
            # another instance naming it is the one misconfigured (and refused).
            return []
        if writer:
            claims.append(
                (
                    str(writer),
                    f"{own}'s DATABASE_URL {url} holds the heartbeat of {writer}'s monitor "
                    f"{beat['instance']}",
                )
            )
    return claims


def guard(settings: Settings, store: ReviewStore | None = None) -> None:
    """Refuse an instance writing into another instance's review data, unless allowed.

    The signs of another's database: another instance's env file (INSTANCE_ENV_FILES)
    names the same one, or another instance's monitor's heartbeat is in it. A database
    holding this instance's own monitor's heartbeat is its own.
    """
    own = settings.env_name
    if own is None:
        return
    claims = _claims(settings, store)
    if not claims:
        return
    other, why = claims[0]
    if settings.allow_shared_database:
        log.warning(
            "⚠️ %s; ALLOW_SHARED_DATABASE=true, so %s writes into %s's review data",
            why,
            own,
            other,
        )
        return
    raise SharedDatabaseError(
        f"refusing to run: {why}. {own} must not write into {other}'s review data: "
        f"give {own} its own database (e.g. postgresql://…/wa_monitor_{own}, "
        f"then `wa-monitor --env-file /opt/wa-monitor/{own}/.env db upgrade`), or set "
        "ALLOW_SHARED_DATABASE=true if you really mean it"
    )
