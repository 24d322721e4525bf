"""Review databases for the benchmarks: fresh PostgreSQL databases or SQLite files."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import sqlalchemy as sa

from wa_monitor.store.review_store import ReviewStore

PG_ADMIN_URL = os.environ.get(
    "WA_MONITOR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def pg_url(database: str, port: int | None = None) -> str:
    url = sa.make_url(PG_ADMIN_URL).set(database=database)
    if port is not None:
        url = url.set(port=port)
    return url.render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.encode())


@contextmanager
def fresh_database(backend: str, workdir: Path) -> Iterator[str]:
    """A review database at the schema head, dropped afterwards; yields its database name
    (PostgreSQL) or file path (SQLite)."""
    if backend == "sqlite":
        path = workdir / f"reviews-{uuid.uuid4().hex[:8]}.db"
        store = ReviewStore(f"sqlite:///{path}")
        store.upgrade()
        store.dispose()
        try:
            yield str(path)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    name = f"wa_bench_{uuid.uuid4().hex[:10]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        store = ReviewStore(pg_url(name))
        store.upgrade()
        store.dispose()
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url_for(backend: str, handle: str, port: int | None = None) -> str:
    return f"sqlite:///{handle}" if backend == "sqlite" else pg_url(handle, port)
