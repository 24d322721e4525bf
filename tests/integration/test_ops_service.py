"""The service around Monitor.run, on real review databases (SQLite and PostgreSQL) and a
real bridge store: reload, heartbeat, staleness, metrics, the watchdog, the prod/dev guard."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.helpers import LAWLEY, MOHADIN, T0, VELO, Bridge
from wa_monitor.core.errors import SharedDatabaseError
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.monitor.health import check_heartbeat
from wa_monitor.monitor.projects_edit import add_project, audit_rows
from wa_monitor.monitor.service import Service
from wa_monitor.store.heartbeats import read_heartbeats, record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox


def project(name: str, jid: str, enabled: bool = True) -> str:
    return (
        f"  - name: {name}\n    enabled: {'true' if enabled else 'false'}\n"
        f'    group_jid: "{jid}"\n    description: "{name} group"\n'
    )


HEAD = "# test projects\ntimezone: Africa/Johannesburg\nprojects:\n"
ONLY_LAWLEY = HEAD + project("Lawley", LAWLEY)
LAWLEY_AND_VELO = ONLY_LAWLEY + project("Velo Test", VELO)


def wait_for(condition: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)  # polling an outcome with a deadline
    raise AssertionError(f"timed out waiting for {what or condition}")


def settings_for(db_url: str, bridge: Bridge, **extra: str) -> Settings:
    env = {
        "DATABASE_URL": db_url,
        "WHATSAPP_DB_PATH": str(bridge.messages_db),
        "SCAN_INTERVAL": "0.2",
        "HEARTBEAT_INTERVAL": "0.05",
        "WORKING_HOURS": "always",
        "WA_MONITOR_INSTANCE": "test@host",
        "PROD_ENV_FILE": "",
    }
    env.update(extra)
    return settings_from(env)


@contextmanager
def running(service: Service) -> Iterator[threading.Event]:
    stop = threading.Event()
    failures: list[BaseException] = []

    def target() -> None:
        try:
            service.run(stop)
        except BaseException as exc:  # surfaced in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=target, name="service", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the service did not stop"
    if failures:
        raise failures[0]


def drops(store: ReviewStore) -> set[tuple[str, str]]:
    return {(r["project"], r["drop_number"]) for r in store.reviews()}


@pytest.fixture
def bridge(tmp_path: Path) -> Bridge:
    return Bridge(tmp_path / "store")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config" / "projects.yaml"
    path.parent.mkdir()
    path.write_text(ONLY_LAWLEY)
    return path


def test_a_valid_new_file_takes_effect_at_the_next_scan_and_is_audited_once(
    db_url: str, store: ReviewStore, bridge: Bridge, config_path: Path
) -> None:
    bridge.post(LAWLEY, "DR10000001")
    bridge.post(VELO, "DR20000001")
    bridge.post(MOHADIN, "DR30000001")
    service = Service(settings_for(db_url, bridge), config_path, poll=0.01)
    with running(service):
        wait_for(lambda: ("Lawley", "DR10000001") in drops(store), what="Lawley's drop")
        assert drops(store) == {("Lawley", "DR10000001")}
        # An editor (or a deploy) writes the file: no restart.
        config_path.write_text(LAWLEY_AND_VELO)
        wait_for(lambda: ("Velo Test", "DR20000001") in drops(store), what="Velo's drop")
        # The same through `wa-monitor projects add`: audited as the CLI's, not twice.
        add_project(
            config_path,
            name="Mohadin",
            group_jid=MOHADIN,
            description="Mohadin",
            actor="alice",
            store=store,
        )
        wait_for(lambda: ("Mohadin", "DR30000001") in drops(store), what="Mohadin's drop")
        wait_for(lambda: service.counters.reloads == 2)
    rows = audit_rows(store, config_path)
    assert [(r["source"], r["actor"]) for r in rows][:1] == [("cli", "alice")]
    assert [r["source"] for r in rows] == ["cli", "file"]
    assert "+  - name: Velo Test\n" in rows[1]["diff"]
    assert rows[1]["actor"]  # the file's owner


def replace_text(path: Path, text: str) -> None:
    """Write `path` in one step: a new file renamed over it."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def test_an_invalid_file_is_rejected_and_the_last_good_config_keeps_running(
    db_url: str,
    store: ReviewStore,
    bridge: Bridge,
    config_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bridge.post(LAWLEY, "DR10000001")
    service = Service(settings_for(db_url, bridge), config_path, poll=0.01)
    with caplog.at_level(logging.INFO, "wa_monitor"), running(service):
        wait_for(lambda: drops(store) == {("Lawley", "DR10000001")})
        # Each edit lands whole (as an editor's save does): a half-written file between
        # truncate and write would be a second, different rejection.
        replace_text(config_path, ONLY_LAWLEY + project("Velo Test", "not-a-jid"))
        wait_for(lambda: service.counters.rejected_reloads == 1, what="the rejection")
        bridge.post(LAWLEY, "DR10000002")
        wait_for(lambda: ("Lawley", "DR10000002") in drops(store), what="scans go on")
        # SIGHUP on the unchanged bad file: not logged again, still rejected.
        service.hup.set()
        wait_for(lambda: not service.hup.is_set())
        replace_text(config_path, LAWLEY_AND_VELO)
        bridge.post(VELO, "DR20000001")
        wait_for(lambda: ("Velo Test", "DR20000001") in drops(store), what="the fixed file")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "rejected, still monitoring 1 project(s) of the last good file" in errors[0]
    assert "projects.yaml:10: project 'Velo Test': group_jid `not-a-jid`" in errors[0]
    assert service.counters.reloads == 1
    assert service.metrics.reloads.labels("rejected")._value.get() == 1


def test_a_file_changed_during_a_scan_applies_from_the_next_scan(
    db_url: str, store: ReviewStore, bridge: Bridge, config_path: Path
) -> None:
    config_path.write_text(LAWLEY_AND_VELO)
    for n in range(1, 4):
        bridge.post(LAWLEY, f"DR1000000{n}")
    service = Service(settings_for(db_url, bridge), config_path, poll=0.01)
    service.open()
    assert service.monitor is not None
    service.monitor.chunk = 1  # one rowid per batch: the change lands mid-scan
    reader = service.monitor.source.read_range
    changed = threading.Event()

    def read_range(*args: object, **kwargs: object) -> object:
        if not changed.is_set():
            config_path.write_text(
                HEAD + project("Lawley", LAWLEY, False) + project("Velo Test", VELO)
            )
            changed.set()
        return reader(*args, **kwargs)  # type: ignore[arg-type]

    service.monitor.source.read_range = read_range  # type: ignore[method-assign]
    with running(service):
        wait_for(lambda: service.counters.scans >= 1)
        # The scan in hand finished with the config it began with: all three recorded.
        assert {d for _, d in drops(store)} == {"DR10000001", "DR10000002", "DR10000003"}
        wait_for(lambda: service.counters.reloads == 1)
        bridge.post(LAWLEY, "DR10000004")
        bridge.post(VELO, "DR20000001")  # a later rowid than Lawley's new post
        wait_for(lambda: ("Velo Test", "DR20000001") in drops(store))
    assert ("Lawley", "DR10000004") not in drops(store)


def test_heartbeat_counters_and_freshness(
    db_url: str, store: ReviewStore, bridge: Bridge, config_path: Path
) -> None:
    bridge.post(LAWLEY, "DR10000001")
    bridge.post(LAWLEY, "DR10000001 again")
    service = Service(settings_for(db_url, bridge, WA_MONITOR_ENV="prod"), config_path, poll=0.01)
    with running(service):
        wait_for(lambda: service.counters.scans >= 1)
        service.beaten.clear()
        wait_for(service.beaten.is_set)
        check, beat = check_heartbeat(store, 120, instance="test@host")
        assert check.status == "pass", check
        assert beat is not None
        assert beat["counters"]["new"] == {"Lawley": 1}
        assert beat["counters"]["resubmitted"] == {"Lawley": 1}
        assert beat["counters"]["messages"] == 2
        assert beat["status"]["env"] == "prod"
        assert beat["status"]["projects"] == ["Lawley"]
        assert beat["status"]["healthy"] is True
        assert beat["pid"] == os.getpid()
    (row,) = read_heartbeats(store)
    assert "stopped_at" in row["status"]
    check, _ = check_heartbeat(store, 120)
    assert check.status == "fail" and "stopped at" in check.detail
    late = datetime.now(UTC) + timedelta(minutes=5)
    check, _ = check_heartbeat(store, 120, now=late)
    assert check.status == "fail" and "last beat 5 min ago" in check.detail


def test_staleness_of_groups_and_of_the_bridge_store(
    db_url: str,
    bridge: Bridge,
    config_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config_path.write_text(LAWLEY_AND_VELO)
    bridge.post(LAWLEY, "old news", when=T0)
    bridge.post(VELO, "fresh", when=datetime.now(UTC) - timedelta(minutes=1))
    three_hours_ago = time.time() - 3 * 3600
    os.utime(bridge.messages_db, (three_hours_ago, three_hours_ago))
    service = Service(settings_for(db_url, bridge), config_path)
    service.open()
    try:
        with caplog.at_level(logging.INFO, "wa_monitor"):
            service.check_staleness()
            assert service.bridge_stale and service.stale_groups == {LAWLEY}
            assert not service.is_healthy()
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
            assert any("has not changed for 180 min" in w for w in warnings), warnings
            assert any(w.startswith("⚠️ Lawley is stale") for w in warnings), warnings
            service.check_staleness()  # no repeated warnings while it stays stale
            assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
            bridge.post(LAWLEY, "back", when=datetime.now(UTC))
            service.check_staleness()
        assert not service.bridge_stale and service.stale_groups == set()
        assert "✅ Lawley has new messages again" in caplog.messages
        groups = {g["project"]: g for g in service.status()["groups"]}
        assert groups["Lawley"]["stale"] is False and groups["Velo Test"]["newest_at"]
        # Outside working hours silence is normal.
        quiet = Service(settings_for(db_url, bridge, WORKING_HOURS="never"), config_path)
        quiet.open()
        os.utime(bridge.messages_db, (three_hours_ago, three_hours_ago))
        quiet.check_staleness()
        assert not quiet.bridge_stale
        quiet.close()
    finally:
        service.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_on_metrics_port(
    db_url: str, store: ReviewStore, bridge: Bridge, config_path: Path
) -> None:
    import uuid

    with store.begin() as conn:
        conn.execute(
            sa.insert(feedback_outbox),
            [
                {
                    "review_id": uuid.uuid4(),
                    "drop_number": "DR1",
                    "recipient": LAWLEY,
                    "message": "x",
                    "request_key": f"k{i}",
                    "status": status,
                }
                for i, status in enumerate(("pending", "pending", "sent"))
            ],
        )
    bridge.post(LAWLEY, "DR10000001")
    bridge.post(LAWLEY, "just talk")
    port = free_port()
    service = Service(settings_for(db_url, bridge, METRICS_PORT=str(port)), config_path, poll=0.01)
    with running(service):
        wait_for(lambda: service.counters.scans >= 1)
        service.beaten.clear()
        wait_for(service.beaten.is_set)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'wa_monitor_drops_total{kind="new",project="Lawley"} 1.0' in text
        assert 'wa_monitor_messages_scanned_total{project="Lawley"} 2.0' in text
        assert "wa_monitor_feedback_outbox_pending 2.0" in text
        assert "wa_monitor_scan_duration_seconds_count" in text
        assert (
            f'wa_monitor_newest_message_age_seconds{{group_jid="{LAWLEY}",project="Lawley"}}'
            in text
        )
        assert "wa_monitor_healthy 1.0" in text
        last_scan = next(
            float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("wa_monitor_last_scan_timestamp_seconds ")
        )
        assert abs(last_scan - time.time()) < 60
        # The bridge store disappears (re-paired): errors are counted by kind.
        moved = bridge.messages_db.with_name("moved.db")
        bridge.close()
        bridge.messages_db.rename(moved)
        wait_for(lambda: service.counters.errors["bridge"] >= 1, what="a bridge error")
        moved.rename(bridge.messages_db)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'wa_monitor_errors_total{kind="bridge"}' in text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_systemd_is_told_ready_fed_while_healthy_and_told_stopping(
    db_url: str, bridge: Bridge, config_path: Path, tmp_path: Path
) -> None:
    bridge.post(LAWLEY, "DR10000001")
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(address))
        server.settimeout(10)
        environ = {"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "40000"}
        service = Service(
            settings_for(db_url, bridge, BRIDGE_STALE_AFTER="3600"),
            config_path,
            poll=0.01,
            environ=environ,
        )
        with running(service):
            assert server.recv(4096).startswith(b"READY=1")
            wait_for(lambda: server.recv(4096).startswith(b"WATCHDOG=1"), what="a watchdog ping")
            # messages.db goes quiet for longer than allowed: unhealthy, the pings stop.
            service.settings = settings_for(db_url, bridge, BRIDGE_STALE_AFTER="60")
            old = time.time() - 3600
            os.utime(bridge.messages_db, (old, old))
            wait_for(lambda: service.bridge_stale, what="the bridge store judged stale")
            server.setblocking(False)
            while True:
                try:
                    server.recv(4096)
                except BlockingIOError:
                    break
            for _ in range(3):  # three heartbeats ≈ several watchdog periods
                service.beaten.clear()
                wait_for(service.beaten.is_set)
            pings = []
            while True:
                try:
                    pings.append(server.recv(4096))
                except BlockingIOError:
                    break
            assert not [p for p in pings if p.startswith(b"WATCHDOG=1")]
            server.setblocking(True)
        assert b"STOPPING=1" in server.recv(4096)


def test_dev_refuses_prods_database_unless_allowed(
    db_url: str, store: ReviewStore, bridge: Bridge, config_path: Path, tmp_path: Path
) -> None:
    prod_env = tmp_path / "prod.env"
    prod_env.write_text(f"DATABASE_URL={db_url}\n")
    dev = settings_for(db_url, bridge, WA_MONITOR_ENV="dev", PROD_ENV_FILE=str(prod_env))
    with pytest.raises(
        SharedDatabaseError, match=r"refusing to run: dev's DATABASE_URL .* is prod's"
    ):
        Service(dev, config_path).open()
    assert read_heartbeats(store) == []  # nothing written
    # Prod itself, and dev on another database, start.
    prod = Service(
        settings_for(db_url, bridge, WA_MONITOR_ENV="prod", PROD_ENV_FILE=str(prod_env)),
        config_path,
    )
    prod.open()
    prod.close()
    prod_env.write_text("DATABASE_URL=sqlite:///somewhere/else.db\n")
    other = Service(dev, config_path)
    other.open()
    other.close()
    # Without prod's env file, a prod heartbeat in the database gives it away.
    record_heartbeat(
        store, "prod@vps", started_at=datetime.now(UTC), counters={}, status={"env": "prod"}
    )
    with pytest.raises(SharedDatabaseError, match="heartbeat of prod's monitor prod@vps"):
        Service(settings_for(db_url, bridge, WA_MONITOR_ENV="dev"), config_path).open()
    allowed = Service(
        settings_for(db_url, bridge, WA_MONITOR_ENV="dev", ALLOW_SHARED_DATABASE="true"),
        config_path,
    )
    allowed.open()
    allowed.close()


def write_env(path: Path, **values: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def test_no_instance_writes_into_anothers_database_unless_allowed(
    db_url: str, store: ReviewStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from wa_monitor.store.database import open_review_store

    prefix = tmp_path / "opt"
    prod_env = write_env(prefix / "prod" / ".env", DATABASE_URL=db_url, WA_MONITOR_ENV="prod")
    acme_env = write_env(prefix / "acme" / ".env", DATABASE_URL=db_url)  # named by its folder

    def instance(name: str, **extra: str) -> Settings:
        return settings_from(
            {
                "DATABASE_URL": db_url,
                "WA_MONITOR_ENV": name,
                "INSTANCE_ENV_FILES": f"{prefix}/*/.env",
                **extra,
            }
        )

    with pytest.raises(SharedDatabaseError) as refused:
        open_review_store(instance("acme"))
    message = str(refused.value)
    assert f"acme's DATABASE_URL {store.masked_url} is prod's (see {prod_env})" in message
    assert "acme must not write into prod's review data" in message
    assert "ALLOW_SHARED_DATABASE=true" in message
    # Before either has run, neither may: the database is claimed twice.
    with pytest.raises(SharedDatabaseError, match=f"prod's DATABASE_URL .* is acme's .*{acme_env}"):
        open_review_store(instance("prod"))
    # Once prod's monitor has written its heartbeat there, the database is prod's.
    record_heartbeat(
        store,
        "prod@vps",
        started_at=T0,
        counters={},
        status={"env": "prod", "shared_database": False},
    )
    open_review_store(instance("prod")).dispose()
    with pytest.raises(SharedDatabaseError, match=r"acme's DATABASE_URL .* is prod's"):
        open_review_store(instance("acme"))
    # Allowed loudly; a heartbeat written so claims nothing.
    with caplog.at_level(logging.WARNING, "wa_monitor"):
        open_review_store(instance("acme", ALLOW_SHARED_DATABASE="true")).dispose()
    assert any("so acme writes into prod's review data" in m for m in caplog.messages)
    record_heartbeat(
        store,
        "acme@vps",
        started_at=T0,
        counters={},
        status={"env": "acme", "shared_database": True},
    )
    open_review_store(instance("prod")).dispose()
    with pytest.raises(SharedDatabaseError):
        open_review_store(instance("acme"))
    # Without the env files, prod's heartbeat alone gives the database away.
    alone = instance("acme", INSTANCE_ENV_FILES=str(tmp_path / "none" / ".env"))
    with pytest.raises(SharedDatabaseError, match="holds the heartbeat of prod's monitor prod@vps"):
        open_review_store(alone)
    # Readers (status, doctor, compare) may look at any instance's data.
    open_review_store(instance("acme"), purpose="read").dispose()


def test_an_instance_on_its_own_database_is_let_through(tmp_path: Path) -> None:
    from wa_monitor.store.database import guard

    prefix = tmp_path / "opt"
    write_env(prefix / "prod" / ".env", DATABASE_URL=f"sqlite:///{prefix}/prod/data/r.db")
    # Relative SQLite paths in another instance's file are read from its folder, as its
    # unit's WorkingDirectory does.
    write_env(prefix / "dev" / ".env", DATABASE_URL="sqlite:///data/r.db")
    patterns = {"INSTANCE_ENV_FILES": f"{prefix}/*/.env"}
    acme = settings_from(
        {"DATABASE_URL": f"sqlite:///{prefix}/acme/data/r.db", "WA_MONITOR_ENV": "acme", **patterns}
    )
    guard(acme)
    on_devs = settings_from(
        {"DATABASE_URL": f"sqlite:///{prefix}/dev/data/r.db", "WA_MONITOR_ENV": "acme", **patterns}
    )
    with pytest.raises(SharedDatabaseError, match=r"acme's DATABASE_URL .* is dev's"):
        guard(on_devs)
    # An instance's own env file is among the patterns: it is not another's.
    dev = settings_from({**dict(on_devs.environ), "WA_MONITOR_ENV": "dev"})
    guard(dev)
    # PROD_ENV_FILE, the older setting, still names prod's file.
    older = settings_from(
        {
            "DATABASE_URL": f"sqlite:///{prefix}/prod/data/r.db",
            "WA_MONITOR_ENV": "dev",
            "PROD_ENV_FILE": str(prefix / "prod" / ".env"),
        }
    )
    with pytest.raises(SharedDatabaseError, match=r"dev's DATABASE_URL .* is prod's"):
        guard(older)
