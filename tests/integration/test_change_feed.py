"""Answers kept in memory are never staler than a committed change (both backends).

On PostgreSQL `serve` keeps the dashboard's answers until PostgreSQL's change feed
(migration 0005) says they are stale; SQLite has no feed, so every request reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from tests.helpers import wait_until
from tests.integration.test_api_support import (
    People,
    TestClient,
    add_people,
    post,
    projects_config,
    record,
    review,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.cli.web import SUMMARY_SECONDS
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import list_tokens, revoke_token, set_disabled
from wa_monitor.web.app import create_app
from wa_monitor.web.changes import (
    ACCOUNTS,
    APPLICATION_NAME,
    REVIEWS,
    AnswerCache,
    ChangeFeed,
    Version,
)


@dataclass
class Served:
    client: TestClient
    store: ReviewStore  # the server's
    other: ReviewStore  # another process's: the monitor, a `wa-monitor users` command
    people: People
    feed: ChangeFeed | None

    def get(self, path: str, role: str = "viewer") -> Any:
        response = self.client.get(path, headers=self.people.bearer(role))
        return response

    def data(self, path: str) -> Any:
        response = self.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        """The statements the server sends to its database meanwhile."""
        sent: list[str] = []

        def on_execute(*args: Any) -> None:
            sent.append(str(args[2]))

        event.listen(self.store.engine, "before_cursor_execute", on_execute)
        try:
            yield sent
        finally:
            event.remove(self.store.engine, "before_cursor_execute", on_execute)

    def after_notification(self, tables: tuple[str, ...], write: Callable[[], object]) -> None:
        """Run another process's write and wait for the server to hear of it (PostgreSQL)."""
        before = self.feed.version(tables) if self.feed is not None else None
        write()
        if self.feed is not None:
            wait_until(lambda: self.feed is not None and self.feed.version(tables) != before)


@contextmanager
def serve(store: ReviewStore, retry_seconds: float = 0.1) -> Iterator[Served]:
    people = add_people(store)
    feed = (
        ChangeFeed(store.engine, retry_seconds=retry_seconds)
        if store.dialect == "postgresql"
        else None
    )
    app = create_app(
        settings_for(store.url),
        projects_config(),
        store,
        run_sender=False,
        changes=feed,
        summary_seconds=SUMMARY_SECONDS,  # as `wa-monitor serve`
    )
    other = ReviewStore(store.url)
    try:
        with TestClient(app) as client:
            if feed is not None:
                assert feed.listening.wait(10), "the change feed did not start listening"
            yield Served(client, store, other, people, feed)
    finally:
        other.dispose()


@pytest.fixture
def served(store: ReviewStore) -> Iterator[Served]:
    with serve(store) as served:
        yield served


DAILY = "/api/wa-monitor-daily-drops"
DROPS = "/api/wa-monitor-drops"


def test_a_drop_the_monitor_records_is_in_the_next_answers(served: Served) -> None:
    served.after_notification(
        REVIEWS, lambda: record(served.other, post("DR60000001", today_minutes_ago(5)))
    )
    # A token's first use records it (a write to api_tokens, heard like any other).
    served.after_notification(ACCOUNTS, lambda: served.get(DAILY))
    assert served.data(DAILY)["data"]["total"] == 1
    assert [d["dropNumber"] for d in served.data(DROPS)["data"]] == ["DR60000001"]

    with served.counting() as sent:
        again = served.data(DAILY), served.data(DROPS)
    assert again[0]["data"]["total"] == 1
    assert [d["dropNumber"] for d in again[1]["data"]] == ["DR60000001"]
    if served.feed is not None:
        assert sent == [], "nothing changed: PostgreSQL's answers come from memory"
    else:
        assert sent, "SQLite has no change feed: every request reads"

    served.after_notification(
        REVIEWS, lambda: record(served.other, post("DR60000002", today_minutes_ago(1)))
    )
    daily = served.data(DAILY)["data"]
    assert daily["total"] == 2
    assert daily["drops"] == [{"date": daily["date"], "project": "Lawley", "count": 2}]
    drops = served.data(DROPS)
    assert [d["dropNumber"] for d in drops["data"]] == ["DR60000001", "DR60000002"]  # queue
    # The summary cards (an aggregate over every review) follow after one refresh.
    wait_until(lambda: served.data(DROPS)["summary"]["total"] == 2)
    assert served.data(DROPS)["meta"]["pagination"]["total"] == 2

    # A resubmission moves the drop back to the top.
    served.after_notification(
        REVIEWS, lambda: record(served.other, post("DR60000001", today_minutes_ago(0.5)))
    )
    top = served.data(DROPS)["data"][0]
    assert (top["dropNumber"], top["resubmitted"]) == ("DR60000001", True)


def test_a_writers_next_read_sees_its_write_at_once(served: Served) -> None:
    record(served.other, post("DR61000001", today_minutes_ago(5)))
    rid = str(review(served.store, "DR61000001")["id"])
    before = served.data(DROPS)["data"][0]
    assert before["status"] == "incomplete"
    served.data(DROPS)  # kept in memory on PostgreSQL
    complete = {s: True for s in STEP_COLUMNS}
    patched = served.client.patch(
        f"{DROPS}/{rid}", json=complete, headers=served.people.bearer("reviewer")
    )
    assert patched.status_code == 200, patched.text
    # No waiting for PostgreSQL's notification: the writer's own read follows its write.
    after = served.data(DROPS)["data"][0]
    assert (after["status"], after["completedPhotos"]) == ("complete", 12)
    locked = served.client.post(f"{DROPS}/{rid}/lock", headers=served.people.bearer("reviewer"))
    assert locked.status_code == 200, locked.text
    assert served.data(DROPS)["data"][0]["lockedBy"] == "reviewer"


def test_a_revoked_token_and_a_disabled_user_are_refused_once_committed(
    served: Served,
) -> None:
    for _ in range(2):  # the second from memory on PostgreSQL
        assert served.get(DAILY).status_code == 200
        assert served.get(DAILY, "reviewer").status_code == 200
    viewer_token = next(t for t in list_tokens(served.other) if t.username == "viewer")
    served.after_notification(ACCOUNTS, lambda: revoke_token(served.other, viewer_token.id))
    refused = served.get(DAILY)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["message"] == "Invalid or revoked API token"

    served.after_notification(ACCOUNTS, lambda: set_disabled(served.other, "reviewer"))
    assert served.get(DAILY, "reviewer").status_code == 401
    assert served.get(DAILY, "admin").status_code == 200


def _listener_pids(store: ReviewStore) -> list[int]:
    with store.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :name"
            ),
            {"name": APPLICATION_NAME},
        ).all()
    return [int(r[0]) for r in rows]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_while_the_feed_is_lost_every_request_reads_and_nothing_stale_follows(
    store: ReviewStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wa_monitor.web")
    with serve(store, retry_seconds=1.0) as served:
        assert served.feed is not None
        feed = served.feed
        record(served.other, post("DR62000001", today_minutes_ago(5)))
        assert served.data(DAILY)["data"]["total"] == 1  # kept in memory
        [pid] = _listener_pids(store)
        with served.other.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        wait_until(lambda: feed.version(REVIEWS) is None)  # deaf: nothing is cached
        record(served.other, post("DR62000002", today_minutes_ago(1)))  # its notification is lost
        with served.counting() as sent:
            assert served.data(DAILY)["data"]["total"] == 2
            assert served.data(DAILY)["data"]["total"] == 2
        assert len(sent) >= 2, "while deaf every request reads"

        wait_until(feed.listening.is_set)
        assert _listener_pids(store) not in ([], [pid])
        assert served.data(DAILY)["data"]["total"] == 2
        record(served.other, post("DR62000003", today_minutes_ago(0.5)))
        wait_until(lambda: served.data(DAILY)["data"]["total"] == 3)
    lost = [r for r in caplog.records if "change feed lost" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING
    assert any("listening again" in r.getMessage() for r in caplog.records)


class _AlwaysListening(ChangeFeed):
    def version(self, tables: tuple[str, ...]) -> Version | None:
        return (0,)


def test_the_cache_is_bounded_and_never_keeps_a_missing_answer() -> None:
    engine = sa.create_engine("sqlite://")
    cache: AnswerCache[int | None] = AnswerCache(_AlwaysListening(engine), REVIEWS, max_entries=3)
    calls: list[object] = []

    def compute(value: int | None) -> Callable[[], int | None]:
        def read() -> int | None:
            calls.append(value)
            return value

        return read

    for key in range(5):
        assert cache.get(key, compute(key)) == key
    assert cache.get(4, compute(40)) == 4  # kept
    assert cache.get(0, compute(10)) == 10  # pushed out by newer keys: read again
    assert cache.get("nobody", compute(None)) is None
    assert cache.get("nobody", compute(None)) is None
    assert calls == [0, 1, 2, 3, 4, 10, None, None]
    engine.dispose()


class _DeafFeed(ChangeFeed):
    """A feed whose connection never hears its channel, like one through a connection
    pooler in transaction mode."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine, probe_timeout=0.3)
        self._listen_to = "wa_monitor_elsewhere"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_feed_that_cannot_hear_itself_never_keeps_an_answer(
    store: ReviewStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "wa_monitor.web")
    people = add_people(store)
    feed = _DeafFeed(store.engine)
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False,
                     changes=feed, summary_seconds=SUMMARY_SECONDS)  # fmt: skip
    other = ReviewStore(store.url)
    try:
        with TestClient(app) as client:
            wait_until(lambda: any("probe" in r.getMessage() for r in caplog.records))
            assert feed.version(REVIEWS) is None
            headers = people.bearer("viewer")
            first = client.get(DAILY, headers=headers).json()["data"]["total"]
            record(other, post("DR63000001", today_minutes_ago(1)))  # heard by no one
            after = client.get(DAILY, headers=headers).json()["data"]["total"]
            assert (first, after) == (0, 1)
    finally:
        other.dispose()
    [lost] = [r for r in caplog.records if "change feed lost" in r.getMessage()]
    assert "pooler in transaction mode" in lost.getMessage()
    assert not feed.listening.is_set()


def test_requests_for_a_stale_answer_wait_for_one_reading() -> None:
    engine = sa.create_engine("sqlite://")
    reading, release = threading.Event(), threading.Event()
    calls: list[str] = []
    results: list[str] = []
    arrived = threading.Semaphore(0)

    def read(fail: bool = False) -> str:
        calls.append("read")
        reading.set()
        assert release.wait(10)
        if fail:
            raise RuntimeError("the database went away")
        return "page"

    def request(fail: bool = False) -> None:
        arrived.release()
        try:
            results.append(cache.get("first page", lambda: read(fail)))
        except RuntimeError as exc:
            results.append(str(exc))

    for leader_fails in (False, True):
        for event_ in (reading, release):
            event_.clear()
        calls.clear()
        results.clear()
        cache: AnswerCache[str] = AnswerCache(_AlwaysListening(engine), REVIEWS)
        leader = threading.Thread(target=request, args=(leader_fails,))
        leader.start()
        assert reading.wait(10) and arrived.acquire(timeout=10)
        followers = [threading.Thread(target=request) for _ in range(4)]
        for t in followers:
            t.start()
        for _ in followers:
            assert arrived.acquire(timeout=10)
        release.set()
        for t in (leader, *followers):
            t.join(10)
        if leader_fails:  # the followers read for themselves
            assert sorted(results) == ["page"] * 4 + ["the database went away"]
        else:
            assert (calls, results) == (["read"], ["page"] * 5)
    engine.dispose()
