"""Sign-in limits as pure decisions: per account, per address, over time (a fake clock)."""

from __future__ import annotations

import asyncio
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from wa_monitor.core.errors import ConfigError
from wa_monitor.core.settings import settings_from
from wa_monitor.web.auth import LoginThrottle, PasswordChecksBusy, client_address

WINDOW = 900.0
ADDRESSES = ("203.0.113.1", "203.0.113.2", "198.51.100.3")
ACCOUNTS = ("admin", "Admin ", "viewer", "nobody")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


events = st.lists(
    st.tuples(
        st.sampled_from(ADDRESSES),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(["wrong", "wrong", "wrong", "right"]),
        st.sampled_from([0.0, 0.0, 1.0, 60.0, 450.0, 899.0, 900.0]),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(events=events, limit=st.integers(1, 6), address_limit=st.integers(1, 6))
def test_guesses_stay_within_both_limits_whatever_succeeds_in_between(
    events: list[tuple[str, str, str, float]], limit: int, address_limit: int
) -> None:
    """Failures not forgiven by a later success *of the same account from the same address*
    never exceed the account's limit, nor the address's, in any window; and every attempt
    below both limits is let through."""
    clock = Clock()
    throttle = LoginThrottle(limit, WINDOW, address_limit=address_limit, clock=clock)
    standing: list[tuple[float, str, str]] = []  # let-through failures not forgiven
    for address, name, password, pause in events:
        clock.now += pause
        account = LoginThrottle.account_key(name)
        live = [f for f in standing if f[0] > clock.now - WINDOW]
        on_account = sum(1 for f in live if f[2] == account)
        from_address = sum(1 for f in live if f[1] == address)
        attempt = throttle.attempt(address, name)
        should_pass = on_account < limit and from_address < address_limit
        assert (attempt.wait == 0) == should_pass, (address, account, on_account, from_address)
        if attempt.wait:
            assert 0 < attempt.wait <= WINDOW + 1
            continue
        if password == "right":
            throttle.succeeded(attempt)
            standing = [f for f in standing if (f[1], f[2]) != (address, account)]
        else:
            standing.append((clock.now, address, account))


def test_a_refused_attempt_may_try_again_after_its_wait() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, WINDOW, clock=clock)
    for _ in range(3):
        assert throttle.attempt("192.0.2.1", "admin").wait == 0
        clock.now += 100
    refused = throttle.attempt("192.0.2.1", "admin")
    assert refused.wait == 601  # the first failure expires 600 s from now
    clock.now += refused.wait - 2
    assert throttle.attempt("192.0.2.1", "admin").wait > 0
    clock.now += 2
    assert throttle.attempt("192.0.2.1", "admin").wait == 0


def test_an_unchecked_attempt_is_withdrawn_and_counts_for_nothing() -> None:
    throttle = LoginThrottle(2, WINDOW, clock=Clock())
    for _ in range(10):
        throttle.withdraw(throttle.attempt("192.0.2.1", "admin"))
    assert throttle.attempt("192.0.2.1", "admin").wait == 0
    assert throttle.attempt("192.0.2.1", "admin").wait == 0
    assert throttle.attempt("192.0.2.1", "admin").wait > 0


def test_the_tables_stay_bounded_under_a_spray_of_addresses_and_names() -> None:
    clock = Clock()
    throttle = LoginThrottle(5, WINDOW, max_keys=20_000, clock=clock)
    tracemalloc.start()
    try:
        for n in range(60_000):
            clock.now += 0.01
            throttle.attempt(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", f"user-{n}")
        current, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(throttle._by_address) <= 20_000 and len(throttle._by_account) <= 20_000
    assert current < 40 * 2**20, current
    # The newest keys are kept: the latest address is still limited.
    assert throttle._by_address.get("10.0.234.95") is not None
    print(f"60,000 addresses × names: {current / 2**20:.1f} MiB for 2 × 20,000 keys")


def test_expired_keys_are_dropped_as_new_failures_arrive() -> None:
    clock = Clock()
    throttle = LoginThrottle(5, WINDOW, clock=clock)
    for n in range(1000):
        throttle.attempt(f"192.0.2.{n % 250}", f"user-{n}")
    clock.now += WINDOW + 1
    throttle.attempt("198.51.100.1", "admin")
    assert list(throttle._by_address) == ["198.51.100.1"]
    assert list(throttle._by_account) == ["admin"]


def request_from(host: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                    "client": (host, 1234)})  # fmt: skip


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),  # same host's /64
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("testclient", "testclient"),
    ],
)
def test_addresses_are_counted_per_ipv4_address_and_per_ipv6_64(host: str, key: str) -> None:
    assert client_address(request_from(host)) == key


def test_password_checks_beyond_the_queue_are_refused_at_once() -> None:
    throttle = LoginThrottle(checkers=1, queue=1)
    release = threading.Event()

    async def scenario() -> None:
        first = asyncio.ensure_future(throttle.check(release.wait, 30))
        second = asyncio.ensure_future(throttle.check(release.wait, 30))
        await asyncio.sleep(0)  # both take their slot
        with pytest.raises(PasswordChecksBusy):
            await throttle.check(release.wait, 30)
        release.set()
        assert await first and await second
        assert await throttle.check(lambda: "checked") == "checked"

    asyncio.run(scenario())


def test_trusted_proxies_are_addresses_or_networks_and_none_by_default() -> None:
    assert settings_from({}).trusted_proxies == ()
    given = settings_from({"TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8 ,::1,10.1.2.3/8"})
    assert given.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    with pytest.raises(ConfigError) as refused:
        settings_from({"TRUSTED_PROXIES": "*,proxy.example,10.0.0.300"})
    problems = refused.value.problems
    assert len(problems) == 3
    assert "any client choose" in problems[0]
    assert "'proxy.example' is not an IP address" in problems[1]


def test_refused_attempts_are_logged_at_most_once_a_minute_per_address_and_account() -> None:
    clock = Clock()
    throttle = LoginThrottle(1, WINDOW, clock=clock)
    throttle.attempt("203.0.113.1", "admin")  # the one failure allowed
    lines = []
    for _ in range(1000):
        clock.now += 0.05  # 1,000 refused attempts in 50 s
        refused = throttle.attempt("203.0.113.1", "admin")
        assert refused.wait
        lines.append(throttle.refusals_to_log(refused))
    assert [n for n in lines if n] == [1]  # the first refusal, then quiet
    clock.now += 11  # a minute after the first line
    assert throttle.refusals_to_log(throttle.attempt("203.0.113.1", "admin")) == 1000
    # A botnet at one account: a new address alone is no reason for a line.
    throttle.attempt("198.51.100.1", "viewer")
    first = throttle.refusals_to_log(throttle.attempt("198.51.100.1", "viewer"))
    others = [
        throttle.refusals_to_log(throttle.attempt(f"192.0.2.{n}", "viewer")) for n in range(200)
    ]
    assert first == 1 and not any(others)
