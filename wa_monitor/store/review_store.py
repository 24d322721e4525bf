"""The review database (PostgreSQL or SQLite) through SQLAlchemy Core."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError

from wa_monitor.core.errors import (
    ConstraintViolation,
    ForeignSchemaError,
    ReviewDatabaseError,
    ReviewDataError,
    SchemaVersionError,
    UniqueViolation,
)
from wa_monitor.core.masking import mask_url
from wa_monitor.core.reviews import (
    ExistingReview,
    Key,
    Plan,
    Post,
    Reply,
    invalid_replies,
    plan_batch,
)
from wa_monitor.store.drop_list_sql import UNLISTED_SQL
from wa_monitor.store.schema import (
    SCHEMA_HEAD,
    drop_submissions,
    feedback_outbox,
    metadata,
    qa_photo_reviews,
    scan_cursors,
)
from wa_monitor.store.sql import queries

if TYPE_CHECKING:
    # Alembic is imported where migrations run: the service never loads it (~9 MB RSS).
    from alembic.config import Config as AlembicConfig

log = logging.getLogger("wa_monitor")

_MIGRATIONS = "wa_monitor.store:migrations"
_PG_UPGRADE_LOCK = 7_301_115  # advisory lock id: one `db upgrade` at a time


@dataclass(frozen=True)
class Cursor:
    """How far the monitor has read a group in the bridge store."""

    last_rowid: int
    anchor: str | None  # "rowid chat_jid id" of the last row read: tells a re-created store


@dataclass(frozen=True, slots=True)
class DeletedPost:
    """A message deleted in WhatsApp ("delete for everyone"), as the review database keys it."""

    chat_jid: str
    message_id: str  # as drop_submissions.message_id holds it (scan.message_key)
    deleted_at: datetime


class ConcurrentWriter(Exception):
    """Another monitor recorded some of this batch's posts first; retry the batch."""


def engine_url(url: str) -> sa.URL:
    """The SQLAlchemy URL for a settings URL: plain postgresql:// means psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ReviewDatabaseError(
            f"DATABASE_URL {mask_url(url)!r} is not a database URL; "
            "write postgresql://user:password@host/db or sqlite:///path/to/reviews.db"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise ReviewDatabaseError(
            f"DATABASE_URL {mask_url(url)!r}: only PostgreSQL and SQLite are supported"
        )
    return parsed


def create_review_engine(url: str, *, pool_size: int = 5, pre_ping: bool = True) -> Engine:
    """An engine for the review database.

    `pre_ping=False` saves a round trip per checkout: the monitor does without it,
    because a dead connection fails its batch, which is rolled back and retried.
    """
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed, connect_args={"timeout": 30}, json_deserializer=_json_loads
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(
        parsed,
        pool_size=pool_size,
        pool_pre_ping=pre_ping,
        # No server-side prepared statements: preparing costs a round trip of its own,
        # and a batch's statements are cheap to parse (their rows travel as one JSON).
        connect_args={"connect_timeout": 10, "prepare_threshold": None},
        json_deserializer=_json_loads,
    )


@contextmanager
def wrap_exceptions(url: str) -> Iterator[None]:
    """Driver errors raised inside, as the project's own exceptions (see `translate`)."""
    try:
        yield
    except DBAPIError as exc:
        raise translate(exc, url) from exc


def translate(exc: DBAPIError, url: str) -> ReviewDatabaseError:
    """The project's exception for a driver error of the review database at `url`.

    A refused row is not an unreachable database: callers answer them differently, and
    a unique violation names its constraint, the same name on both backends.
    """
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    message = f"review database {mask_url(url)}: {mask_url(reason)}"
    if isinstance(exc, IntegrityError):
        if _is_unique_violation(exc.orig):
            return UniqueViolation(message, constraint=_unique_constraint(exc.orig))
        return ConstraintViolation(message, constraint=_constraint_name(exc.orig))
    if isinstance(exc, DataError):
        return ReviewDataError(message)
    return ReviewDatabaseError(message)


_PG_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE_FAILED = "UNIQUE constraint failed: "


def _is_unique_violation(orig: Any) -> bool:
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return True
    return str(orig).startswith(_SQLITE_UNIQUE_FAILED)


def _constraint_name(orig: Any) -> str | None:
    diag = getattr(orig, "diag", None)  # psycopg's; SQLite names no constraint
    name = getattr(diag, "constraint_name", None)
    return str(name) if name else None


def _unique_constraint(orig: Any) -> str | None:
    """The violated unique constraint's name; on SQLite, from the columns it lists."""
    name = _constraint_name(orig)
    text = str(orig)
    if name or not text.startswith(_SQLITE_UNIQUE_FAILED):
        return name
    # "UNIQUE constraint failed: users.username" (or "t.a, t.b"): look the columns up in
    # the schema and answer PostgreSQL's name for them.
    qualified = [c.strip() for c in text.removeprefix(_SQLITE_UNIQUE_FAILED).split(",")]
    tables = {c.partition(".")[0] for c in qualified}
    table = metadata.tables.get(tables.pop()) if len(tables) == 1 else None
    if table is None:
        return None
    columns = [c.partition(".")[2] for c in qualified]
    if [c.name for c in table.primary_key] == columns:
        return f"{table.name}_pkey"
    for unique in (c for c in table.constraints if isinstance(c, sa.UniqueConstraint)):
        if [c.name for c in unique.columns] == columns:
            # Unnamed (a column's unique=True): PostgreSQL's default name.
            return str(unique.name or f"{table.name}_{'_'.join(columns)}_key")
    for index in table.indexes:
        if index.unique and [c.name for c in index.columns] == columns:
            return str(index.name)
    return None


def _json_loads(text: str | bytes) -> Any:
    """JSON from a review row, with any lone surrogate in it replaced by U+FFFD.

    JSON may spell one (`\\udfff`) and SQLite keeps it, but no answer can carry it: a
    row written so (by an older version, by another tool) must not break every read.
    (PostgreSQL's jsonb refuses them; it hands over bytes, never escaped surrogates.)
    """
    value = json.loads(text)
    if isinstance(text, str) and ("\\ud" in text or "\\uD" in text):
        value = _valid_unicode(value)
    return value


def _valid_unicode(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, list):
        return [_valid_unicode(v) for v in value]
    if isinstance(value, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    return value


def _sqlite_text(data: bytes) -> str:
    # Text another tool stored as bytes that are not UTF-8 is read with replacement
    # characters rather than failing the whole query.
    return data.decode("utf-8", "replace")


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when transactions begin (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    dbapi_conn.text_factory = _sqlite_text
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front, so two writers queue on the busy timeout
    # instead of failing when a read transaction tries to become a write.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# The batch's statements are in wa_monitor/store/sql/batch_*.sql. Each takes all its rows as
# one JSON parameter, so its text (and plan) is the same for 1 drop or 5,000.
_EXISTING_COLUMNS = (
    "project", "drop_number", "id", "whatsapp_message_date", "last_message_date",
    "user_name", "submitted_by", "incomplete", "feedback_sent", "comment",
)  # fmt: skip


@dataclass(frozen=True)
class _BatchSQL:
    """The statements recording a batch, in one dialect, and how values become JSON."""

    existing: sa.TextualSelect  # :rows = [{project, drop_number}], typed as the table's
    log_submissions: sa.TextClause  # RETURNING the logged (chat_jid, message_id, drop_number)
    encode: Callable[[Any], Any]

    def dumps(self, rows: Sequence[Mapping[str, Any]]) -> str:
        return json.dumps(rows, default=self.encode, ensure_ascii=False)

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
        return {"rows": self.dumps(rows)}


def _pg_encode(value: Any) -> Any:
    # Aware instants keep their offset and microseconds; PostgreSQL reads these forms.
    if isinstance(value, (datetime, date, uuid.UUID)):  # a tuple: faster than a union
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _sqlite_encode(value: Any) -> Any:
    # Exactly what SQLAlchemy stores on SQLite (UTCDateTime, Date, Uuid), so rows written
    # either way compare and sort the same.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given for an instant column")
        utc = value.astimezone(UTC).replace(tzinfo=None)
        return utc.isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return value.hex
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _existing_query(text: str, unlisted: str) -> sa.TextualSelect:
    """The batch's existing reviews and, in the same statement (round trip), its keys that
    are off their project's drop list: rows whose `unlisted` is true hold only the key."""
    columns = ", ".join(_EXISTING_COLUMNS)
    nulls = ", ".join("NULL" for _ in _EXISTING_COLUMNS[2:])
    # The package's own constant statements, composed once at import: no value in them.
    combined = (
        f"WITH existing AS (\n{text}\n), unlisted AS (\n{unlisted}\n)\n"  # noqa: S608
        f"SELECT {columns}, false AS unlisted FROM existing\n"
        f"UNION ALL SELECT project, drop_number, {nulls}, true FROM unlisted"
    )
    # Typed result columns: instants and ids are read back as the table's own types do.
    typed = [qa_photo_reviews.c[c] for c in _EXISTING_COLUMNS]
    return sa.text(combined).columns(*typed, sa.column("unlisted", sa.Boolean))


_PG_QUERIES = queries("batch_postgresql.sql")
_PG = _BatchSQL(
    existing=_existing_query(_PG_QUERIES["existing_reviews"], UNLISTED_SQL["postgresql"]),
    log_submissions=sa.text(_PG_QUERIES["log_submissions"]),
    encode=_pg_encode,
)
# :cursors, :submissions, :expected, :updates, :inserts: a batch's writes in one statement.
_PG_RECORD = sa.text(_PG_QUERIES["record_batch"])
# :updates, :inserts: the reviews, after a re-delivered message kept _PG_RECORD from them.
_PG_WRITE_REVIEWS = sa.text(_PG_QUERIES["write_reviews"])

_SQLITE_QUERIES = queries("batch_sqlite.sql")
_SQLITE = _BatchSQL(
    existing=_existing_query(_SQLITE_QUERIES["existing_reviews"], UNLISTED_SQL["sqlite"]),
    log_submissions=sa.text(_SQLITE_QUERIES["log_submissions"]),
    encode=_sqlite_encode,
)
_SQLITE_INSERT_REVIEWS = sa.text(_SQLITE_QUERIES["insert_reviews"])
_SQLITE_UPDATE_REVIEWS = sa.text(_SQLITE_QUERIES["update_reviews"])


# Keys per `IN (...)` of the deletion statements: well below every driver's parameter limit.
_KEYS_PER_STATEMENT = 400


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _batch_sql(conn: Connection) -> _BatchSQL:
    return _PG if conn.dialect.name == "postgresql" else _SQLITE


class ReviewStore:
    """The review database: schema, cursors and the atomic recording of a scan batch."""

    def __init__(self, url: str, *, engine: Engine | None = None, pre_ping: bool = True) -> None:
        self.url = url
        self.engine = engine or create_review_engine(url, pre_ping=pre_ping)
        # Reads on PostgreSQL skip BEGIN and COMMIT: two round trips of three for a query.
        self._reader = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else None
        )

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close the engine's connections; safe to call twice."""
        self.engine.dispose()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, with driver errors translated (`translate`)."""
        with wrap_exceptions(self.url), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading, with driver errors translated (`translate`).

        On PostgreSQL it runs in autocommit: each statement sees what was committed when
        it started, and no BEGIN or COMMIT travels to the server. Callers whose statements
        must share one snapshot use `begin()`. On SQLite (no wire) it is a transaction.
        """
        if self._reader is None:
            with self.begin() as conn:
                yield conn
            return
        with wrap_exceptions(self.url), self._reader.connect() as conn:
            yield conn

    def ping(self) -> None:
        with self.begin() as conn:
            conn.execute(sa.text("SELECT 1"))

    def check_writable(self) -> None:
        """Raise ReviewDatabaseError unless the database would take a write now.

        An UPDATE of no row: refused like any write by a read-only transaction
        (default_transaction_read_only, a hot standby), a missing privilege or a read-only
        SQLite file, yet it changes nothing and writes no WAL.
        """
        with self.begin() as conn:
            conn.execute(sa.update(qa_photo_reviews).where(sa.false()).values(comment=None))

    # -- schema -----------------------------------------------------------------------

    def _alembic(self) -> AlembicConfig:
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", _MIGRATIONS)
        return cfg

    def schema_revision(self) -> str | None:
        """The Alembic revision recorded in the database (None: no schema yet).

        Raises ForeignSchemaError when `alembic_version` is not the one-column, one-row
        table WA Monitor's migrations keep (another application's, or edited by hand).
        """
        with self.begin() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table("alembic_version"):
                return None
            columns = [c["name"] for c in inspector.get_columns("alembic_version")]
            if columns != ["version_num"]:
                raise ForeignSchemaError(
                    f"the review database {self.masked_url} has a table alembic_version with "
                    f"the columns ({', '.join(columns)}), not Alembic's (version_num): it "
                    "belongs to another application. Point DATABASE_URL at WA Monitor's own "
                    "database (or an empty one, then run `wa-monitor db upgrade`)"
                )
            rows = [
                str(r)
                for r in conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            ]
        if len(rows) > 1:
            raise ForeignSchemaError(
                f"the review database {self.masked_url} records {len(rows)} schema revisions "
                f"({', '.join(sorted(rows))}) in alembic_version; WA Monitor's migrations keep "
                "exactly one. Another Alembic-managed application shares this database, or "
                "the table was edited: give WA Monitor its own database (DATABASE_URL), or "
                "leave only WA Monitor's revision in alembic_version"
            )
        return rows[0] if rows else None

    def _known_revisions(self) -> set[str]:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic())
        return {rev.revision for rev in script.walk_revisions()}

    def _refuse_unknown(self, current: str) -> None:
        if current not in self._known_revisions():
            raise ForeignSchemaError(
                f"the review database {self.masked_url} is at schema revision {current!r}, "
                f"which this version of WA Monitor does not know (it needs {SCHEMA_HEAD}): "
                "either a newer WA Monitor upgraded it (upgrade this installation) or "
                "another application's migrations wrote it (check DATABASE_URL)"
            )

    def check_schema(self) -> None:
        """Refuse a schema this version does not know, saying what to run."""
        current = self.schema_revision()
        if current == SCHEMA_HEAD:
            return
        if current is None:
            raise SchemaVersionError(
                f"the review database {self.masked_url} has no WA Monitor schema; "
                "run `wa-monitor db upgrade` first"
            )
        self._refuse_unknown(current)
        raise SchemaVersionError(
            f"the review database {self.masked_url} is at schema revision {current}, "
            f"this version of WA Monitor needs {SCHEMA_HEAD}: run `wa-monitor db upgrade`"
        )

    def upgrade(self) -> tuple[str | None, str]:
        """Create or upgrade the schema to the head revision; returns (before, after)."""
        if self.dialect == "sqlite":
            self._ensure_sqlite_dir()
        before = self.schema_revision()
        if before is not None:
            self._refuse_unknown(before)  # before Alembic, whose own error is a traceback
        cfg = self._alembic()
        with self.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_UPGRADE_LOCK})
            cfg.attributes["connection"] = conn
            from alembic import command
            from alembic.util import CommandError

            try:
                command.upgrade(cfg, "head")
            except CommandError as exc:  # its revision records changed under us
                raise ForeignSchemaError(
                    f"the review database {self.masked_url}: Alembic refused the upgrade "
                    f"({exc}); check what alembic_version holds"
                ) from None
        return before, SCHEMA_HEAD

    def _ensure_sqlite_dir(self) -> None:
        database = self.engine.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)

    # -- cursors ----------------------------------------------------------------------

    def load_cursors(self) -> dict[str, Cursor]:
        with self.begin() as conn:
            rows = conn.execute(
                sa.select(scan_cursors.c.chat_jid, scan_cursors.c.last_rowid, scan_cursors.c.anchor)
            ).all()
        return {jid: Cursor(int(rowid), anchor) for jid, rowid, anchor in rows}

    # -- recording --------------------------------------------------------------------

    def record_batch(
        self,
        posts: Sequence[Post],
        cursors: Mapping[str, Cursor],
        zone: tzinfo,
        *,
        attempts: int = 3,
        auto_reply: Collection[str] = (),
        deletions: Sequence[DeletedPost] = (),
    ) -> Plan:
        """Record a batch's posts and deletions and advance its cursors in one transaction.

        A constant number of statements whatever the number of posts: select the
        affected reviews, look their numbers up in the projects' drop lists, log the
        submissions (idempotent on chat, message and drop), insert new reviews, update
        resubmitted ones, upsert the cursors. A new drop whose number is off its
        project's list is recorded invalid, and for the projects in `auto_reply` each
        such post gets one reply queued in the feedback outbox (its request key makes it
        once, whatever re-scans and monitors record the post again).

        `deletions` are marked on their posts after the batch's posts are recorded (see
        `_mark_deleted`): a post and its deletion read in one batch end up flagged.
        """
        for attempt in range(attempts):
            try:
                with self.begin() as conn:
                    plan = self._record(conn, posts, cursors, zone, auto_reply)
                    self._mark_deleted(conn, deletions)
                    return plan
            except (ConcurrentWriter, UniqueViolation):
                if attempt == attempts - 1:
                    raise ReviewDatabaseError(
                        "another monitor keeps recording the same drops; gave up after "
                        f"{attempts} attempts (is a second monitor scanning this database?)"
                    ) from None
        raise AssertionError("unreachable")

    def _record(
        self,
        conn: Connection,
        posts: Sequence[Post],
        cursors: Mapping[str, Cursor],
        zone: tzinfo,
        auto_reply: Collection[str] = (),
    ) -> Plan:
        now = datetime.now(UTC)
        plan = Plan()
        sql = _batch_sql(conn)
        on_pg = conn.dialect.name == "postgresql"
        cursor_rows = [
            {"chat_jid": jid, "last_rowid": c.last_rowid, "anchor": c.anchor, "updated_at": now}
            for jid, c in cursors.items()
        ]
        cursors_saved = reviews_saved = False
        if posts:
            existing, invalid = self._existing(conn, {p.key for p in posts})
            plan = plan_batch(posts, existing, zone, now, invalid)
            if on_pg and cursor_rows:
                params = {
                    "cursors": sql.dumps(cursor_rows),
                    "submissions": sql.dumps(plan.submissions),
                    "expected": len(plan.submissions),
                    "inserts": sql.dumps(plan.inserts),
                    "updates": sql.dumps(plan.updates),
                }
                result = conn.execute(_PG_RECORD, params)
                logged = {(r[0], r[1], r[2]) for r in result.all()}
                cursors_saved = True
                reviews_saved = len(logged) == len(plan.submissions)  # `complete` in SQL
            else:
                logged = self._log_submissions(conn, plan.submissions)
            if len(logged) != len(plan.submissions):
                # Some were in the log already (a re-delivery): plan again without them.
                # Posts the plan left out (captioned photos of a known drop) stay in: the
                # new plan leaves them out again.
                planned = {
                    (s["chat_jid"], s["message_id"], s["drop_number"]) for s in plan.submissions
                }
                repeated = [p for p in posts if p.log_key in planned and p.log_key not in logged]
                unknown = {p.log_key for p in repeated if p.key not in existing}
                if unknown - self._renumbered(conn, unknown):
                    raise ConcurrentWriter
                fresh = [p for p in posts if p.log_key in logged or p.log_key not in planned]
                plan = plan_batch(fresh, existing, zone, now, invalid)
            if reviews_saved:
                pass
            elif on_pg and (plan.inserts or plan.updates):
                params = {"inserts": sql.dumps(plan.inserts), "updates": sql.dumps(plan.updates)}
                conn.execute(_PG_WRITE_REVIEWS, params)
            else:
                if plan.inserts:
                    conn.execute(_SQLITE_INSERT_REVIEWS, sql.rows(plan.inserts))
                if plan.updates:
                    conn.execute(_SQLITE_UPDATE_REVIEWS, sql.rows(plan.updates))
            if invalid:
                self._mark_invalid(conn, [i["id"] for i in plan.inserts if i["invalid"]])
                replies = invalid_replies(plan, existing, invalid, auto_reply, now)
                self._queue_replies(conn, replies, now)
        if cursor_rows and not cursors_saved:
            self._save_cursors(conn, cursor_rows)
        return plan

    def _mark_deleted(self, conn: Connection, deletions: Sequence[DeletedPost]) -> None:
        """Mark the deleted posts; flag each review whose every post is now deleted.

        Idempotent: a post keeps the time its deletion was first recorded, and a review
        is written only when its flag changes (a re-scan writes nothing). The flag is
        worked out from the whole log of the drop's posts, so the order in which posts
        and deletions arrive does not matter.
        """
        if not deletions:
            return
        s = drop_submissions
        latest: dict[tuple[str, str], datetime] = {}
        for d in deletions:
            key = (d.chat_jid, d.message_id)
            latest[key] = min(latest.get(key, d.deleted_at), d.deleted_at)
        conn.execute(
            sa.update(s)
            .where(
                s.c.chat_jid == sa.bindparam("b_chat"),
                s.c.message_id == sa.bindparam("b_message"),
                s.c.deleted_at.is_(None),
            )
            .values(deleted_at=sa.bindparam("b_at")),
            [{"b_chat": c, "b_message": m, "b_at": at} for (c, m), at in latest.items()],
        )
        drops: set[tuple[str, str]] = set()
        for chunk in _chunks(sorted(latest), _KEYS_PER_STATEMENT):
            found = conn.execute(
                sa.select(s.c.project, s.c.drop_number)
                .where(sa.tuple_(s.c.chat_jid, s.c.message_id).in_(chunk))
                .distinct()
            ).all()
            drops.update((r[0], r[1]) for r in found)
        live = sa.func.sum(sa.case((s.c.deleted_at.is_(None), 1), else_=0))
        t = qa_photo_reviews
        for chunk in _chunks(sorted(drops), _KEYS_PER_STATEMENT):
            rows = conn.execute(
                sa.select(s.c.project, s.c.drop_number, live, sa.func.max(s.c.deleted_at))
                .where(sa.tuple_(s.c.project, s.c.drop_number).in_(chunk))
                .group_by(s.c.project, s.c.drop_number)
            ).all()
            for project, drop_number, left, last in rows:
                same = (t.c.project == project, t.c.drop_number == drop_number)
                if int(left or 0) == 0 and last is not None:
                    done = conn.execute(
                        sa.update(t)
                        .where(*same, t.c.post_deleted_at.is_(None))
                        .values(post_deleted_at=last)
                    )
                    if done.rowcount:
                        log.info(
                            "🗑️ %s in %s: its post was deleted in WhatsApp", drop_number, project
                        )
                elif int(left or 0) > 0:
                    conn.execute(
                        sa.update(t)
                        .where(*same, t.c.post_deleted_at.is_not(None))
                        .values(post_deleted_at=None)
                    )

    def _mark_invalid(self, conn: Connection, ids: list[uuid.UUID]) -> None:
        # The batch's insert statements know nothing of lists: the flag follows them.
        if ids:
            t = qa_photo_reviews
            conn.execute(sa.update(t).where(t.c.id.in_(ids)).values(invalid=True))

    def _queue_replies(self, conn: Connection, replies: list[Reply], now: datetime) -> None:
        """Queue the replies; one whose request key is queued already is left alone."""
        if not replies:
            return
        stmt = _insert(conn, feedback_outbox).on_conflict_do_nothing(index_elements=["request_key"])
        rows = [
            {
                "review_id": r.review_id,
                "drop_number": r.drop_number,
                "project": r.project,
                "recipient": r.recipient,
                "message": r.message,
                "request_key": r.request_key,
                "status": "pending",  # feedback/outbox.PENDING: the sender takes it from here
                "attempts": 0,
                "next_attempt_at": now,
                "requested_by": "monitor",
                "created_at": now,
            }
            for r in replies
        ]
        conn.execute(stmt, rows)

    def _existing(
        self, conn: Connection, keys: set[Key]
    ) -> tuple[dict[Key, ExistingReview], set[Key]]:
        """The batch's existing reviews, and its keys that are off their project's list."""
        sql = _batch_sql(conn)
        keys_json = sql.rows([{"project": p, "drop_number": d} for p, d in sorted(keys)])
        existing: dict[Key, ExistingReview] = {}
        unlisted: set[Key] = set()
        for row in conn.execute(sql.existing, keys_json):
            key = (row.project, row.drop_number)
            if row.unlisted:
                unlisted.add(key)
                continue
            existing[key] = ExistingReview(
                id=row.id,
                whatsapp_message_date=row.whatsapp_message_date,
                last_message_date=row.last_message_date,
                user_name=row.user_name,
                submitted_by=row.submitted_by,
                incomplete=bool(row.incomplete),
                feedback_sent=row.feedback_sent,
                comment=row.comment,
            )
        return existing, unlisted

    def _renumbered(
        self, conn: Connection, keys: set[tuple[str, str, str]]
    ) -> set[tuple[str, str, str]]:
        """The logged posts among `keys` whose number a reviewer corrected since: their
        review has the new number, so re-reading them is no concurrent writer's doing."""
        if not keys:
            return set()
        t = drop_submissions
        found = conn.execute(
            sa.select(t.c.chat_jid, t.c.message_id, t.c.drop_number).where(
                t.c.kind == "renumbered",
                t.c.message_id.in_(sorted({k[1] for k in keys})),
            )
        ).all()
        return {(r[0], r[1], r[2]) for r in found} & keys

    def _log_submissions(
        self, conn: Connection, rows: list[dict[str, Any]]
    ) -> set[tuple[str, str, str]]:
        sql = _batch_sql(conn)
        result = conn.execute(sql.log_submissions, sql.rows(rows))
        return {(r[0], r[1], r[2]) for r in result.all()}

    def _save_cursors(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        t = scan_cursors
        stmt = _insert(conn, t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["chat_jid"],
            set_={
                "last_rowid": stmt.excluded.last_rowid,
                "anchor": stmt.excluded.anchor,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        conn.execute(stmt, rows)

    # -- reading (the demo's summary) ------------------------------------------------

    def reviews(self) -> list[dict[str, Any]]:
        """Every review, in (project, drop) order."""
        t = qa_photo_reviews
        with self.begin() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.project, t.c.drop_number)).mappings()
            return [dict(r) for r in rows]
