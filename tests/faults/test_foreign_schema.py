"""The review database's `alembic_version` is not one WA Monitor wrote: a revision this code
does not know, several rows (another Alembic-managed application sharing the database), or
a table of another shape. Every command that needs the schema says what it found and what
to do, and exits 2, without a traceback, before it touches anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.faults.conftest import backend_of
from tests.faults.support import PROJECTS_YAML, figure
from wa_monitor.sim import create_bridge_store
from wa_monitor.store.review_store import ReviewStore

COMMANDS = (
    ("scan", "--once"),
    ("run",),
    ("serve", "--port", "9"),
    ("db", "upgrade"),
    ("db", "current"),
    ("status",),
)
# What each foreign record is made of, the words the message must use for it, and the
# commands run. Every command reads the record through the same store method; the other
# kinds run the two that reach it by paths of their own (the upgrade, status's checks).
FOREIGN = {
    "unknown revision": (
        ["UPDATE alembic_version SET version_num = 'ab12cd34ef56'"],
        ("ab12cd34ef56", "does not know", "DATABASE_URL"),
        COMMANDS,
    ),
    "several revisions": (
        ["INSERT INTO alembic_version (version_num) VALUES ('1975ea83b712')"],
        ("2 schema revisions", "1975ea83b712", "its own database"),
        (("db", "upgrade"), ("status",)),
    ),
    "another shape": (
        [
            "DROP TABLE alembic_version",
            "CREATE TABLE alembic_version (id integer, name varchar(40))",
            "INSERT INTO alembic_version VALUES (1, 'v1')",
        ],
        ("columns (id, name)", "another application", "DATABASE_URL"),
        (("db", "upgrade"), ("db", "current")),
    ),
}


def _plant(db_url: str, statements: list[str]) -> dict[str, list[str]]:
    store = ReviewStore(db_url)
    try:
        with store.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
        return _tables(store)
    finally:
        store.dispose()


def _tables(store: ReviewStore) -> dict[str, list[str]]:
    with store.begin() as conn:
        inspector = sa.inspect(conn)
        return {
            t: [c["name"] for c in inspector.get_columns(t)] for t in inspector.get_table_names()
        }


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_foreign_alembic_version_is_named_and_refused_by_every_command(
    db_url: str, tmp_path: Path, kind: str
) -> None:
    statements, words, commands = FOREIGN[kind]
    before = _plant(db_url, statements)
    (tmp_path / "projects.yaml").write_text(PROJECTS_YAML)
    create_bridge_store(tmp_path / "messages.db", tmp_path / "whatsapp.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "WA_MON"))}
    env.update(
        DATABASE_URL=db_url,
        WHATSAPP_DB_PATH=str(tmp_path / "messages.db"),
        WHATSAPP_STORE_PATH=str(tmp_path / "whatsapp.db"),
        WA_MONITOR_CONFIG=str(tmp_path / "projects.yaml"),
        SECRET_KEY="a-secret-key-for-the-schema-test",
        PYTHONUNBUFFERED="1",
    )
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "wa_monitor", *command],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = result.stdout + result.stderr
        what = f"{kind}: wa-monitor {' '.join(command)} (exit {result.returncode}):\n{said}"
        assert result.returncode == 2, what
        assert "Traceback" not in said, what
        for word in words:
            assert word in " ".join(said.split()), (word, what)
    store = ReviewStore(db_url)
    try:
        assert _tables(store) == before, "a command changed the database"
    finally:
        store.dispose()
    figure(
        f"foreign alembic_version, {kind} ({backend_of(db_url)}): "
        f"{', '.join(' '.join(c[:2]) for c in commands)} -> exit 2, one message naming what "
        "was found and what to do, 0 tracebacks, database untouched"
    )
