"""`wa-monitor groups`, `status` and `doctor` as processes, on installations whose groups
come through webhook gateways as well as (or instead of) the bridge's store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import LAWLEY, OTHER, VELO, Bridge
from tests.integration.test_gateway_ops import inbox_row, projects_yaml
from wa_monitor.store.review_store import ReviewStore

WA_MONITOR = [sys.executable, "-m", "wa_monitor"]
UNMONITORED = "120363477777777777@g.us"


def run(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "NEON_", "WHATSAPP_", "WA_MONITOR_", "GATEWAY"))
    }
    environ.update(WA_MONITOR_CONFIG=str(root / "projects.yaml"), **env)
    return subprocess.run(
        [*WA_MONITOR, *args],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def line_of(output: str, *parts: str) -> str:
    return next(line for line in output.splitlines() if all(p in line for p in parts))


def test_groups_lists_every_source_with_its_gateway_and_who_monitors_it(
    tmp_path: Path, db_url: str, store: ReviewStore
) -> None:
    (tmp_path / "projects.yaml").write_text(projects_yaml({"Lawley": "waha"}))
    bridge = Bridge(tmp_path / "store")
    bridge.writer.add_chat(VELO, "Velo Test group")
    bridge.writer.add_chat(OTHER, "Soweto Activations")
    bridge.chatter(VELO, 3)
    bridge.chatter(OTHER, 2)
    for _ in range(4):
        inbox_row(store, "waha", LAWLEY, minutes=5)
    inbox_row(store, "waha", UNMONITORED, minutes=50)
    inbox_row(store, "evolution", VELO, minutes=20)

    result = run(tmp_path, "groups", DATABASE_URL=db_url, WHATSAPP_DB_PATH=str(bridge.messages_db))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    velo = line_of(out, "bridge store", VELO)
    assert "Velo Test group" in velo and "│        3 │" in velo and "monitored by Velo Test" in velo
    other = line_of(out, "bridge store", OTHER)
    assert "not monitored: add it with `wa-monitor projects add`" in other
    lawley = line_of(out, "WAHA", LAWLEY)
    assert "│        4 │" in lawley and "monitored by Lawley" in lawley
    assert "not monitored" in line_of(out, "WAHA", UNMONITORED)
    # Velo's messages also arrive from Evolution API, which the project does not read.
    assert "Velo Test reads it from bridge store, not here" in line_of(out, "Evolution API", VELO)


def test_groups_needs_no_bridge_store_when_every_project_is_on_a_webhook(
    tmp_path: Path, db_url: str, store: ReviewStore
) -> None:
    (tmp_path / "projects.yaml").write_text(projects_yaml({}))
    inbox_row(store, "waha", LAWLEY, minutes=5)
    result = run(tmp_path, "groups", DATABASE_URL=db_url, GATEWAY="waha")
    assert result.returncode == 0, result.stderr
    assert "monitored by Lawley" in line_of(result.stdout, "WAHA", LAWLEY)
    # The project whose group never arrived is named, with where to look.
    velo = line_of(result.stdout, "Velo Test (waha)")
    assert f"{VELO} has no message in the inbox from waha yet" in velo
    assert "wa-monitor doctor" in velo


def test_groups_still_says_what_to_set_when_a_project_reads_a_bridge_store_not_configured(
    tmp_path: Path, db_url: str
) -> None:
    (tmp_path / "projects.yaml").write_text(projects_yaml({"Lawley": "waha"}))
    result = run(tmp_path, "groups", DATABASE_URL=db_url)
    assert result.returncode == 2  # a configuration error
    assert "WHATSAPP_DB_PATH is not set" in result.stderr and "Traceback" not in result.stderr


def test_status_and_doctor_on_webhooks_only_need_no_bridge_store(
    tmp_path: Path, db_url: str, store: ReviewStore
) -> None:
    (tmp_path / "projects.yaml").write_text(projects_yaml({}))
    inbox_row(store, "bridge-webhook", LAWLEY, minutes=5)
    inbox_row(store, "bridge-webhook", VELO, minutes=8)
    env = {"DATABASE_URL": db_url, "GATEWAY": "bridge-webhook", "WORKING_HOURS": "always"}
    status = run(tmp_path, "status", **env)
    assert "bridge store" not in status.stdout, status.stdout
    assert (
        "PASS  source Go bridge fork's webhook: 2 group(s) through the inbox; newest "
        "message 5 min ago" in status.stdout
    )
    assert status.returncode == 1  # no monitor has beaten yet
    assert "FAIL  heartbeat" in status.stdout

    doctor = run(tmp_path, "doctor", "--skip-bridge-process", **env)
    assert "FAIL  bridge webhook token: WEBHOOK_TOKEN is not set" in doctor.stdout
    assert "WHATSAPP_DB_PATH" not in doctor.stdout
    assert "Traceback" not in doctor.stderr


def test_the_demo_on_waha_posts_the_groups_messages_as_webhooks_to_its_own_serve(
    tmp_path: Path,
) -> None:
    import signal

    import sqlalchemy as sa

    from tests.helpers import wait_until
    from wa_monitor.store.schema import gateway_inbox, qa_photo_reviews

    root = tmp_path / "d"
    process = subprocess.Popen(
        [
            *WA_MONITOR,
            "demo",
            "--gateway",
            "waha",
            "--every",
            "0.2",
            "--dir",
            str(root),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    store = None
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert "source           WAHA webhooks → http://127.0.0.1:" in lines[3], lines
        assert "/webhooks/waha" in lines[3]
        store = ReviewStore(f"sqlite:///{root / 'reviews.db'}")

        def counts() -> tuple[int, int]:
            with store.read() as conn:
                inbox = conn.execute(sa.select(sa.func.count()).select_from(gateway_inbox))
                reviews = conn.execute(sa.select(sa.func.count()).select_from(qa_photo_reviews))
                return int(inbox.scalar() or 0), int(reviews.scalar() or 0)

        wait_until(lambda: all(n > 0 for n in counts()), timeout=90)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        with store.read() as conn:
            gateways = set(conn.execute(sa.select(gateway_inbox.c.gateway).distinct()).scalars())
    finally:
        if store is not None:
            store.dispose()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert gateways == {"waha"}
    assert "(through waha)" in stderr and "✅ Created QA review for DR" in stderr
    assert re.search(r"demo stopped: [1-9]\d* reviews .* from the WAHA webhooks", stdout), stdout
    assert not (root / "gateway-key").stat().st_mode & 0o077  # the key is the demo's alone
