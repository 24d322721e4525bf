"""The migrations and schema.py describe the same database, on both backends."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from wa_monitor.store import migrations
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import SCHEMA_HEAD, metadata

VERSIONS = Path(migrations.__file__).parent / "versions"


def test_an_empty_database_upgraded_to_head_is_what_schema_py_describes(
    empty_db_url: str,
) -> None:
    store = ReviewStore(empty_db_url)
    store.upgrade()
    store.dispose()
    engine = sa.create_engine(empty_db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            with warnings.catch_warnings():
                # Neither backend reflects expression indexes; that one is checked below.
                warnings.filterwarnings("ignore", message=".*expression-based index")
                # The backends reflect a generated column's expression in their own words;
                # tests/integration/test_review_queue.py checks what the expressions give.
                warnings.filterwarnings("ignore", message="Computed default on .* cannot be")
                differences = compare_metadata(context, metadata)
                inspector = sa.inspect(conn)
                indexes = {i["name"] for t in metadata.tables for i in inspector.get_indexes(t)}
            if conn.dialect.name == "sqlite":
                names = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='index'"))
            else:
                names = conn.execute(sa.text("SELECT indexname FROM pg_indexes"))
            indexes |= {row[0] for row in names}
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert differences == []
    declared = {i.name for table in metadata.tables.values() for i in table.indexes}
    assert declared <= indexes
    assert revision == SCHEMA_HEAD


def test_migrations_import_no_live_code() -> None:
    """A migration is history: a later change of the code must not rewrite it."""
    for path in sorted(VERSIONS.glob("[0-9]*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        ] + [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
        assert not [m for m in imported if m.startswith("wa_monitor")], path.name
