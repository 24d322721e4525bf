"""Dashboard users (argon2-hashed passwords, roles) and API tokens for machine clients."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from wa_monitor.core.errors import ReviewDatabaseError, UniqueViolation, WaMonitorError
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import api_tokens, config_audit, users

# Ordered by power: each role may do what the roles before it may.
ROLES: tuple[str, ...] = ("viewer", "reviewer", "admin")
TOKEN_PREFIX = "wam_"
_USERNAME = re.compile(r"[A-Za-z0-9._@\-]{1,100}")
MIN_PASSWORD = 8
# api_tokens.last_used_at is kept to this many seconds (written at most once per period).
LAST_USED_RESOLUTION = 60

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so a wrong name costs as long as a
    # wrong password (no user enumeration by timing).
    return _hasher.hash(secrets.token_urlsafe(16))


class UserError(WaMonitorError):
    """A user or token operation was refused (unknown user, bad role, weak password…)."""


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    disabled: bool
    created_at: datetime | None = None
    last_login_at: datetime | None = None
    # A session cookie is valid only while it carries this number (see web/auth.py).
    session_version: int = 0

    def can(self, role: str) -> bool:
        """Whether this user has at least `role`."""
        return not self.disabled and ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True)
class ApiToken:
    id: int
    username: str
    name: str
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    # A front end's token: may name the acting person, never reaches admin routes.
    front_end: bool = False


@dataclass(frozen=True)
class TokenHolder:
    """Who an API token speaks for: its user, and whether it is a front end's token."""

    user: User
    front_end: bool


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
    return role


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must be at least {MIN_PASSWORD} characters long")
    return _hasher.hash(password)


def _user(row: sa.Row[tuple[object, ...]] | sa.RowMapping) -> User:
    m = row._mapping if isinstance(row, sa.Row) else row
    return User(
        id=int(m["id"]),
        username=str(m["username"]),
        role=str(m["role"]),
        disabled=bool(m["disabled"]),
        created_at=m["created_at"],
        last_login_at=m["last_login_at"],
        session_version=int(m["session_version"]),
    )


_USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.role,
    users.c.disabled,
    users.c.created_at,
    users.c.last_login_at,
    users.c.session_version,
)
# Ends every session of the user the statement updates, in every process.
_NEXT_SESSION_VERSION = users.c.session_version + 1


def add_user(store: ReviewStore, username: str, password: str, role: str) -> User:
    if not _USERNAME.fullmatch(username):
        raise UserError(
            f"user name {username!r} is not allowed; use letters, digits and . _ @ - (≤ 100)"
        )
    check_role(role)
    hashed = hash_password(password)
    now = datetime.now(UTC)
    try:
        with store.begin() as conn:
            new_id = conn.execute(
                sa.insert(users)
                .values(
                    username=username,
                    password_hash=hashed,
                    role=role,
                    disabled=False,
                    created_at=now,
                )
                .returning(users.c.id)
            ).scalar_one()
    except UniqueViolation:
        raise UserError(f"user {username!r} already exists") from None
    return User(int(new_id), username, role, False, now, None)


def list_users(store: ReviewStore) -> list[User]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(*_USER_COLUMNS).order_by(users.c.username)).all()
    return [_user(r) for r in rows]


def get_user(store: ReviewStore, user_id: int) -> User | None:
    with store.read() as conn:
        row = conn.execute(sa.select(*_USER_COLUMNS).where(users.c.id == user_id)).first()
    return _user(row) if row is not None else None


def _update_user(store: ReviewStore, username: str, **values: object) -> User:
    with store.begin() as conn:
        row = conn.execute(
            sa.update(users)
            .where(users.c.username == username)
            .values(**values)
            .returning(*_USER_COLUMNS)
        ).first()
    if row is None:
        raise UserError(f"no user {username!r}; see `wa-monitor users list`")
    return _user(row)


def set_role(store: ReviewStore, username: str, role: str) -> User:
    """Change the role; a different role ends the user's sessions (they sign in again)."""
    check_role(role)
    return _update_user(
        store,
        username,
        role=role,
        session_version=sa.case(
            (users.c.role != role, _NEXT_SESSION_VERSION), else_=users.c.session_version
        ),
    )


def set_disabled(store: ReviewStore, username: str, disabled: bool = True) -> User:
    """Disable (ending the user's sessions) or enable a user; enabling revives no session."""
    if not disabled:
        return _update_user(store, username, disabled=False)
    return _update_user(store, username, disabled=True, session_version=_NEXT_SESSION_VERSION)


def set_password(store: ReviewStore, username: str, password: str) -> User:
    """Set the password and end the user's sessions: a copied cookie stops working."""
    return _update_user(
        store,
        username,
        password_hash=hash_password(password),
        session_version=_NEXT_SESSION_VERSION,
    )


# The audit of account changes shares config_audit with the projects file's: this source,
# the user name as the path, a one-line description (never a password) as the diff.
AUDIT_SOURCE = "users"


@dataclass(frozen=True)
class UserChange:
    at: datetime
    actor: str
    username: str
    change: str


def record_change(store: ReviewStore, actor: str, username: str, change: str) -> None:
    """Record who changed which account, and how, so an admin can answer for it later."""
    with store.begin() as conn:
        conn.execute(
            sa.insert(config_audit).values(
                at=datetime.now(UTC),
                actor=actor[:100],
                source=AUDIT_SOURCE,
                path=username[:500],
                diff=change,
            )
        )


def recent_changes(store: ReviewStore, limit: int = 50) -> list[UserChange]:
    """The latest account changes, newest first."""
    t = config_audit
    query = (
        sa.select(t.c.at, t.c.actor, t.c.path, t.c.diff)
        .where(t.c.source == AUDIT_SOURCE)
        .order_by(t.c.id.desc())
        .limit(limit)
    )
    with store.begin() as conn:
        rows = conn.execute(query).all()
    return [UserChange(r.at, r.actor, r.path or "", r.diff or "") for r in rows]


def end_sessions(store: ReviewStore, user_id: int, version: int) -> str | None:
    """End every session of a user still at `version` (signing out); their name, or None
    when that version was no longer current (nothing to end)."""
    with store.begin() as conn:
        name = conn.execute(
            sa.update(users)
            .where(users.c.id == user_id, users.c.session_version == version)
            .values(session_version=_NEXT_SESSION_VERSION)
            .returning(users.c.username)
        ).scalar()
    return str(name) if name is not None else None


def authenticate(store: ReviewStore, username: str, password: str) -> User | None:
    """The enabled user with this name and password, else None (in constant-ish time)."""
    with store.begin() as conn:
        row = conn.execute(
            sa.select(*_USER_COLUMNS, users.c.password_hash).where(users.c.username == username)
        ).first()
    stored = str(row.password_hash) if row is not None else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    now = datetime.now(UTC)
    values: dict[str, object] = {"last_login_at": now}
    if _hasher.check_needs_rehash(stored):
        values["password_hash"] = _hasher.hash(password)
    with store.begin() as conn:
        conn.execute(sa.update(users).where(users.c.id == row.id).values(**values))
    return User(
        int(row.id),
        str(row.username),
        str(row.role),
        False,
        row.created_at,
        now,
        int(row.session_version),
    )


# -- API tokens -------------------------------------------------------------------------


def token_hash(token: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    store: ReviewStore, username: str, name: str, *, front_end: bool = False
) -> tuple[ApiToken, str]:
    """A new API token for `username`; returns it and its secret (shown once).

    A front-end token (`front_end`) is for a front end that forwards its own signed-in
    people's requests: they may name the acting person, and admin routes refuse them.
    """
    if not name.strip() or len(name) > 100:
        raise UserError("the token needs a name of 1 to 100 characters, e.g. `reporting`")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with store.begin() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.username == username)).scalar()
        if user_id is None:
            raise UserError(f"no user {username!r}; see `wa-monitor users list`")
        token_id = conn.execute(
            sa.insert(api_tokens)
            .values(
                user_id=user_id,
                name=name,
                token_hash=token_hash(secret),
                created_at=now,
                front_end=front_end,
            )
            .returning(api_tokens.c.id)
        ).scalar_one()
    return ApiToken(int(token_id), username, name, now, None, None, front_end), secret


def list_tokens(store: ReviewStore) -> list[ApiToken]:
    t, u = api_tokens, users
    with store.begin() as conn:
        rows = conn.execute(
            sa.select(
                t.c.id,
                u.c.username,
                t.c.name,
                t.c.created_at,
                t.c.last_used_at,
                t.c.revoked_at,
                t.c.front_end,
            )
            .join(u, u.c.id == t.c.user_id)
            .order_by(t.c.id)
        ).all()
    return [ApiToken(int(r[0]), r[1], r[2], r[3], r[4], r[5], bool(r[6])) for r in rows]


def revoke_token(store: ReviewStore, token_id: int) -> None:
    with store.begin() as conn:
        result = conn.execute(
            sa.update(api_tokens)
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    if result.rowcount == 0:
        raise UserError(f"no active API token #{token_id}; see `wa-monitor tokens list`")


def user_for_token(store: ReviewStore, secret: str) -> User | None:
    """The enabled user an unrevoked API token belongs to, else None."""
    holder = token_holder(store, secret)
    return None if holder is None else holder.user


def token_holder(store: ReviewStore, secret: str) -> TokenHolder | None:
    """The enabled user an unrevoked API token belongs to, and the token's kind; else None."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    t, u = api_tokens, users
    with store.read() as conn:
        row = conn.execute(
            sa.select(t.c.id.label("token_id"), t.c.last_used_at, t.c.front_end, *_USER_COLUMNS)
            .join(u, u.c.id == t.c.user_id)
            .where(t.c.token_hash == token_hash(secret), t.c.revoked_at.is_(None))
        ).first()
    if row is None or row.disabled:
        return None
    # At most one write a minute per token: concurrent requests must not queue on the
    # token's row lock (and a commit) just to move this timestamp by milliseconds.
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=LAST_USED_RESOLUTION)
    if row.last_used_at is None or row.last_used_at < stale:
        try:
            with store.begin() as conn:
                conn.execute(
                    sa.update(t)
                    .where(
                        t.c.id == row.token_id,
                        sa.or_(t.c.last_used_at.is_(None), t.c.last_used_at < stale),
                    )
                    .values(last_used_at=now)
                )
        except ReviewDatabaseError:
            # Only bookkeeping: a database that refuses writes (read-only, a standby)
            # must still let token holders read.
            pass
    return TokenHolder(_user(row), bool(row.front_end))
