"""Each project's list of valid drop numbers: replaced whole by an import, read by the monitor.

A project without a list validates nothing: every drop is valid. With one, a review whose
number is not on it is `invalid`; an import sets that for the project's reviews in the
same transaction that replaces the list, so the dashboard never sees a list and flags
that disagree.

A person may mark a review invalid by hand (review_edits action `invalidate`, see
store/manual_drops). A list that holds its number makes it valid again (that is what the
list says; recorded as `validate` under the importer); a list without it, or a project's
list removed, leaves it invalid.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.store.drop_list_sql import unlisted
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import (
    drop_list_imports,
    drop_lists,
    drop_submissions,
    qa_photo_reviews,
    review_edits,
)

# Numbers per statement, sent as one JSON array: two round trips for 100,000.
CHUNK = 50_000
_PG_IMPORT_LOCK = 7_301_116  # advisory lock class: one import per project at a time


@dataclass(frozen=True)
class ImportResult:
    project: str
    added: int
    removed: int
    total: int
    changed: int  # reviews whose validity the import changed


@dataclass(frozen=True)
class ListInfo:
    project: str
    total: int
    imported_at: datetime | None
    imported_by: str | None
    filename: str | None


def _pg_numbers(numbers: Sequence[str]) -> Any:
    array = sa.literal(list(numbers), sa.JSON)  # the JSON type sends it as json
    return sa.func.json_array_elements_text(array).column_valued("value")


def _sqlite_numbers(numbers: Sequence[str]) -> Any:
    return sa.func.json_each(json.dumps(list(numbers))).table_valued("value").c.value


# A column of the numbers, unnested from one JSON parameter (by backend: SQLite, PostgreSQL).
_JSON_NUMBERS = (_sqlite_numbers, _pg_numbers)


def json_numbers(conn: Connection, numbers: Sequence[str]) -> Any:
    """A column of `numbers`, sent as one parameter whatever their count."""
    return _JSON_NUMBERS[conn.dialect.name == "postgresql"](numbers)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class NoList(LookupError):
    """The project has no list to amend (adding numbers would invalidate all others)."""


def replace(
    store: ReviewStore,
    project: str,
    numbers: Iterable[str],
    *,
    actor: str,
    filename: str | None = None,
) -> ImportResult:
    """Make `numbers` the project's list, in one transaction, and re-judge its reviews.

    Args:
        numbers: normalised drop numbers (see core/drop_lists); duplicates count once. An
            empty list removes the project's list: its drops are all valid again, but
            those a person marked invalid.
        actor, filename: recorded in drop_list_imports.

    Returns:
        How many numbers were added and removed, the list's size, and how many reviews
        changed between valid and invalid.
    """
    wanted = set(numbers)
    return _change(store, project, lambda _current: wanted, actor=actor, filename=filename)


def amend(
    store: ReviewStore,
    project: str,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    actor: str,
    filename: str | None = None,
) -> ImportResult:
    """Add numbers to the project's list and take others off it, audited as an import.

    Raises NoList when the project has no list, or would be left without one: a list of
    a few numbers would make every other drop of the project invalid.
    """
    adding, removing = set(add), set(remove)

    def wanted(current: set[str]) -> set[str]:
        result = (current | adding) - removing
        if not current or not result:
            raise NoList(project)
        return result

    return _change(store, project, wanted, actor=actor, filename=filename)


def _change(
    store: ReviewStore,
    project: str,
    wanted_of: Callable[[set[str]], set[str]],
    *,
    actor: str,
    filename: str | None,
) -> ImportResult:
    with store.begin() as conn:
        lock_project(conn, project)
        return change_list(conn, project, wanted_of, actor=actor, filename=filename)


def lock_project(conn: Connection, project: str) -> None:
    """Serialise the transactions that change a project's list or its validity (PostgreSQL;
    SQLite's BEGIN IMMEDIATE serialises every writer)."""
    if conn.dialect.name == "postgresql":
        # Two imports of one project at once would both insert the same numbers.
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(:k, hashtext(:p))"),
            {"k": _PG_IMPORT_LOCK, "p": project},
        )


def has_list(conn: Connection, project: str) -> bool:
    t = drop_lists
    found = conn.execute(sa.select(t.c.drop_number).where(t.c.project == project).limit(1))
    return found.first() is not None


def change_list(
    conn: Connection,
    project: str,
    wanted_of: Callable[[set[str]], set[str]],
    *,
    actor: str,
    filename: str | None = None,
) -> ImportResult:
    """`_change` inside the caller's transaction, which holds `lock_project`."""
    now = datetime.now(UTC)
    t = drop_lists
    current = set(conn.execute(sa.select(t.c.drop_number).where(t.c.project == project)).scalars())
    wanted = wanted_of(current)
    added = sorted(wanted - current)
    removed = sorted(current - wanted)
    numbers_of = _JSON_NUMBERS[conn.dialect.name == "postgresql"]
    for chunk in _chunks(removed, CHUNK):
        conn.execute(
            sa.delete(t).where(
                t.c.project == project, t.c.drop_number.in_(sa.select(numbers_of(chunk)))
            )
        )
    for chunk in _chunks(added, CHUNK):
        rows = sa.select(
            sa.literal(project), numbers_of(chunk), sa.literal(now, t.c.imported_at.type)
        )
        conn.execute(sa.insert(t).from_select(["project", "drop_number", "imported_at"], rows))
    changed = _judge(conn, project, listed=bool(wanted), now=now, actor=actor)
    conn.execute(
        sa.insert(drop_list_imports).values(
            project=project,
            actor=actor[:100],
            filename=filename[:255] if filename else None,
            added=len(added),
            removed=len(removed),
            total=len(wanted),
            at=now,
        )
    )
    return ImportResult(project, len(added), len(removed), len(wanted), changed)


# The review_edits actions that set a review's validity by hand, and back.
INVALIDATE = "invalidate"
VALIDATE = "validate"


def invalidated_by_hand(review_id: Any) -> sa.ColumnElement[bool]:
    """Whether the review's latest validity edit is a person's `invalidate` (never NULL)."""
    e = review_edits
    latest = (
        sa.select(e.c.action)
        .where(e.c.review_id == review_id, e.c.action.in_((INVALIDATE, VALIDATE)))
        .order_by(e.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(latest, "") == INVALIDATE


def _judge(conn: Connection, project: str, *, listed: bool, now: datetime, actor: str) -> int:
    """Set `invalid` on the project's reviews from its list; returns how many changed."""
    r, t = qa_photo_reviews, drop_lists
    by_hand = invalidated_by_hand(r.c.id)
    if listed:
        on_list = sa.exists().where(t.c.project == r.c.project, t.c.drop_number == r.c.drop_number)
        invalid: Any = ~on_list
        # The list overrules a person's `invalidate`: say so in the drop's history.
        revalidated = sa.select(
            r.c.id,
            sa.literal(actor[:100]),
            sa.literal(VALIDATE),
            sa.literal({"invalid": [True, False], "via": "drop list"}, review_edits.c.changes.type),
            sa.literal(now, review_edits.c.at.type),
        ).where(r.c.project == project, r.c.invalid.is_(True), on_list, by_hand)
        conn.execute(
            sa.insert(review_edits).from_select(
                ["review_id", "actor", "action", "changes", "at"], revalidated
            )
        )
    else:
        invalid = by_hand
    result = conn.execute(
        sa.update(r)
        .where(r.c.project == project, r.c.invalid != invalid)
        .values(invalid=invalid, updated_at=now)
    )
    return int(result.rowcount or 0)


def info(store: ReviewStore) -> list[ListInfo]:
    """Every project that has a list or had one: its size and its latest import."""
    t, i = drop_lists, drop_list_imports
    with store.read() as conn:
        counted = conn.execute(sa.select(t.c.project, sa.func.count()).group_by(t.c.project))
        totals: dict[str, int] = {project: int(n) for project, n in counted}
        latest = (
            sa.select(i.c.project, sa.func.max(i.c.id).label("id")).group_by(i.c.project).subquery()
        )
        imports = {
            row.project: row
            for row in conn.execute(
                sa.select(i.c.project, i.c.at, i.c.actor, i.c.filename).join(
                    latest, latest.c.id == i.c.id
                )
            )
        }
    projects = sorted(set(totals) | set(imports))
    return [
        ListInfo(
            project=p,
            total=int(totals.get(p, 0)),
            imported_at=imports[p].at if p in imports else None,
            imported_by=imports[p].actor if p in imports else None,
            filename=imports[p].filename if p in imports else None,
        )
        for p in projects
    ]


def is_listed(store: ReviewStore, project: str, drop_number: str) -> bool:
    """Whether the drop is valid for its project: on its list, or the project has none."""
    with store.read() as conn:
        return (project, drop_number) not in unlisted(conn, {(project, drop_number)})


@dataclass(frozen=True)
class Reconciliation:
    project: str
    day: date
    not_posted: list[str]  # on the day's list, never posted in the group
    not_listed: list[str]  # posted that day, not on the day's list


def reconcile(
    store: ReviewStore, project: str, numbers: Iterable[str], day: date, zone: tzinfo
) -> Reconciliation:
    """The client's list of the day against the drops the group posted.

    A number on the list counts as posted when the group ever posted it (it may have been
    posted days before the client listed it); the other column holds the drops posted on
    `day` (a first post or a re-post, that day in `zone`) that the list lacks.
    """
    wanted = sorted(set(numbers))
    r, s = qa_photo_reviews, drop_submissions
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    posted: set[str] = set()
    with store.read() as conn:
        numbers_of = _JSON_NUMBERS[conn.dialect.name == "postgresql"]
        for chunk in _chunks(wanted, CHUNK):
            on_file = sa.select(numbers_of(chunk))
            posted.update(
                conn.execute(
                    sa.select(r.c.drop_number).where(
                        r.c.project == project, r.c.drop_number.in_(on_file)
                    )
                ).scalars()
            )
        of_day = set(
            conn.execute(
                sa.select(s.c.drop_number)
                .where(s.c.project == project, s.c.message_time >= start, s.c.message_time < end)
                .distinct()
            ).scalars()
        )
    listed = set(wanted)
    return Reconciliation(
        project=project,
        day=day,
        not_posted=[d for d in wanted if d not in posted],
        not_listed=sorted(of_day - listed),
    )


# -- the day's drops, for a client's list of the day ----------------------------------------


@dataclass(frozen=True)
class DayDrop:
    """A drop first posted in the day: its review."""

    id: uuid.UUID
    drop_number: str
    posted_at: datetime | None
    completed: bool
    incomplete: bool


def day_drops(store: ReviewStore, project: str, start: datetime, end: datetime) -> list[DayDrop]:
    """The project's drops first posted in [start, end), oldest first; invalid numbers are
    no drops (as in the daily counts). Read over ix_qa_photo_reviews_message_day."""
    r = qa_photo_reviews
    query = (
        sa.select(r.c.id, r.c.drop_number, r.c.whatsapp_message_date, r.c.completed, r.c.incomplete)
        .where(
            r.c.project == project,
            r.c.whatsapp_message_date >= start,
            r.c.whatsapp_message_date < end,
            r.c.invalid.is_(False),
        )
        .order_by(r.c.whatsapp_message_date, r.c.drop_number)
    )
    with store.read() as conn:
        return [
            DayDrop(
                row.id, row.drop_number, row.whatsapp_message_date, row.completed, row.incomplete
            )
            for row in conn.execute(query)
        ]


@dataclass(frozen=True)
class Known:
    """What the review database knows of some numbers of a project."""

    first_posted: dict[str, datetime | None]  # posted in the group (ever): when first
    listed: set[str] | None  # on the project's list; None: the project has no list


def known(store: ReviewStore, project: str, numbers: Iterable[str]) -> Known:
    """Which of `numbers` the project's group posted, and which are on its list."""
    wanted = sorted(set(numbers))
    r, t = qa_photo_reviews, drop_lists
    posted: dict[str, datetime | None] = {}
    listed: set[str] = set()
    with store.read() as conn:
        has_list = (
            conn.execute(sa.select(t.c.drop_number).where(t.c.project == project).limit(1)).first()
            is not None
        )
        numbers_of = _JSON_NUMBERS[conn.dialect.name == "postgresql"]
        for chunk in _chunks(wanted, CHUNK):
            on_file = sa.select(numbers_of(chunk))
            for number, when in conn.execute(
                sa.select(r.c.drop_number, r.c.whatsapp_message_date).where(
                    r.c.project == project, r.c.drop_number.in_(on_file)
                )
            ):
                posted[number] = when
            if has_list:
                listed.update(
                    conn.execute(
                        sa.select(t.c.drop_number).where(
                            t.c.project == project, t.c.drop_number.in_(on_file)
                        )
                    ).scalars()
                )
    return Known(first_posted=posted, listed=listed if has_list else None)


def review_key(store: ReviewStore, review_id: uuid.UUID) -> tuple[str | None, str] | None:
    """A review's (project, drop number); None when there is no such review."""
    r = qa_photo_reviews
    with store.read() as conn:
        row = conn.execute(
            sa.select(r.c.project, r.c.drop_number).where(r.c.id == review_id)
        ).first()
    return None if row is None else (row.project, row.drop_number)
