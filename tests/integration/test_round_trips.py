"""A scan batch costs a constant number of database statements, whatever its drops.

Production's review database is a hosted PostgreSQL, milliseconds away: round trips,
not CPU, decide the speed. This counts what one batch sends (a count, not a time).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.helpers import T0, VELO, Bridge, make_monitor
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sim import MessageRow
from wa_monitor.store.review_store import ReviewStore

# select affected reviews, log submissions, insert reviews, update reviews, save cursors
MAX_STATEMENTS = 5


_IDS = itertools.count(1)


def post_drops(bridge: Bridge, drops: list[str]) -> None:
    """One message per drop number, written in one bridge transaction."""
    rows = [
        MessageRow(
            id=f"3EB0{next(_IDS):016X}",
            chat_jid=VELO,
            sender="27821234567",
            content=f"{drop} all photos attached",
            timestamp=bridge.writer.timestamp(T0 + timedelta(seconds=i)),
            is_from_me=False,
            media_type="",
            filename="",
            url="",
            media_key=None,
            file_sha256=None,
            file_enc_sha256=None,
            file_length=0,
        )
        for i, drop in enumerate(drops)
    ]
    bridge.writer.write_many(rows)


class Counted:
    """The statements (BEGIN excluded) and transactions of each record_batch call."""

    def __init__(self, monitor: Monitor) -> None:
        self.batches: list[dict[str, int]] = []
        self._current: dict[str, int] | None = None
        engine = monitor.store.engine
        event.listen(engine, "before_cursor_execute", self._on_execute)
        event.listen(engine, "commit", self._on_commit)
        record = monitor.store.record_batch

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._current = {"statements": 0, "commits": 0}
            try:
                return record(*args, **kwargs)
            finally:
                self.batches.append(self._current)
                self._current = None

        monitor.store.record_batch = counted  # type: ignore[method-assign]

    def _on_execute(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self._current is not None and not statement.lstrip().upper().startswith("BEGIN"):
            self._current["statements"] += 1

    def _on_commit(self, _conn: Any) -> None:
        if self._current is not None:
            self._current["commits"] += 1


def scan_batch(monitor: Monitor) -> dict[str, int]:
    counted = Counted(monitor)
    monitor.scan()
    [batch] = counted.batches
    return batch


def drops(start: int, n: int) -> list[str]:
    return [f"DR{start + i:08d}" for i in range(n)]


@pytest.fixture
def monitors(tmp_path: Path, db_url: str) -> Iterator[tuple[Bridge, Monitor]]:
    bridge = Bridge(tmp_path / "store")
    yield bridge, make_monitor(bridge, db_url)


def test_new_drops_cost_the_same_statements_for_1_and_500(
    monitors: tuple[Bridge, Monitor],
) -> None:
    bridge, monitor = monitors
    post_drops(bridge, drops(10_000_000, 1))
    one = scan_batch(monitor)
    post_drops(bridge, drops(20_000_000, 500))
    many = scan_batch(monitor)

    assert one == many
    assert one["statements"] <= MAX_STATEMENTS
    assert one["commits"] == 1
    assert len(monitor.store.reviews()) == 501


def test_resubmissions_cost_the_same_statements_for_1_and_500(
    monitors: tuple[Bridge, Monitor],
) -> None:
    bridge, monitor = monitors
    post_drops(bridge, drops(30_000_000, 500))
    monitor.scan()
    # Half new drops, half resubmissions: every statement of a batch is used.
    post_drops(bridge, drops(30_000_000, 1) + drops(40_000_000, 1))
    one = scan_batch(monitor)
    post_drops(bridge, drops(30_000_001, 250) + drops(50_000_000, 250))
    many = scan_batch(monitor)

    assert one == many
    assert one["statements"] <= MAX_STATEMENTS
    assert one["commits"] == 1
    reviews = {r["drop_number"]: r for r in monitor.store.reviews()}
    assert len(reviews) == 500 + 1 + 250
    assert reviews["DR30000000"]["resubmitted"] and reviews["DR30000250"]["resubmitted"]
    assert not reviews["DR30000499"]["resubmitted"]


def test_a_batch_without_drops_only_moves_the_cursors(monitors: tuple[Bridge, Monitor]) -> None:
    bridge, monitor = monitors
    bridge.chatter(VELO, 20)
    batch = scan_batch(monitor)

    assert batch == {"statements": 1, "commits": 1}


def test_on_postgresql_a_batch_is_four_round_trips_five_with_a_redelivery(
    tmp_path: Path, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("round trips on the wire are a client-server matter")
    bridge = Bridge(tmp_path / "store")
    monitor = make_monitor(bridge, db_url)
    # The service's own store: no pre-ping round trip per checkout.
    monitor.store.dispose()
    monitor.store = ReviewStore(db_url, pre_ping=False)
    post_drops(bridge, drops(60_000_000, 300))
    monitor.scan()
    begins: list[int] = []
    event.listen(monitor.store.engine, "begin", lambda _conn: begins.append(1))
    post_drops(bridge, drops(60_000_000, 150) + drops(70_000_000, 150))
    batch = scan_batch(monitor)

    # BEGIN, select the affected reviews, one statement for the cursors, the submissions
    # log and the reviews (new and resubmitted), COMMIT.
    assert len(begins) == 1
    assert batch["statements"] + len(begins) + batch["commits"] == 4
    reviews = {r["drop_number"]: r for r in monitor.store.reviews()}
    assert reviews["DR60000000"]["resubmitted"] and not reviews["DR70000000"]["resubmitted"]
    assert not reviews["DR70000149"]["resubmitted"]

    # A re-delivered message (already logged) in the batch: its reviews wait for a second
    # statement, planned without it. Nothing is counted twice.
    first_id, _ = bridge.post(VELO, "DR80000001 all photos", when=T0 + timedelta(hours=1))
    monitor.scan()
    begins.clear()
    bridge.redeliver(VELO, first_id)
    bridge.post(VELO, "DR80000002 all photos", when=T0 + timedelta(hours=2))
    batch = scan_batch(monitor)
    assert len(begins) == 1
    assert batch["statements"] + len(begins) + batch["commits"] == 5
    reviews = {r["drop_number"]: r for r in monitor.store.reviews()}
    assert not reviews["DR80000001"]["resubmitted"] and not reviews["DR80000002"]["resubmitted"]
    assert len(reviews) == 300 + 150 + 2
