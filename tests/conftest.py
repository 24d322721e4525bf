"""Shared fixtures: real review databases (PostgreSQL and SQLite) and bridge stores."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from wa_monitor.store.review_store import ReviewStore

# The PostgreSQL server the tests use (trust auth on 127.0.0.1 in development and CI).
PG_ADMIN_URL = os.environ.get("WA_MONITOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def _pg_admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(PG_ADMIN_URL, autocommit=True)


def _pg_url(database: str) -> str:
    url = sa.make_url(PG_ADMIN_URL).set(database=database)
    return url.render_as_string(hide_password=False)


# The figures fault tests report (tests/faults/support.figure), gathered from every
# test's report so that they reach the summary from pytest-xdist's workers too.
_FIGURES: list[str] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    report: pytest.TestReport = yield
    if report.when == "teardown":
        from tests.faults.support import FIGURES

        report.user_properties.extend(("figure", text) for text in FIGURES)
        FIGURES.clear()
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _FIGURES.extend(str(value) for key, value in report.user_properties if key == "figure")


# The tracked files changed before the run (tests/tree_check.py): the run must add none.
_TREE_BEFORE = pytest.StashKey[set[str] | None]()


def pytest_sessionstart(session: pytest.Session) -> None:
    checked = os.environ.get("WA_MONITOR_TREE_CHECK", "1") != "0"
    if checked and not hasattr(session.config, "workerinput"):  # xdist's controller, or none
        from tests.tree_check import changed_tracked

        session.config.stash[_TREE_BEFORE] = changed_tracked(session.config.rootpath)


def pytest_sessionfinish(session: pytest.Session) -> None:
    before = session.config.stash.get(_TREE_BEFORE, None)
    if before is None:
        return
    from tests.tree_check import MESSAGE, changed_tracked, newly_changed

    changed = newly_changed(before, changed_tracked(session.config.rootpath))
    if not changed:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    text = MESSAGE.format(files=", ".join(changed))
    if reporter is not None:
        reporter.write_sep("!", "tracked files changed", red=True, bold=True)
        reporter.write_line(text, red=True)
    else:
        print(text)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("WA Monitor faults: what was injected, what was checked")
    for line in _FIGURES:
        terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def _close_what_tests_opened() -> Iterator[None]:
    from tests.helpers import close_all

    yield
    close_all()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database at the current schema head, copied for each test."""
    name = f"wa_monitor_tpl_{os.getpid()}"
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    store = ReviewStore(_pg_url(name))
    store.upgrade()
    store.dispose()
    yield name
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "reviews.db"
    store = ReviewStore(f"sqlite:///{path}")
    store.upgrade()
    store.dispose()
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh review database at the schema head, on each backend in turn."""
    yield from _fresh_database(request, tmp_path, request.param)


def _fresh_database(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "reviews.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"wa_monitor_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url(name)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh review database WITHOUT any schema, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"wa_monitor_e_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(name)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(db_url: str) -> Iterator[ReviewStore]:
    s = ReviewStore(db_url)
    yield s
    s.dispose()
