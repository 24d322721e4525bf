"""The review database stops taking writes under a running dashboard (a failover left it
on a hot standby, `default_transaction_read_only` turned on, a read-only file): /readyz
must say so, where it said "ok" because reads still worked; and an anonymous probe learns
which checks failed, never the paths and addresses in their details."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import _pg_admin
from tests.faults.conftest import backend_of
from tests.faults.serve import Server, running_serve
from tests.faults.support import figure, wait_until
from tests.integration.test_api_support import People, add_people, settings_for
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.health import readiness


def _beat(store: ReviewStore) -> None:
    # A monitor that just reported a readable bridge: the only reason left to be unready
    # is the database itself.
    record_heartbeat(
        store,
        "prod@test",
        started_at=datetime.now(UTC),
        counters={},
        status={"last_scan_at": datetime.now(UTC).isoformat(), "bridge": {"readable": True}},
    )


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[tuple[str, People, ExitStack]]:
    store = ReviewStore(db_url)
    people = add_people(store)
    _beat(store)
    store.dispose()
    with ExitStack() as stack:
        yield db_url, people, stack


def _read_only(db_url: str) -> tuple[str, str]:
    """Make the database refuse writes; returns how, and the URL that now sees it so."""
    if backend_of(db_url) == "sqlite":
        path = db_url.removeprefix("sqlite:///")
        return "the file opened read-only (mode=ro)", f"sqlite:///file:{path}?mode=ro&uri=true"
    name = sa.make_url(db_url).database
    with _pg_admin() as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        # As a failover does: the dashboard's sessions end, its new ones are read-only.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    return "default_transaction_read_only=on, sessions terminated", db_url


def _location(db_url: str) -> str:
    if backend_of(db_url) == "sqlite":
        return db_url.removeprefix("sqlite:///")
    return f"{sa.make_url(db_url).host}:{sa.make_url(db_url).port or 5432}"


def test_readiness_checks_writes_and_keeps_details_from_anonymous_callers(
    site: tuple[str, People, ExitStack], tmp_path: Path
) -> None:
    db_url, people, stack = site
    server: Server = stack.enter_context(running_serve(db_url, tmp_path, people))
    anonymous = server.request("GET", "/readyz", role=None)
    assert anonymous.status == 200, anonymous.body
    assert all(set(c) == {"name", "status"} for c in anonymous.json()["checks"]), anonymous.body
    assert "database writes" in {c["name"] for c in anonymous.json()["checks"]}
    location = _location(db_url).split(":")[0]
    assert location not in anonymous.body.decode()
    signed_in = server.request("GET", "/readyz", role="viewer")
    assert signed_in.status == 200 and all(c["detail"] for c in signed_in.json()["checks"])
    assert location in signed_in.body.decode()  # a viewer may see where the database is

    how, url = _read_only(db_url)
    if url != db_url:  # a read-only SQLite file: a dashboard opened on it
        (tmp_path / "ro").mkdir()
        server = stack.enter_context(running_serve(url, tmp_path / "ro", people))

    def unready() -> bool:
        return server.request("GET", "/readyz", role=None).status == 503

    wait_until(unready, 30, "/readyz to notice the read-only database")
    answer = server.request("GET", "/readyz", role=None)
    failing = [c["name"] for c in answer.json()["checks"] if c["status"] == "fail"]
    assert failing == ["database writes"], answer.body
    assert all(set(c) == {"name", "status"} for c in answer.json()["checks"])
    assert location not in answer.body.decode()
    garbage = server.request(
        "GET", "/readyz", role=None, headers={"Authorization": "Bearer wam_nope"}
    )
    assert garbage.status == 503 and garbage.json()["checks"] == answer.json()["checks"]
    # Token holders still read: the token's last use is bookkeeping, not a reason to fail.
    # (The reviewer's token is used here first, so its last use is due to be written.)
    reads = server.request("GET", "/api/wa-monitor-drops", role="reviewer")
    assert reads.status == 200, reads.body
    # What a signed-in caller would read (the same report, with its details).
    store = ReviewStore(url)
    try:
        report = readiness(settings_for(url), store)
    finally:
        store.dispose()
    check = next(c for c in report.checks if c.name == "database writes")
    assert check.status == "fail" and "read" in check.detail and check.fix, check
    figure(
        f"read-only review database ({backend_of(db_url)}): {how} -> /readyz 503 with "
        "'database writes' the one failing check (it said ok before: reads still worked); "
        "anonymous and bad-token callers get check names and statuses only, no path or host; "
        "a viewer gets the details; a token holder's read still answers 200"
    )
