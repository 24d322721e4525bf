"""A reviewer's edit of a review: the edit lock, what an edit may change, and merging.

Pure functions over plain values (the review as a mapping of its columns, the changes,
who and when); the queries that read the review and write the plan live with the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wa_monitor.core.detect import DropPattern, normalise
from wa_monitor.core.reviews import RESUBMISSION_MARK
from wa_monitor.core.steps import MAX_REASON_LENGTH, STEP_COLUMNS

LOCK_SECONDS = 300
# The most reasons a rejected step may carry.
MAX_REASONS = 10

# What an edit can change, in the groups whose last change a review records (migration
# 0007): the comment, which the monitor also writes, and the review of the steps.
EDIT_GROUPS: dict[str, tuple[str, ...]] = {
    "comment": ("comment",),
    "steps": (*STEP_COLUMNS, "incorrect_steps", "incorrect_comments", "incorrect_reasons"),
}
STAMPS = {"comment": "comment_version", "steps": "steps_version"}


class LockedByOther(Exception):
    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class EditRejected(ValueError):
    """An edit that contradicts itself (e.g. completed without all 12 steps)."""


class EditConflict(Exception):
    """An edit made on an older version changes what was also changed since."""

    def __init__(self, current: dict[str, Any], groups: list[str], version: int) -> None:
        super().__init__(", ".join(groups))
        self.current = current  # the review as it is now
        self.groups = groups  # what both changed: "comment", "steps"
        self.version = version  # the version the edit was made on


@dataclass(frozen=True)
class EditPlan:
    """What to write for an edit, and what to record of it (nothing when it changes nothing)."""

    written: dict[str, Any] = field(default_factory=dict)  # the columns the edit changes
    audit: dict[str, Any] = field(default_factory=dict)  # review_edits.changes
    merged: tuple[str, ...] = ()  # groups changed since the edit's version, kept as they are
    kept_lines: tuple[str, ...] = ()  # the monitor's lines a versionless comment would drop


def held_by_other(
    locked_by: str | None, locked_at: datetime | None, actor: str, now: datetime
) -> bool:
    """Whether someone other than `actor` holds a lock that has not expired at `now`."""
    return bool(
        locked_by
        and locked_by != actor
        and locked_at
        and locked_at > now - timedelta(seconds=LOCK_SECONDS)
    )


def corrected_number(value: str, pattern: DropPattern) -> str:
    """A reviewer's corrected drop number as the monitor records it (normalised: upper
    case, no spaces); EditRejected unless it, as typed or normalised, is one whole drop
    number of `pattern`."""
    number = normalise(value)
    if number is None or [number] not in (pattern.find(value), pattern.find(number)):
        raise EditRejected(
            f"{value.strip()!r} is not a drop number of this project (pattern "
            f"{pattern.source}); send it as the installers post it, e.g. DR12345678"
        )
    return number


def keep_monitor_lines(current: str | None, new: str | None) -> tuple[str | None, tuple[str, ...]]:
    """`new`, with the resubmission lines of `current` that it lacks appended, and those."""
    present = set((new or "").splitlines())
    missing = tuple(
        line
        for line in (current or "").splitlines()
        if line.startswith(RESUBMISSION_MARK) and line not in present
    )
    if not missing:
        return new, ()
    return "\n".join([*([new.rstrip("\n")] if new and new.strip() else []), *missing]), missing


def split_comment(comment: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The reviewer's part of a comment (None when empty) and the monitor's lines in it.

    Lines end at line feeds only (as the monitor writes them), so the reviewer's text keeps
    every other character as typed.
    """
    lines = (comment or "").split("\n")
    notes = tuple(line for line in lines if line.startswith(RESUBMISSION_MARK))
    own = "\n".join(line for line in lines if not line.startswith(RESUBMISSION_MARK)).strip()
    return own or None, notes


def clean_reasons(reasons: Iterable[str]) -> list[str]:
    """A step's reasons trimmed, without repeats (letter case aside: the first spelling
    stays), in the order given; raises ValueError for an empty or too long reason, or too
    many."""
    kept: list[str] = []
    seen: set[str] = set()
    for reason in reasons:
        text = " ".join(str(reason).split())
        if not text:
            raise ValueError("a reason cannot be empty")
        if len(text) > MAX_REASON_LENGTH:
            raise ValueError(f"a reason has at most {MAX_REASON_LENGTH} characters: {text[:20]}…")
        if text.casefold() not in seen:
            seen.add(text.casefold())
            kept.append(text)
    if len(kept) > MAX_REASONS:
        raise ValueError(f"at most {MAX_REASONS} reasons per step, not {len(kept)}")
    return kept


def plan_edit(
    current: Mapping[str, Any],
    changes: Mapping[str, Any],
    actor: str,
    now: datetime,
    *,
    version: int | None = None,
) -> EditPlan:
    """The plan of `actor`'s edit of the review `current` (its columns) at `now`.

    Raises LockedByOther when someone else holds the lock (younger than LOCK_SECONDS).

    `changes` holds step columns (bool), comment, incorrect_steps (list), incorrect_comments
    (dict), incorrect_reasons (dict of lists), completed, incomplete: only what the reviewer
    changed. A step marked incorrect is unticked; completed follows the steps (all 12
    ticked), and a contradicting `completed`/`incomplete` is rejected (EditRejected).
    A step given reasons is incorrect: it is marked so, unless the same edit's
    incorrect_steps leaves it out (rejected). A step no longer incorrect loses its comment
    and its reasons.

    `version` is the review's version the edit was made on. When the review has changed
    since, the edit is merged if what it changes (the comment; the steps, incorrect steps
    and their comments) was not changed since, and refused with EditConflict otherwise,
    unless both sides made it the same. Only the fields the edit changes are written, so
    whatever else was written meanwhile (the monitor's resubmission lines and submitter,
    feedback sent, another reviewer's other group) stays.

    Without a version (the company dashboard's edits) an edit is applied as it comes,
    except that the comment keeps the monitor's resubmission lines: an edited comment that
    lacks lines the monitor has written (meanwhile, or before) gets them appended again,
    in their order, so an edit made on a copy read before a resubmission never erases it.
    Removing those lines needs the version.
    """
    if held_by_other(current["locked_by"], current["locked_at"], actor, now):
        raise LockedByOther(str(current["locked_by"]))
    values = edited(current, changes)
    kept: tuple[str, ...] = ()
    if version is None and "comment" in values:
        values["comment"], kept = keep_monitor_lines(current["comment"], values["comment"])
    before = {**current, "incorrect_steps": list(current["incorrect_steps"] or [])}
    before["incorrect_comments"] = dict(current["incorrect_comments"] or {})
    before["incorrect_reasons"] = dict(current.get("incorrect_reasons") or {})
    diff: dict[str, Any] = {
        k: [_jsonable(before[k]), _jsonable(v)]
        for k, v in values.items()
        if _jsonable(before[k]) != _jsonable(v)
    }
    merged: tuple[str, ...] = ()
    if version is not None and version != current["version"]:
        changed = [g for g, fields in EDIT_GROUPS.items() if any(f in diff for f in fields)]
        since = [
            g for g in EDIT_GROUPS if current[STAMPS[g]] > version or version > current["version"]
        ]
        conflicts = [g for g in changed if g in since]
        if conflicts:
            raise EditConflict(dict(current), conflicts, version)
        merged = tuple(since)
    if not diff:
        return EditPlan(merged=merged, kept_lines=kept)
    # Only what changed is written: whatever else was written meanwhile stays.
    written = {k: values[k] for k in diff}
    # [the version the edit was made on, the version it makes]
    diff["version"] = [version or current["version"], current["version"] + 1]
    return EditPlan(written, diff, merged, kept)


def edited(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The review's editable fields after `changes` (raises EditRejected)."""
    new: dict[str, Any] = {s: bool(current[s]) for s in STEP_COLUMNS}
    new.update({s: v for s, v in changes.items() if s in STEP_COLUMNS})
    wrong = list(current["incorrect_steps"] or [])
    comments = dict(current["incorrect_comments"] or {})
    if "incorrect_steps" in changes:
        wrong = [s for s in STEP_COLUMNS if s in set(changes["incorrect_steps"] or [])]
    if "incorrect_comments" in changes:
        comments = {
            s: str(c).strip()
            for s, c in (changes["incorrect_comments"] or {}).items()
            if str(c).strip()
        }
    reasons = {s: list(r) for s, r in (current.get("incorrect_reasons") or {}).items()}
    if "incorrect_reasons" in changes:
        reasons = given_reasons(changes["incorrect_reasons"] or {})
        left_out = [s for s in reasons if s not in wrong]
        if left_out and "incorrect_steps" in changes:
            raise EditRejected(
                f"incorrectReasons.{left_out[0]}: a step with reasons is incorrect; add it to "
                "incorrectSteps, or send no reasons for it"
            )
        wrong = [s for s in STEP_COLUMNS if s in wrong or s in reasons]
    comments = {s: c for s, c in comments.items() if s in wrong}
    reasons = {s: r for s, r in reasons.items() if s in wrong}
    for s in wrong:
        new[s] = False
    complete = all(new[s] for s in STEP_COLUMNS)
    if changes.get("completed") is True and not complete:
        raise EditRejected("completed needs all 12 steps ticked and none marked incorrect")
    if changes.get("completed") is False and complete:
        raise EditRejected("all 12 steps are ticked: the review is complete")
    if changes.get("incomplete") is True and complete:
        raise EditRejected("all 12 steps are ticked: the review cannot be incomplete")
    if changes.get("incomplete") is False and not complete:
        raise EditRejected("steps are missing: the review is incomplete")
    values: dict[str, Any] = {
        **new,
        "incorrect_steps": wrong,
        "incorrect_comments": comments,
        "incorrect_reasons": reasons,
        "completed": complete,
        "incomplete": not complete,
    }
    if "comment" in changes:
        values["comment"] = changes["comment"]
    return values


def given_reasons(given: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """An edit's reasons per step, cleaned, in step order; a step with none is left out
    (raises EditRejected naming the step)."""
    unknown = [s for s in given if s not in STEP_COLUMNS]
    if unknown:
        raise EditRejected(f"incorrectReasons.{unknown[0]}: not a step")
    reasons: dict[str, list[str]] = {}
    for step in STEP_COLUMNS:
        try:
            cleaned = clean_reasons(given.get(step) or ())
        except ValueError as exc:
            raise EditRejected(f"incorrectReasons.{step}: {exc}") from None
        if cleaned:
            reasons[step] = cleaned
    return reasons


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list | dict | str | int | float | bool):
        return value
    return str(value)
