"""Opening a drop on the demo's data: its gallery data and all its thumbnails, as a browser.

The demo's store is prepared as `wa-monitor demo` prepares it (2,000 messages of history,
photo bursts behind most drop posts, the demo bridge answering /api/download); the scan
records the drops, the media worker links and fetches every photo (rounds until none is
due), then `wa-monitor serve` (a subprocess) answers over the demo's SQLite database and
media folder. For the drops with the most photos: `GET /api/wa-monitor-drops/{id}/photos`,
then every `thumbUrl`, six at a time (a browser's connections per host), timed together.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.measure import stop
from bench.photo_gallery import _free_port, _open_drops, _wait_ready


def main(spec: dict[str, Any]) -> dict[str, Any]:
    from wa_monitor.core.config import load_config
    from wa_monitor.core.settings import settings_from
    from wa_monitor.monitor.media_worker import MediaWorker
    from wa_monitor.monitor.photo_linker import PhotoLinker
    from wa_monitor.monitor.scan import Monitor
    from wa_monitor.ops import demo
    from wa_monitor.sources.bridge import BridgeStore
    from wa_monitor.store import media_queue
    from wa_monitor.store.review_store import ReviewStore
    from wa_monitor.store.schema import group_messages as G
    from wa_monitor.store.users import add_user, create_token

    root = Path(tempfile.mkdtemp(prefix="wa-bench-demo-"))
    paths = demo.DemoPaths(root)
    api = demo.start_bridge(paths)
    result: dict[str, Any] = {}
    try:
        started = time.monotonic()
        demo.prepare(paths, history=int(spec.get("history", 2000)), seed=1,
                     bridge_url=demo.bridge_url(api))  # fmt: skip
        result["prepare_s"] = time.monotonic() - started
        config = load_config(paths.config)
        settings = settings_from(demo.demo_settings(paths, demo.bridge_url(api)))
        store = ReviewStore(paths.database_url)
        bridge = BridgeStore(paths.messages_db, paths.whatsapp_db)
        bridge.open()
        Monitor(config, bridge, store).scan()
        bridge.close()
        source = BridgeStore(paths.messages_db, paths.whatsapp_db)
        source.open()
        worker = MediaWorker(store, settings, linker=PhotoLinker(store, source, lambda: config))
        started = time.monotonic()
        deadline = started + 900
        due = sa.select(sa.func.count()).where(
            G.c.status == "pending", G.c.next_attempt_at <= sa.func.now()
        )
        while time.monotonic() < deadline:
            worker.round()
            with store.read() as conn:
                if not conn.execute(due).scalar_one():
                    break  # what is left waits for a retry (burst collisions)
        worker.close()
        source.close()
        result["fetch_s"] = time.monotonic() - started
        result["statuses"] = media_queue.backlog(store).as_dict()
        with store.read() as conn:
            query = (
                sa.select(G.c.review_id, sa.func.count())
                .where(G.c.review_id.is_not(None), G.c.media_type != "text")
                .group_by(G.c.review_id)
                .order_by(sa.func.count().desc(), G.c.review_id)
                .limit(int(spec.get("drops", 20)))
            )
            top = [(str(r), int(n)) for r, n in conn.execute(query).all()]
        add_user(store, "bench", "bench-password-123456", "viewer")
        _, token = create_token(store, "bench", "demo")
        store.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WA_MONITOR", "DATABASE"))}
        env.update(demo.demo_settings(paths, None), SECRET_KEY="bench-" + "x" * 40)
        port = _free_port()
        log = open(root / "serve.log", "w")  # noqa: SIM115 - closed below
        exe = Path(sys.executable).with_name("wa-monitor")
        proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(port)], env=env, stdout=log, stderr=log, cwd=root
        )
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                _wait_ready(client, proc, root)
            # The drops of 15 photos or more (all rounds); the largest ones if none has 15.
            chosen = [(r, n) for r, n in top if n >= 15] or top[:5]
            result["photos_per_drop"] = [n for _, n in chosen]
            result["open_drop"] = _open_drops(base, headers, [r for r, _ in chosen])
        finally:
            stop(proc)
            log.close()
    finally:
        api.shutdown()
        api.server_close()
        shutil.rmtree(root, ignore_errors=True)
    result["load_average"] = os.getloadavg()[0]
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
