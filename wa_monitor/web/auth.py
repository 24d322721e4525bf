"""Who is asking: signed session cookies with a CSRF token, API tokens, sign-in throttling."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from wa_monitor.store import ReviewStore
from wa_monitor.users import User, get_user, token_hash, user_for_token
from wa_monitor.web.changes import AnswerCache
from wa_monitor.web.envelope import ApiError

SESSION_COOKIE = "wa_monitor_session"
LOGIN_CSRF_COOKIE = "wa_monitor_login"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    user_id: int
    csrf: str


@dataclass(frozen=True)
class Caller:
    user: User
    via: str  # "session" | "token"
    csrf: str | None


class Sessions:
    """Sessions as signed, timestamped cookies (nothing stored server-side)."""

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
        if not isinstance(data, dict) or not isinstance(data.get("u"), int):
            return None
        return Session(int(data["u"]), str(data.get("c", "")))

    def start(self, request: Request, response: Response, user: User) -> Session:
        session = Session(user.id, secrets.token_urlsafe(24))
        value = self._session.dumps({"u": session.user_id, "c": session.csrf})
        _set_cookie(request, response, SESSION_COOKIE, value, SESSION_SECONDS)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return session

    def end(self, response: Response) -> None:
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


class LoginThrottle:
    """At most `limit` failed sign-ins per client address and per user name in `window` s."""

    def __init__(self, limit: int = 5, window: float = 900.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def _prune(self, now: float) -> None:
        # Forget keys whose failures have all expired, so the table stays small.
        if len(self._failures) > 10_000:
            for key in [
                k for k, q in self._failures.items() if not q or q[-1] <= now - self.window
            ]:
                del self._failures[key]

    def retry_after(self, *keys: str) -> int:
        """Seconds until a sign-in may be tried again (0: now)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                q[0] + self.window - now
                for q in (self._recent(k, now) for k in keys)
                if len(q) >= self.limit
            ]
        return int(max(waits)) + 1 if waits else 0

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._prune(now)
            for k in keys:
                self._recent(k, now).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)


def identify(request: Request) -> Caller | None:
    """The caller of a request, by API token (Authorization: Bearer) or session cookie.

    Who a token or session belongs to is kept in the app's `accounts` cache: the database
    is asked again once users or tokens change (or after a minute, which keeps the
    token's last use current).
    """
    state = request.app.state
    store: ReviewStore = state.store
    accounts: AnswerCache[User | None] = state.accounts
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
        user = accounts.get(("token", token_hash(secret)), lambda: user_for_token(store, secret))
        if user is None:
            raise ApiError(
                401, "Invalid or revoked API token", headers={"WWW-Authenticate": "Bearer"}
            )
        return Caller(user, "token", None)
    sessions: Sessions = state.sessions
    session = sessions.read(request)
    if session is None:
        return None
    user_id = session.user_id
    user = accounts.get(("user", user_id), lambda: get_user(store, user_id))
    if user is None or user.disabled:
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
        if not caller.user.can(role):
            raise ApiError(
                403, f"This needs the {role} role; {caller.user.username} is a {caller.user.role}"
            )
        request.state.caller = caller
        return caller

    dependency.__name__ = f"require_{role}"
    return dependency
