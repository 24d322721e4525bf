"""Who is asking: signed session cookies with a CSRF token, API tokens, sign-in throttling."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import (
    TokenHolder,
    User,
    authenticate,
    end_sessions,
    get_user,
    token_hash,
    token_holder,
)
from wa_monitor.web.changes import AnswerCache
from wa_monitor.web.envelope import ApiError

log = logging.getLogger("wa_monitor.web")
SESSION_COOKIE = "wa_monitor_session"
LOGIN_CSRF_COOKIE = "wa_monitor_login"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
# A front end's request names the person acting in this header (or in a body's `userName`).
ACTING_HEADER = "X-Acting-User"
ACTING_MAX = 100
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


@dataclass(frozen=True)
class Session:
    user_id: int
    csrf: str
    version: int  # the user's session_version when it started


@dataclass(frozen=True)
class Caller:
    user: User
    via: str  # "session" | "token"
    csrf: str | None
    # A front end's token (`tokens create --front-end`) and the person it acts for.
    front_end: bool = False
    acting: str | None = None

    def can(self, role: str) -> bool:
        """Whether the caller holds at least `role`; a front-end token is never an admin."""
        return self.user.can(role) and not (self.front_end and role == "admin")

    @property
    def actor(self) -> str:
        """Who locks, edits, feedback and history record: the acting person, else the user."""
        return self.acting or self.user.username

    def acting_as(self, name: str | None, field: str = "body.userName") -> Caller:
        """This caller acting for `name` (a front end's `userName`); others stay themselves.

        The header, when sent, wins over a body's name: it is what the front end's proxy
        sets from its own sign-in.
        """
        if not self.front_end or name is None or self.acting is not None:
            return self
        return replace(self, acting=acting_name(name, field))


def acting_name(value: str, field: str) -> str:
    """The acting person's name as sent, trimmed; a clear 422 for one that cannot be."""
    name = value.strip()
    if not name or len(name) > ACTING_MAX or not name.isprintable():
        raise ApiError(
            422,
            f"The acting person's name must be 1 to {ACTING_MAX} printable characters",
            details=[{"field": field}],
        )
    return name


class Sessions:
    """Sessions as signed, timestamped cookies, valid while the user's session version is.

    Nothing is stored per session: the cookie carries the user's `session_version`, and
    signing out, a new password, a new role or disabling the user moves that on, which
    ends every cookie issued before (copies included) in every process.
    """

    def __init__(self, secret_key: str) -> None:
        self._session = URLSafeTimedSerializer(secret_key, salt="wa-monitor-session")
        self._login = URLSafeTimedSerializer(secret_key, salt="wa-monitor-login")

    def read(self, request: Request) -> Session | None:
        raw = request.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        try:
            data: Any = self._session.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        user_id, version = data.get("u"), data.get("v")
        # A cookie from before session versions carries none: it is not valid any more.
        if type(user_id) is not int or type(version) is not int:
            return None
        return Session(user_id, str(data.get("c", "")), version)

    def start(self, request: Request, response: Response, user: User) -> Session:
        session = Session(user.id, secrets.token_urlsafe(24), user.session_version)
        value = self._session.dumps(
            {"u": session.user_id, "c": session.csrf, "v": user.session_version}
        )
        _set_cookie(request, response, SESSION_COOKIE, value, SESSION_SECONDS)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return session

    def end(self, request: Request, response: Response) -> None:
        """Sign out: every session of the request's user ends, not only this cookie."""
        session = self.read(request)
        if session is not None:
            store: ReviewStore = request.app.state.store
            name = end_sessions(store, session.user_id, session.version)
            if name is not None:
                log.info(
                    "🔑 %s signed out from %s; their sessions ended", name, client_address(request)
                )
        response.delete_cookie(SESSION_COOKIE, path="/")

    # The sign-in form is protected too: a signed cookie carries the token the form echoes.
    def login_token(self, request: Request) -> str:
        return self.login_cookie_token(request) or secrets.token_urlsafe(24)

    def set_login_cookie(self, request: Request, response: Response, token: str) -> None:
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, self._login.dumps(token), 3600)

    def login_cookie_token(self, request: Request) -> str | None:
        raw = request.cookies.get(LOGIN_CSRF_COOKIE)
        if not raw:
            return None
        try:
            token: Any = self._login.loads(raw, max_age=3600)
        except BadSignature:
            return None
        return token if isinstance(token, str) else None


def _set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def client_address(request: Request) -> str:
    """The address sign-ins are counted against.

    The peer's address, or the one a trusted proxy forwarded (uvicorn rewrites the peer
    only for TRUSTED_PROXIES). One IPv6 host commonly holds a whole /64: it is one
    address here, so rotating through it gains nothing.
    """
    host = request.client.host if request.client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:100] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# -- sign-in throttling ------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """A sign-in let through (`wait` 0) or refused unchecked (`wait` s to try again)."""

    address: str
    account: str
    at: float
    wait: int = 0


class PasswordChecksBusy(Exception):
    """Every password-check slot is taken; the attempt was not checked."""


_Failures = OrderedDict[str, list[tuple[float, str]]]
REPORT_SECONDS = 60.0


def _forget(
    table: _Failures, key: str, match: Callable[[tuple[float, str]], bool], most: int = -1
) -> None:
    """Drop the failures under `key` that `match` (at most `most`; -1: all)."""
    failures = table.get(key)
    if failures is None:
        return
    kept = []
    for failure in failures:
        if most != 0 and match(failure):
            most -= 1
            continue
        kept.append(failure)
    if kept:
        table[key] = kept
    else:
        del table[key]


class LoginThrottle:
    """Failed sign-ins per account and per address, each at most `limit` in `window` s.

    An attempt counts as failed from the moment it is let through, so a burst of
    concurrent attempts cannot all pass the check before the first failure is recorded.
    A success forgets only that account's failures from that address (its user's own
    typos): another address's failures on the account, and the address's failures on
    other accounts, stay until they expire. A refused attempt costs no password hashing.

    Password checks (argon2, ~0.1 s of CPU each) run in `checkers` threads of their own
    at a lower CPU priority, with at most `queue` waiting: a spray of failed sign-ins
    neither takes the request handlers' threads nor the CPU the dashboard's reads need,
    and beyond the queue an attempt is refused at once instead of piling up.
    """

    def __init__(
        self,
        limit: int = 5,
        window: float = 900.0,
        *,
        address_limit: int | None = None,
        checkers: int = 1,
        queue: int = 16,
        max_keys: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.address_limit = address_limit if address_limit is not None else limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        # Per key, its failures in time order: (when, the other half of the pair).
        self._by_address: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()
        self._by_account: OrderedDict[str, list[tuple[float, str]]] = OrderedDict()
        # Per address and per account: when a refusal was last logged, refusals since.
        self._reports: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._slots = checkers + queue
        self._pending = 0
        self._checkers = ThreadPoolExecutor(
            max_workers=checkers, thread_name_prefix="password-check", initializer=_yield_cpu
        )
        # Its idle thread ends with the throttle (an app that is gone), not the process.
        weakref.finalize(self, self._checkers.shutdown, wait=False)

    @staticmethod
    def account_key(username: str) -> str:
        return username.strip().casefold()

    def _wait(self, table: _Failures, key: str, limit: int, now: float) -> float:
        failures = table.get(key)
        if failures is None:
            return 0.0
        failures[:] = [f for f in failures if f[0] > now - self.window]
        if not failures:
            del table[key]
            return 0.0
        if len(failures) < limit:
            return 0.0
        return failures[len(failures) - limit][0] + self.window - now

    def _record(self, table: _Failures, key: str, failure: tuple[float, str]) -> None:
        table.setdefault(key, []).append(failure)
        table.move_to_end(key)
        # Keys are in the order they last failed: the expired ones are at the front. The
        # password checks let through ~10 attempts a second at most, so a full table of
        # unexpired keys (an attacker pushing an account's failures out) takes hours.
        expired = failure[0] - self.window
        while table:
            oldest = next(iter(table.values()))
            if len(table) <= self.max_keys and oldest[-1][0] > expired:
                break
            table.popitem(last=False)

    def attempt(self, address: str, username: str) -> Attempt:
        """Let a sign-in through (counting it as failed until it succeeds), or refuse it."""
        account = self.account_key(username)
        now = self._clock()
        with self._lock:
            wait = max(
                self._wait(self._by_address, address, self.address_limit, now),
                self._wait(self._by_account, account, self.limit, now),
            )
            if wait > 0:
                return Attempt(address, account, now, int(wait) + 1)
            self._record(self._by_address, address, (now, account))
            self._record(self._by_account, account, (now, address))
        return Attempt(address, account, now)

    def refusals_to_log(self, attempt: Attempt) -> int:
        """0 to stay quiet about a refused attempt, else how many refusals from its address
        one log line stands for: at most a line every REPORT_SECONDS per address and per
        account, so refused attempts (which cost no check) cannot flood the log and rotate
        away what came before."""
        keys = (f"address {attempt.address}", f"account {attempt.account}")
        with self._lock:
            due = True
            for key in keys:
                entry = self._reports.get(key)
                if entry is None:
                    entry = self._reports[key] = [-REPORT_SECONDS, 0.0]
                self._reports.move_to_end(key)
                entry[1] += 1
                due = due and attempt.at - entry[0] >= REPORT_SECONDS
            while len(self._reports) > 2 * self.max_keys:
                self._reports.popitem(last=False)
            if not due:
                return 0
            count = int(self._reports[keys[0]][1])
            for key in keys:
                self._reports[key] = [attempt.at, 0.0]
            return count

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: forget this account's failures from this address."""
        with self._lock:
            _forget(self._by_address, attempt.address, lambda f: f[1] == attempt.account)
            _forget(self._by_account, attempt.account, lambda f: f[1] == attempt.address)

    def withdraw(self, attempt: Attempt) -> None:
        """The password could not be checked: this attempt does not count."""
        with self._lock:
            _forget(self._by_address, attempt.address, (attempt.at, attempt.account).__eq__, 1)
            _forget(self._by_account, attempt.account, (attempt.at, attempt.address).__eq__, 1)

    async def check(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a password-check thread; PasswordChecksBusy when all are taken."""
        with self._lock:
            if self._pending >= self._slots:
                raise PasswordChecksBusy
            self._pending += 1
        try:
            future: Future[T] = self._checkers.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        # The slot is freed when the check ends, not when its request goes away.
        future.add_done_callback(lambda _f: self._release())
        return await asyncio.wrap_future(future)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1


# Password checks yield the CPU to request handlers; threads they start inherit this.
_CHECK_NICENESS = 10


def _yield_cpu() -> None:
    try:
        tid = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, now + _CHECK_NICENESS))
    except (AttributeError, OSError):  # not Linux: per-thread priorities are not portable
        pass


@dataclass(frozen=True)
class SignIn:
    """What a sign-in came to: the user, or why not (`retry_after` > 0: not checked)."""

    user: User | None
    retry_after: int = 0
    busy: bool = False


async def sign_in(request: Request, username: str, password: str) -> SignIn:
    """Check a user name and password, throttled per account and per address."""
    throttle: LoginThrottle = request.app.state.throttle
    address = client_address(request)
    attempt = throttle.attempt(address, username)
    if attempt.wait:
        refused = throttle.refusals_to_log(attempt)
        if refused:
            log.warning(
                "🔒 Sign-in refused for %r from %s: too many failures (%d refused from this "
                "address since its last such line)",
                username,
                address,
                refused,
            )
        return SignIn(None, attempt.wait)
    try:
        user = await throttle.check(authenticate, request.app.state.store, username, password)
    except PasswordChecksBusy:
        throttle.withdraw(attempt)
        log.warning("🔒 Sign-in refused for %r from %s: too many at once", username, address)
        return SignIn(None, 5, busy=True)
    except Exception:
        throttle.withdraw(attempt)  # e.g. the database is down: not the user's failure
        raise
    if user is None:
        log.warning("🔑 Failed sign-in for %r from %s", username, address)
        return SignIn(None)
    throttle.succeeded(attempt)
    log.info("🔑 %s (%s) signed in from %s", user.username, user.role, address)
    return SignIn(user)


def identify(request: Request) -> Caller | None:
    """The caller of a request, by API token (Authorization: Bearer) or session cookie.

    Who a token or session belongs to is kept in the app's `accounts` cache: the database
    is asked again once users or tokens change (or after a minute, which keeps the
    token's last use current).
    """
    state = request.app.state
    store: ReviewStore = state.store
    accounts: AnswerCache[Any] = state.accounts
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise ApiError(
                401,
                "Authorization must be `Bearer <API token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        holder: TokenHolder | None = accounts.get(
            ("token", token_hash(secret)), lambda: token_holder(store, secret)
        )
        if holder is None:
            raise ApiError(
                401, "Invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
            )
        acting = request.headers.get(ACTING_HEADER)
        if acting is not None and not holder.front_end:
            raise ApiError(
                403,
                f"Only a front-end token may name the acting person ({ACTING_HEADER}); "
                "create one with `wa-monitor tokens create USER --name NAME --front-end`",
            )
        return Caller(
            holder.user,
            "token",
            None,
            front_end=holder.front_end,
            acting=None if acting is None else acting_name(acting, f"header.{ACTING_HEADER}"),
        )
    sessions: Sessions = state.sessions
    session = sessions.read(request)
    if session is None:
        return None
    user_id = session.user_id
    user = accounts.get(("user", user_id), lambda: get_user(store, user_id))
    if user is None or user.disabled or user.session_version != session.version:
        return None
    return Caller(user, "session", session.csrf)


def require(role: str) -> Callable[[Request], Caller]:
    """A dependency: the caller, who must hold at least `role` (and a CSRF token if a browser)."""

    def dependency(request: Request) -> Caller:
        caller = identify(request)
        if caller is None:
            raise ApiError(
                401, "Sign in, or send an API token", headers={"WWW-Authenticate": "Bearer"}
            )
        if (
            caller.via == "session"
            and request.method not in SAFE_METHODS
            and not same(request.headers.get(CSRF_HEADER), caller.csrf)
        ):
            raise ApiError(403, f"Missing or wrong {CSRF_HEADER} header; reload the page")
        if caller.front_end and role == "admin":
            raise ApiError(
                403, "A front-end token cannot use admin routes; sign in as an admin instead"
            )
        if not caller.user.can(role):
            raise ApiError(
                403, f"This needs the {role} role; {caller.user.username} is a {caller.user.role}"
            )
        request.state.caller = caller
        return caller

    dependency.__name__ = f"require_{role}"
    return dependency


# The roles a route asks for, as parameter types: `def route(caller: Reviewer)`.
Viewer = Annotated[Caller, Depends(require("viewer"))]
Reviewer = Annotated[Caller, Depends(require("reviewer"))]
Admin = Annotated[Caller, Depends(require("admin"))]
