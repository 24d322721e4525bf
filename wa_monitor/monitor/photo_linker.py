"""Reading the groups' messages into the review database and linking photos to drops.

`PhotoLinker.step` reads the monitored groups' rows past the media cursors (texts and
media alike: the thread is linked like the photos), stores them in `group_messages`, and
re-links the photos that the new rows and the new drop posts can change, with the pure
rules of `wa_monitor.core.photo_links`. `decide_photo` applies a reviewer's move,
detach or step choice on one photo.

Only what can change is re-linked, never the whole table. A photo's link depends on
its own fields, its reviewers' decisions and the drop posts of its sender around it
(plus, for its round, every post of that drop in the group), never on other photos; so:

- a new row: itself only (it is stored already linked);
- a new drop post of drop D: for every post of D in the group (whoever posted it), the
  rows of that post's sender within photos_after + photos_before of it, and the photos
  reviewers moved to D. A row whose caption names D is itself a post of D (the scan
  records every row naming a drop), so it is among them, wherever it lies in time;
  only rows from before a project's `since` (which the scan leaves out) are looked up
  by their text;
- a reviewer's decision: that photo;
- new rules for a group (its pattern or windows changed in projects.yaml): all its
  rows, a step's worth at a time.

The links written are then exactly those `link_photos` gives over every row and post
(tests/integration/test_photo_linking.py checks it, whatever the order of arrival).
"""

from __future__ import annotations

import enum
import hashlib
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from wa_monitor.core.config import Project, ProjectsConfig
from wa_monitor.core.detect import normalise
from wa_monitor.core.errors import PhotoDecisionError, UnknownPhoto
from wa_monitor.core.photo_links import DropPost, LinkRules, Moved, Photo, PhotoLink, link_photos
from wa_monitor.core.serials import ONT_STEP, UPS_STEP, serials_from
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.monitor.scan import (
    clean_text,
    message_key,
    owns_anchor,
    prefilter,
    recreated,
    tagged_anchor,
)
from wa_monitor.sources.bridge import parse_timestamp
from wa_monitor.sources.protocol import GroupMessage, Source
from wa_monitor.store import group_messages as gm
from wa_monitor.store import media_queue
from wa_monitor.store.review_store import Cursor, ReviewStore
from wa_monitor.store.schema import review_edits

log = logging.getLogger("wa_monitor")

DEFAULT_STEP_ROWS = 5000
_MAX_LENGTH = 2**63 - 1


class Unset(enum.Enum):
    """Not given (as opposed to None, which clears a value)."""

    UNSET = "unset"


UNSET = Unset.UNSET


class PhotoLinker:
    """Reads the groups' rows into group_messages and keeps their links to drops right.

    Give it its own `Source` (a BridgeStore of its own): `step` re-opens it when the
    store was replaced, which must not pull the connection from under the scan.
    `skipped` counts the rows that could not be used, by reason (they are logged).
    """

    def __init__(
        self,
        store: ReviewStore,
        source: Source,
        config: Callable[[], ProjectsConfig],
        *,
        anchor_tag: str = "",
    ) -> None:
        self.store = store
        self.source = source
        self.config = config
        self.anchor_tag = anchor_tag  # as the scan's Monitor.anchor_tag, for the same source
        self.skipped: Counter[str] = Counter()
        self.untimed = 0  # rows linked with the time they were first read

    def step(self, max_rows: int = DEFAULT_STEP_ROWS) -> bool:
        """Read up to max_rows new group rows past the media cursors into group_messages
        (new media rows: status 'pending', next_attempt_at now), re-link the photos that
        new rows and new drop_submissions can change, attach review_id once the review
        exists. Returns True when more work is waiting (call again). Idempotent; a crash
        between steps loses nothing (cursor saved in the same transaction as the rows)."""
        config = self.config()
        projects = config.by_group()
        if self.source.replaced():
            self.source.open()
        now = datetime.now(UTC)
        rows: list[GroupMessage] = []
        advanced: dict[str, Cursor] = {}
        more_rows = False
        if projects:
            high = self.source.max_rowid()
            cursors = self._checked_cursors(projects, high)
            rows, advanced, more_rows = self._read(cursors, high, max_rows)
        messages = self._messages(rows, projects, config, now)
        with self.store.begin() as conn:
            gm.lock_links(conn)
            mark = gm.get_mark(conn, gm.LINKED_SUBMISSIONS)
            submissions = gm.submissions_after(conn, mark, max_rows)
            # New rows are stored already linked: no row is written twice.
            _link_new(conn, projects, messages)
            gm.upsert_messages(conn, messages, now)
            gm.save_media_cursors(conn, advanced, now)
            _relink_for(conn, projects, submissions, now)
            if submissions:
                gm.set_mark(conn, gm.LINKED_SUBMISSIONS, submissions[-1].id, now)
            more_rules = _follow_rules(conn, projects, max_rows, now)
        return more_rows or len(submissions) >= max_rows or more_rules

    def run_until_done(self, max_rows: int = DEFAULT_STEP_ROWS) -> int:
        """Step until nothing is waiting; returns the number of steps (for tests, tools)."""
        steps = 1
        while self.step(max_rows):
            steps += 1
        return steps

    # -- reading ------------------------------------------------------------------------

    def _checked_cursors(self, projects: Mapping[str, Project], high: int) -> dict[str, Cursor]:
        """The groups' cursors; one whose store was re-created (rowids from 1) starts over."""
        known = gm.load_media_cursors(self.store)
        cursors = {jid: known.get(jid, Cursor(0, None)) for jid in projects}
        moved: dict[str, bool] = {}
        for jid, cursor in cursors.items():
            if not owns_anchor(cursor, self.anchor_tag):
                log.info(
                    "🔁 %s (%s) was read from another gateway until now; reading its photos "
                    "from the start of %s",
                    projects[jid].name,
                    jid,
                    self.anchor_tag or "the bridge's messages.db",
                )
                cursors[jid] = Cursor(0, None)
                continue
            reason = recreated(self.source, cursor, high, moved, self.anchor_tag)
            if reason:
                log.warning(
                    "⚠️ messages.db was re-created (%s); reading the photos of %s (%s) from "
                    "the start again, rows already stored are not stored twice",
                    reason,
                    projects[jid].name,
                    jid,
                )
                cursors[jid] = Cursor(0, None)
        return cursors

    def _read(
        self, cursors: Mapping[str, Cursor], high: int, max_rows: int
    ) -> tuple[list[GroupMessage], dict[str, Cursor], bool]:
        """The next rowid range of at most max_rows rowids (so at most max_rows rows)."""
        low = min(c.last_rowid for c in cursors.values())
        following = self.source.next_rowid(low)
        if following is None or following > high:
            return [], {}, False
        if following > low + max_rows:
            low = following - 1  # a gap in the rowids costs one seek
        end = min(low + max_rows, high)
        active = sorted(jid for jid, c in cursors.items() if c.last_rowid < end)
        found = self.source.read_messages(low, end, active)
        rows = [
            r for r in found if r.chat_jid in cursors and r.rowid > cursors[r.chat_jid].last_rowid
        ]
        anchor = tagged_anchor(self.source.anchor(end), self.anchor_tag)
        return rows, {jid: Cursor(end, anchor) for jid in active}, end < high

    def _messages(
        self,
        rows: Sequence[GroupMessage],
        projects: Mapping[str, Project],
        config: ProjectsConfig,
        now: datetime,
    ) -> list[dict[str, Any]]:
        """group_messages rows for the source rows; a row that cannot be used is skipped."""
        usable: list[tuple[GroupMessage, datetime]] = []
        for row in rows:
            if not row.id:
                self._skip(row, projects, "no message id")
                continue
            posted = parse_timestamp(row.timestamp, config.zone)
            if posted is None:
                # As the scan does for a drop: the time it was first read stands in.
                posted = now
                self._untimed(row, projects[row.chat_jid])
            usable.append((row, posted.astimezone(UTC)))
        if not usable:
            return []
        senders = self.source.resolve_senders({r.sender for r, _ in usable})
        by_key: dict[tuple[str, str], dict[str, Any]] = {}
        for row, posted in usable:
            sender = senders[row.sender]
            phone = clean_text(sender.phone, 50) or "unknown"
            media_type = clean_text((row.media_type or "").strip().lower(), 20) or "text"
            media = media_type != "text"
            sha = row.file_sha256.hex() if row.file_sha256 and len(row.file_sha256) == 32 else None
            length = row.file_length
            key = message_key(row.id)
            # The latest read of a message wins within a step, as the later row does in the store.
            by_key[(row.chat_jid, key)] = {
                "chat_jid": row.chat_jid,
                "message_id": key,
                "project": projects[row.chat_jid].name,
                "sender": phone,
                "sender_name": clean_text(sender.name, 100) or phone,
                "posted_at": posted,
                "content": _text(row.content),
                "media_type": media_type,
                "filename": clean_text(row.filename, 255) if row.filename else None,
                "file_sha256": sha,
                "file_length": length
                if length is not None and 0 <= length <= _MAX_LENGTH
                else None,
                "status": "pending" if media else None,
                "next_attempt_at": now if media else None,
            }
        return list(by_key.values())

    def _untimed(self, row: GroupMessage, project: Project) -> None:
        """One WARNING per row: one naming a drop is told by the scan already."""
        self.untimed += 1
        try:
            names_a_drop = bool(project.pattern.find(row.content))
        except Exception:  # the scan reports a row it cannot match
            names_a_drop = True
        if names_a_drop:
            return
        shown = row.timestamp if isinstance(row.timestamp, str) else repr(row.timestamp)
        log.warning(
            "⚠️ row %d of %s (%s): unreadable timestamp %r; linked to photos with the time "
            "it was first read",
            row.rowid,
            row.chat_jid,
            project.name,
            clean_text(str(shown), 40),
        )

    def _skip(self, row: GroupMessage, projects: Mapping[str, Project], problem: str) -> None:
        self.skipped[problem] += 1
        project = projects.get(row.chat_jid)
        shown = row.timestamp if isinstance(row.timestamp, str) else repr(row.timestamp)
        log.warning(
            "⚠️ row %d of %s (%s) not linked to photos: %s (timestamp %r)",
            row.rowid,
            row.chat_jid,
            project.name if project else "?",
            problem,
            clean_text(str(shown), 40),
        )


def _text(value: str | None) -> str | None:
    """Text any database column takes: no NUL, no lone surrogate."""
    if value is None:
        return None
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


# -- re-linking -------------------------------------------------------------------------


def _span(project: Project) -> timedelta:
    return project.photos_after + project.photos_before


def _merge(windows: Iterable[gm.Window]) -> list[gm.Window]:
    """Overlapping windows of one sender and group as one: fewer, shorter clauses."""
    by_owner: dict[tuple[str, str], list[gm.Window]] = defaultdict(list)
    for w in windows:
        by_owner[(w.chat, w.sender)].append(w)
    merged: list[gm.Window] = []
    for (chat, sender), owned in sorted(by_owner.items()):
        owned.sort(key=lambda w: w.start)
        start, end = owned[0].start, owned[0].end
        for w in owned[1:]:
            if w.start <= end:
                end = max(end, w.end)
            else:
                merged.append(gm.Window(chat, sender, start, end))
                start, end = w.start, w.end
        merged.append(gm.Window(chat, sender, start, end))
    return merged


def _link_new(
    conn: Connection, projects: Mapping[str, Project], messages: Sequence[dict[str, Any]]
) -> None:
    """Give each row about to be stored its link (and review), in place.

    A row's link depends on its own fields, the drop posts and its decisions only, never
    on other rows: the rows around a new one keep theirs.
    """
    rows = [
        gm.LinkedRow(
            id=0,
            project=m["project"],
            photo=Photo(
                m["chat_jid"], m["message_id"], m["sender"], m["posted_at"], m["content"],
                m["media_type"],
            ),
            drop_number=None,
            round=None,
            post_message_id=None,
            link_reason="none",
            review_id=None,
            step=None,
        )
        for m in messages
    ]  # fmt: skip
    found = {
        (row.photo.chat, row.photo.key): (link, review)
        for row, link, review in _links(conn, projects, rows)
    }
    for m in messages:
        link, review = found[(m["chat_jid"], m["message_id"])]
        m.update(
            drop_number=link.drop_number,
            round=link.round,
            post_message_id=link.post_key,
            link_reason=link.reason,
            review_id=review,
        )


def _relink_for(
    conn: Connection,
    projects: Mapping[str, Project],
    submissions: Sequence[gm.Submission],
    now: datetime,
) -> None:
    """Re-link the rows that these new drop posts can change."""
    drops = {
        (s.project, s.post.chat, s.post.drop_number) for s in submissions if s.post.chat in projects
    }
    if not drops:
        return
    windows: list[gm.Window] = []
    # Captioned photos of a known drop are not posts of it (see core.reviews.plan_batch),
    # and may lie outside the windows around its posts: the sender's rows whose text may
    # name a drop are looked up by that text, whenever they were posted.
    captioned: set[tuple[str, str]] = set()
    for post in gm.posts_of_drops(conn, drops):
        project = projects.get(post.post.chat)
        if project is None:
            continue
        chat, span = post.post.chat, _span(project)
        sender, at = post.post.sender, post.post.posted
        windows.append(gm.Window(chat, sender, at - span, at + span))
        captioned.add((chat, sender))
    moved = gm.moved_to(conn, {(chat, drop) for _, chat, drop in drops})
    rows: dict[int, gm.LinkedRow] = {}
    for row in gm.rows_in_windows(conn, _merge(windows)):
        rows[row.id] = row
    if captioned:
        literal = {jid: _literal(p) for jid, p in projects.items()}
        for row in gm.rows_with_text(conn, captioned, literal):
            rows[row.id] = row
    for row in gm.rows_by_key(conn, moved):
        rows[row.id] = row
    relink(conn, projects, list(rows.values()), now)


# Worker marks of a group's linking rules: their fingerprint, and how far (by row id)
# the group's rows were re-linked under them (_DONE: all of them).
_RULES = "link_rules:"
_RULES_AT = "link_rules_at:"
_DONE = 2**63 - 1


def _fingerprint(project: Project) -> int:
    """A number that changes when a group's linking rules change (pattern, windows, name)."""
    rules = (
        project.name,
        project.pattern.source,
        project.pattern.ignore_case,
        project.photos_after.total_seconds(),
        project.photos_before.total_seconds(),
        project.since.isoformat() if project.since else "",
    )
    digest = hashlib.sha256(repr(rules).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # fits a signed 64-bit column


def _group_key(jid: str) -> str:
    return hashlib.sha256(jid.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _follow_rules(
    conn: Connection, projects: Mapping[str, Project], budget: int, now: datetime
) -> bool:
    """Re-link a group's rows, up to `budget` per step, when its rules changed (a new
    window, pattern or project name in projects.yaml): rows stored under the old rules
    keep their old links otherwise. Returns True when rows are still waiting."""
    if not projects:
        return False
    keys = {jid: _group_key(jid) for jid in projects}
    names = [f"{prefix}{k}" for k in keys.values() for prefix in (_RULES, _RULES_AT)]
    marks = gm.get_marks(conn, names)
    changed: dict[str, int] = {}
    for jid, project in sorted(projects.items()):
        key = keys[jid]
        fingerprint = _fingerprint(project)
        stored = marks.get(f"{_RULES}{key}")
        done = marks.get(f"{_RULES_AT}{key}", _DONE)
        if stored != fingerprint:
            # A group seen for the first time has no rows linked under other rules.
            done = _DONE if stored is None else 0
            changed.update({f"{_RULES}{key}": fingerprint, f"{_RULES_AT}{key}": done})
        if done == _DONE:
            continue
        if budget <= 0:
            gm.set_marks(conn, changed, now)
            return True
        rows = gm.rows_of_group(conn, jid, done, budget)
        relink(conn, projects, rows, now)
        finished = len(rows) < budget
        budget -= len(rows)
        changed[f"{_RULES_AT}{key}"] = _DONE if finished else rows[-1].id
        if not finished:
            gm.set_marks(conn, changed, now)
            return True
    gm.set_marks(conn, changed, now)
    return False


def _literal(project: Project) -> str | None:
    found = prefilter(project.pattern)
    return found.text if found is not None else None


def relink(
    conn: Connection, projects: Mapping[str, Project], rows: Sequence[gm.LinkedRow], now: datetime
) -> list[PhotoLink]:
    """Link stored `rows` by the rules (and reviewers' decisions); write those that changed."""
    linked = _links(conn, projects, rows)
    changes: list[dict[str, Any]] = []
    for row, link, review in linked:
        now_is = (link.drop_number, link.round, link.post_key, link.reason, review)
        was = (row.drop_number, row.round, row.post_message_id, row.link_reason, row.review_id)
        if now_is != was:
            changes.append(
                {
                    "id": row.id,
                    "drop_number": link.drop_number,
                    "round": link.round,
                    "post_message_id": link.post_key,
                    "link_reason": link.reason,
                    "review_id": review,
                }
            )
    gm.write_links(conn, changes, now)
    return [link for _, link, _ in linked]


def _links(
    conn: Connection, projects: Mapping[str, Project], rows: Sequence[gm.LinkedRow]
) -> list[tuple[gm.LinkedRow, PhotoLink, uuid.UUID | None]]:
    """Each row (of a monitored group) with its link by the rules, and that drop's review.

    The posts passed are all those that can decide these rows' links: their senders'
    posts within the windows around them, and every post of each drop they may link to
    (which decides its rounds).
    """
    rows = [r for r in rows if r.photo.chat in projects]
    if not rows:
        return []
    windows = [
        gm.Window(
            r.photo.chat,
            r.photo.sender,
            r.photo.posted - projects[r.photo.chat].photos_after,
            r.photo.posted + projects[r.photo.chat].photos_before,
        )
        for r in rows
    ]
    nearby = gm.posts_in_windows(conn, _merge(windows))
    decisions = gm.decisions_for(conn, {(r.photo.chat, r.photo.key) for r in rows})
    drops: set[tuple[str, str, str]] = set()
    for s in nearby:
        drops.add((projects[s.post.chat].name, s.post.chat, s.post.drop_number))
    for r in rows:
        project = projects[r.photo.chat]
        try:
            named = project.pattern.find(r.photo.caption)
        except Exception:  # a text the pattern cannot read links by time, like in the scan
            named = []
        drops.update((project.name, r.photo.chat, d) for d in named)
    for d in decisions:
        if isinstance(d, Moved):
            drop = normalise(d.drop_number) or d.drop_number
            drops.add((projects[d.chat].name, d.chat, drop))
    posts: dict[tuple[str, str, str], DropPost] = {}
    for s in [*nearby, *gm.posts_of_drops(conn, drops)]:
        posts[(s.post.chat, s.post.key, s.post.drop_number)] = s.post
    rules = {
        jid: LinkRules(pattern=p.pattern, windows=p.photo_windows) for jid, p in projects.items()
    }
    links = link_photos((r.photo for r in rows), posts.values(), rules=rules, decisions=decisions)
    by_key = {(r.photo.chat, r.photo.key): r for r in rows}
    review_keys = {
        (projects[link.chat].name, link.drop_number) for link in links if link.drop_number
    }
    reviews = gm.review_ids(conn, review_keys)
    result = []
    for link in links:
        review = (
            reviews.get((projects[link.chat].name, link.drop_number)) if link.drop_number else None
        )
        result.append((by_key[(link.chat, link.photo_key)], link, review))
    return result


# -- reviewers' decisions ---------------------------------------------------------------


def decide_photo(
    store: ReviewStore,
    config: ProjectsConfig,
    photo_id: int,
    *,
    actor: str,
    step: str | None | Unset = UNSET,
    drop_number: str | Unset = UNSET,
    round: int | None | Unset = UNSET,
    detach: bool = False,
) -> None:
    """A reviewer's move/detach/step on one photo: audited in photo_decisions (and one
    review_edits row on each review concerned, action 'photo'), applied at once (re-link
    of that photo), surviving re-scans. Raises core.errors.ReviewDataError (or a new
    subclass) with a clear message for an unknown photo, an unknown drop in that group,
    a step name that is not a step column, a negative round.

    `drop_number` moves the photo to that drop of its group, to `round` when given
    (None or not given: the round of the drop's post nearest the photo); `round` alone
    moves it to another round of the drop it is linked to; `detach` links it to none.
    """
    if not isinstance(step, Unset) and step is not None and step not in STEP_COLUMNS:
        raise PhotoDecisionError(
            f"{step!r} is not a step; use one of {', '.join(STEP_COLUMNS)} (or null for none)"
        )
    if isinstance(round, int) and (isinstance(round, bool) or round < 0):
        raise PhotoDecisionError(
            f"round {round!r} is not a round: 0 is the first submission, 1 the first "
            "resubmission, and so on"
        )
    moving = not isinstance(drop_number, Unset) or not isinstance(round, Unset)
    if detach and moving:
        raise PhotoDecisionError("a photo is either detached or moved to a drop, not both")
    projects = config.by_group()
    now = datetime.now(UTC)
    with store.begin() as conn:
        gm.lock_links(conn)
        row = gm.row_by_id(conn, photo_id)
        if row is None or row.photo.chat not in projects:
            raise UnknownPhoto(f"no photo {photo_id} in the monitored groups")
        chat, key = row.photo.chat, row.photo.key
        project = projects[chat]
        if detach:
            gm.add_decision(
                conn, chat_jid=chat, message_id=key, action="detached", actor=actor, at=now
            )
        elif moving:
            target = _target_drop(drop_number, row)
            rounds = _rounds(conn, project, chat, target)
            if not rounds:
                raise PhotoDecisionError(
                    f"drop {target} was never posted in {project.name}'s group; "
                    "a photo can only be moved to a drop of its own group"
                )
            wanted = None if isinstance(round, Unset) else round
            if wanted is not None and wanted >= rounds:
                raise PhotoDecisionError(
                    f"drop {target} has {_rounds_text(rounds)} in {project.name}'s group; "
                    f"round {wanted} does not exist"
                )
            gm.add_decision(
                conn,
                chat_jid=chat,
                message_id=key,
                action="moved",
                actor=actor,
                at=now,
                drop_number=target,
                round=wanted,
            )
        if not isinstance(step, Unset):
            gm.add_decision(
                conn, chat_jid=chat, message_id=key, action="step", actor=actor, at=now, step=step
            )
            gm.set_step(conn, photo_id, step, now)
        links = relink(conn, projects, [row], now)
        after = links[0] if links else None
        new_review = (
            gm.review_ids(conn, {(project.name, after.drop_number)}).get(
                (project.name, after.drop_number)
            )
            if after and after.drop_number
            else None
        )
        before = {"dropNumber": row.drop_number, "round": row.round, "step": row.step}
        now_at = {
            "dropNumber": after.drop_number if after else None,
            "round": after.round if after else None,
            "step": row.step if isinstance(step, Unset) else step,
        }
        changes = {"photo": photo_id, "messageId": key, "before": before, "after": now_at}
        for review in sorted({r for r in (row.review_id, new_review) if r is not None}, key=str):
            conn.execute(
                review_edits.insert().values(
                    review_id=review, actor=actor, action="photo", changes=changes, at=now
                )
            )
        if not isinstance(step, Unset) and step in (ONT_STEP, UPS_STEP):
            # Assigned to the ONT or UPS step: its barcodes now say which serial they are.
            ont, ups = serials_from(
                gm.barcodes_of(conn, photo_id), step=step, caption=row.photo.caption
            )
            media_queue.fill_serials(conn, new_review, ont=ont, ups=ups, now=now)


def _target_drop(drop_number: str | Unset, row: gm.LinkedRow) -> str:
    if isinstance(drop_number, Unset):
        if row.drop_number is None:
            raise PhotoDecisionError(
                "this photo is linked to no drop: name the drop to move it to with its round"
            )
        return row.drop_number
    text = drop_number.strip()
    if not text:
        raise PhotoDecisionError("name the drop to move the photo to (e.g. DR1234567)")
    return normalise(text) or text


def _rounds(conn: Any, project: Project, chat: str, drop: str) -> int:
    posts = gm.posts_of_drops(conn, {(project.name, chat, drop)})
    return len({s.post.key for s in posts})


def _rounds_text(rounds: int) -> str:
    if rounds == 1:
        return "one round (0)"
    return f"{rounds} rounds (0 to {rounds - 1})"
