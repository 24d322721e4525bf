"""Sign-in abuse against a real `wa-monitor serve`: forged forwarded headers, and a spray of
failed sign-ins while others read the API."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import re
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_serve import environment, free_port, serve, stop, wait_for_http
from tests.faults.conftest import backend_of
from tests.faults.support import figure
from tests.integration.test_api_support import PASSWORD, People, add_people
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import list_users

# Checks wall-clock bounds: run alone, not beside the parallel part of the suite.
pytestmark = pytest.mark.timing


@dataclass(frozen=True)
class Served:
    base: str
    log_file: Path
    people: People

    def log_lines(self) -> list[str]:
        return self.log_file.read_text(encoding="utf-8").splitlines()


@contextmanager
def serving(tmp_path: Path, db_url: str, **settings: str) -> Iterator[Served]:
    store = ReviewStore(db_url)
    try:
        people = add_people(store) if not list_users(store) else People({})
    finally:
        store.dispose()
    log_file = tmp_path / "serve.log"
    port = free_port()
    env = environment(
        tmp_path, db_url, SECRET_KEY="a-secret-key-for-the-test", LOG_FILE=str(log_file),
        **settings,
    )  # fmt: skip
    process = serve(env, "--host", "127.0.0.1", "--port", str(port))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/login", process)
        yield Served(f"http://127.0.0.1:{port}", log_file, people)
    finally:
        stop(process)


def login_form(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert found
    return found.group(1)


def attempt(
    client: httpx.Client, csrf: str, username: str, password: str, **headers: str
) -> httpx.Response:
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf": csrf},
        headers=headers,
    )


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"], ids=["no proxy", "a proxy on 127.0.0.1"])
def test_forwarded_headers_count_only_from_a_trusted_proxy(
    tmp_path: Path, db_url: str, trusted: str
) -> None:
    settings = {"TRUSTED_PROXIES": trusted} if trusted else {}
    with (
        serving(tmp_path, db_url, **settings) as site,
        httpx.Client(base_url=site.base, follow_redirects=False) as client,
    ):
        csrf = login_form(client)
        answers = [
            attempt(client, csrf, "admin", f"guess-{n}", **{"X-Forwarded-For": f"198.51.100.{n}"})
            .status_code
            for n in range(8)
        ]  # fmt: skip
        # Whatever the header says, the account's limit holds: the right password waits.
        right = attempt(client, csrf, "admin", PASSWORD, **{"X-Forwarded-For": "192.0.2.99"})
        # Another account from an address that has not failed yet, said to be over HTTPS
        # (last: a cookie marked Secure would not be sent back over this plain HTTP).
        other = attempt(client, csrf, "viewer", PASSWORD, **{
            "X-Forwarded-For": "192.0.2.100", "X-Forwarded-Proto": "https"
        })  # fmt: skip
        lines = site.log_lines()
    assert answers == [401] * 5 + [429] * 3, answers
    assert right.status_code == 429
    failed_from = {line.rsplit(" from ", 1)[1] for line in lines if "Failed sign-in" in line}
    secure = "secure" in other.headers.get("set-cookie", "").lower()
    if trusted:
        # Behind our proxy: each forwarded address is the client's, and so is the scheme.
        assert failed_from == {f"198.51.100.{n}" for n in range(5)}, failed_from
        assert other.status_code == 303 and secure
    else:
        # No proxy of ours: the headers are the client's word; its address is the peer's.
        assert failed_from == {"127.0.0.1"}, failed_from
        assert other.status_code == 429  # the peer's address has failed 5 times
        assert not secure
    figure(
        f"sign-in {backend_of(db_url)}, TRUSTED_PROXIES={trusted or '(unset)'}: 8 wrong passwords "
        f"for one account, each with another X-Forwarded-For: {answers.count(401)} checked, "
        f"{answers.count(429)} refused (429), the right password refused too; failures "
        f"logged from {sorted(failed_from)[:2]}{'…' if len(failed_from) > 2 else ''}; "
        f"X-Forwarded-Proto https {'believed' if secure else 'ignored'} (Secure cookie: {secure})"
    )


# -- a spray of failed sign-ins while reviewers read ----------------------------------------


async def _read_latencies(
    base: str, token: str, seconds: float, clients: int = 4
) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def reader(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await client.get("/api/wa-monitor-drops", headers=headers)
            latencies.append(time.perf_counter() - started)
            errors += answer.status_code != 200

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(reader(client) for _ in range(clients)))
    return latencies, errors


DISTRIBUTED, ONE_ADDRESS, HEALTH = "a new address each", "one address", "GET /healthz"


async def _spray(base: str, stop: asyncio.Event, origin: str, sprayers: int = 16) -> None:
    """Failed sign-ins, as fast as `sprayers` clients go. DISTRIBUTED: each from another
    forwarded address for another name, so none is throttled and every one costs a
    password check (the worst case). ONE_ADDRESS: past its limit, refused unchecked.
    HEALTH: no sign-in at all, the cheapest request, for comparison."""
    counter = itertools.count()
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        page = await client.get("/login")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found
        form = {"password": "guess", "csrf": found.group(1)}

        async def sprayer() -> None:
            while not stop.is_set():
                n = next(counter)
                if origin == HEALTH:
                    answer = await client.get("/healthz")
                else:
                    forwarded = {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}
                    answer = await client.post(
                        "/login",
                        data={**form, "username": f"user{n}"},
                        headers=forwarded if origin == DISTRIBUTED else {},
                    )
                _SPRAYED[answer.status_code] = _SPRAYED.get(answer.status_code, 0) + 1

        await asyncio.gather(*(sprayer() for _ in range(sprayers)))


_SPRAYED: dict[int, int] = {}  # the spray's answers by status, in the spraying process


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def _spray_for(base: str, origin: str, seconds: float, started: Any, results: Any) -> None:
    """The spray, in a process of its own (its clients' work is not the readers' latency):
    `started` once it has its first answer, then on for `seconds`."""

    async def run() -> None:
        halt = asyncio.Event()
        spray = asyncio.ensure_future(_spray(base, halt, origin))
        first = asyncio.get_running_loop().time()
        while not _SPRAYED:
            assert asyncio.get_running_loop().time() - first < 60, "no answer to the spray"
            await asyncio.sleep(0.01)  # polling for the spray's first answer
        started.set()
        await asyncio.sleep(seconds)  # the spray's duration, not a synchronisation
        halt.set()
        await spray

    asyncio.run(run())
    results.put(dict(_SPRAYED))


def measure_spray(base: str, token: str, seconds: float, origin: str) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    started, results = context.Event(), context.Queue()
    quiet, quiet_errors = asyncio.run(_read_latencies(base, token, seconds))
    sprayer = context.Process(target=_spray_for, args=(base, origin, seconds + 2, started, results))
    sprayer.start()
    try:
        assert started.wait(60), "the spray did not start"
        busy, busy_errors = asyncio.run(_read_latencies(base, token, seconds))
        sprayed: dict[int, int] = results.get(timeout=120)
    finally:
        sprayer.join(60)
        if sprayer.is_alive():
            sprayer.kill()
    return {
        "quiet": _percentiles(quiet), "quiet_n": len(quiet), "quiet_errors": quiet_errors,
        "busy": _percentiles(busy), "busy_n": len(busy), "busy_errors": busy_errors,
        "spray": sprayed,
    }  # fmt: skip


@pytest.mark.parametrize("origin", [DISTRIBUTED, ONE_ADDRESS, HEALTH])
def test_a_spray_of_failed_sign_ins_does_not_slow_the_api(
    tmp_path: Path, db_url: str, origin: str
) -> None:
    seconds = 6.0
    with serving(tmp_path, db_url, TRUSTED_PROXIES="127.0.0.1") as site:
        figures = measure_spray(site.base, site.people.tokens["viewer"], seconds, origin)
        lines = site.log_lines()
    (q50, q99), (b50, b99) = figures["quiet"], figures["busy"]
    spray: dict[int, int] = figures["spray"]
    assert figures["quiet_errors"] == 0 and figures["busy_errors"] == 0
    assert not [line for line in lines if " - ERROR - " in line]
    figure(
        f"sign-in spray {backend_of(db_url)}: GET /api/wa-monitor-drops by 4 clients for "
        f"{seconds:g} s: p50 {q50:.1f} ms, p99 {q99:.1f} ms ({figures['quiet_n']} requests); "
        f"with 16 clients flooding {'failed sign-ins, ' if origin != HEALTH else ''}{origin}: "
        f"p50 {b50:.1f} ms, p99 {b99:.1f} ms ({figures['busy_n']} requests); their answers "
        f"{dict(sorted(spray.items()))}"
    )
    if origin == HEALTH:
        assert set(spray) == {200}, spray
        return
    assert set(spray) <= {401, 429}, spray  # beyond the check queue: refused, not queued
    if origin == ONE_ADDRESS:
        # Its limit's worth of checks; then refusals as cheap as any request (compare
        # the HEALTH flood), and one log line for them all.
        assert spray.get(401, 0) == 5, spray
        refusals = [line for line in lines if "Sign-in refused" in line]
        assert len(refusals) == 1, refusals
        return
    assert spray.get(401, 0) > 0, spray  # it did check passwords
    # The reads keep their pace: the password checks run in one thread of their own at
    # a lower priority (before, they took the handlers' threads and both CPUs: p99 6-10 s).
    # The figures above are the measure; the bound only catches that regression, with room
    # for a machine busy with other tests.
    assert b99 < max(5 * q99, q99 + 500), (q99, b99)
