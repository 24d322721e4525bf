"""Drops a person records by hand: the client's installs the group never posted, and drops
that are not drops after all.

A manual entry is a review like the monitor's (one per project and drop number, the
table's unique constraint), by "Manual Entry", without a post: when the group posts the
number later, that post is the drop's first submission (core/reviews). Reviews are never
deleted: a drop that is not one is marked invalid, with its history. Both are audited in
review_edits under the acting person (`manual-entry`, `invalidate`, `validate`), and keep
the project's list of valid numbers, when it has one, in step (store/drop_lists).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from wa_monitor.store import drop_lists
from wa_monitor.store.drop_lists import INVALIDATE, VALIDATE, invalidated_by_hand
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import qa_photo_reviews, review_edits

MANUAL_ENTRY = "Manual Entry"  # the installer's name of a drop entered by hand
MANUAL_ACTION = "manual-entry"
T = TypeVar("T")


@dataclass(frozen=True)
class ManualDrop:
    drop_number: str  # normalised
    installed_at: datetime  # aware: the list's date and time in the business zone
    day: date  # that date


@dataclass(frozen=True)
class Added:
    ids: list[uuid.UUID]  # the reviews now valid for the numbers given: new, then restored
    inserted: int  # new reviews
    restored: int  # reviews that were invalid (by hand or off the list), valid again
    listed: int | None  # numbers newly on the project's list; None: it has none


@dataclass(frozen=True)
class Invalidated:
    id: uuid.UUID
    drop_number: str
    project: str | None
    changed: bool  # False: it was invalid by hand already


def _insert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(qa_photo_reviews)


def _audit(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(sa.insert(review_edits), rows)


def add(store: ReviewStore, project: str, drops: Sequence[ManualDrop], *, actor: str) -> Added:
    """Record a review for each number the project has none of, in one transaction.

    A number already recorded is left as it is (its first post stays), except that an
    invalid review of it is made valid again: adding it back says it is a drop.
    When the project has a list of valid numbers, the numbers are put on it.
    Concurrent calls for one number record one review.
    """
    now = datetime.now(UTC)
    r = qa_photo_reviews
    first = {d.drop_number: d for d in reversed(drops)}  # the first of repeated numbers
    wanted = [first[n] for n in dict.fromkeys(d.drop_number for d in drops)]
    numbers = [d.drop_number for d in wanted]
    with store.begin() as conn:
        drop_lists.lock_project(conn, project)
        rows = [
            {
                "id": uuid.uuid4(),
                "drop_number": d.drop_number,
                "project": project,
                "user_name": MANUAL_ENTRY,
                "whatsapp_message_date": d.installed_at,
                "review_date": d.day,
                "incomplete": True,
                "created_at": now,
                "updated_at": now,
            }
            for d in wanted
        ]
        new: dict[str, uuid.UUID] = {}
        for chunk in _chunks(rows, 1000):
            stmt = (
                _insert(conn)
                .on_conflict_do_nothing(index_elements=["project", "drop_number"])
                .returning(r.c.id, r.c.drop_number)
            )
            new.update((row.drop_number, row.id) for row in conn.execute(stmt, chunk))
        _audit(
            conn,
            [
                {
                    "review_id": new[d.drop_number],
                    "actor": actor[:100],
                    "action": MANUAL_ACTION,
                    "changes": {"installedAt": d.installed_at.isoformat(), "project": project},
                    "at": now,
                }
                for d in wanted
                if d.drop_number in new
            ],
        )
        invalid = _invalid_of(conn, project, numbers)
        listed = None
        if drop_lists.has_list(conn, project):
            adding = set(numbers)
            result = drop_lists.change_list(conn, project, lambda c: c | adding, actor=actor)
            listed = result.added  # its re-judging made those off the list valid
        # Still invalid: a person marked them so (the list, if any, now holds them).
        kept = _invalid_of(conn, project, numbers)
        for ids in _chunks(kept, 1000):
            conn.execute(sa.update(r).where(r.c.id.in_(ids)).values(invalid=False, updated_at=now))
        _audit(conn, [_validity(i, actor, VALIDATE, now) for i in kept])
    return Added(
        ids=[*new.values(), *invalid], inserted=len(new), restored=len(invalid), listed=listed
    )


def _validity(review_id: uuid.UUID, actor: str, action: str, now: datetime) -> dict[str, Any]:
    invalid = action == INVALIDATE
    return {
        "review_id": review_id,
        "actor": actor[:100],
        "action": action,
        "changes": {"invalid": [not invalid, invalid], "via": "dr-validation"},
        "at": now,
    }


def _chunks(rows: list[T], size: int) -> list[list[T]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def _invalid_of(conn: Connection, project: str, numbers: list[str]) -> list[uuid.UUID]:
    """The project's invalid reviews of `numbers`."""
    r = qa_photo_reviews
    found: list[uuid.UUID] = []
    for chunk in _chunks(numbers, drop_lists.CHUNK):
        given = sa.select(drop_lists.json_numbers(conn, chunk))
        query = sa.select(r.c.id).where(
            r.c.project == project, r.c.drop_number.in_(given), r.c.invalid.is_(True)
        )
        found.extend(conn.execute(query).scalars())
    return found


def invalidate(store: ReviewStore, review_id: uuid.UUID, *, actor: str) -> Invalidated | None:
    """Mark the review invalid, kept with its history; take its number off its project's
    list when it has one. None when there is no such review; a second call changes nothing."""
    now = datetime.now(UTC)
    r = qa_photo_reviews
    with store.begin() as conn:
        key = conn.execute(sa.select(r.c.project).where(r.c.id == review_id)).first()
        if key is None:
            return None
        project: str | None = key.project
        if project is not None:
            drop_lists.lock_project(conn, project)
        query = sa.select(r.c.drop_number, r.c.project, invalidated_by_hand(r.c.id).label("hand"))
        row = conn.execute(query.where(r.c.id == review_id)).first()
        if row is None:  # removed meanwhile by another tool
            return None
        if row.hand:
            return Invalidated(review_id, row.drop_number, row.project, changed=False)
        if row.project is not None and drop_lists.has_list(conn, row.project):
            number = row.drop_number

            def without(current: set[str]) -> set[str]:
                # The last number off a list would leave the project without one: every
                # drop valid. The review's own flag, below, makes it invalid instead.
                rest = current - {number}
                return rest or current

            drop_lists.change_list(conn, row.project, without, actor=actor)
        conn.execute(sa.update(r).where(r.c.id == review_id).values(invalid=True, updated_at=now))
        _audit(conn, [_validity(review_id, actor, INVALIDATE, now)])
    return Invalidated(review_id, row.drop_number, row.project, changed=True)
