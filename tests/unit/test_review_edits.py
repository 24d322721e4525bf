"""A reviewer's edit, decided from values: the lock, the steps' rules, merging with what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wa_monitor.core.review_edits import (
    LOCK_SECONDS,
    EditConflict,
    EditRejected,
    LockedByOther,
    plan_edit,
)
from wa_monitor.core.reviews import RESUBMISSION_MARK
from wa_monitor.core.steps import STEP_COLUMNS

NOW = datetime(2025, 11, 10, 9, 0, tzinfo=UTC)
RESUBMITTED = f"{RESUBMISSION_MARK}2025-11-10 10:00 SAST by Thabo"


def review(**overrides: Any) -> dict[str, Any]:
    """A review at version 3 whose comment changed at 2 and steps at 3, nobody holding it."""
    row: dict[str, Any] = {s: False for s in STEP_COLUMNS}
    row.update(
        comment=None,
        incorrect_steps=None,
        incorrect_comments=None,
        completed=False,
        incomplete=True,
        locked_by=None,
        locked_at=None,
        version=3,
        comment_version=2,
        steps_version=3,
    )
    row.update(overrides)
    return row


def test_someone_elses_fresh_lock_refuses_the_edit() -> None:
    locked = review(locked_by="anna", locked_at=NOW - timedelta(seconds=LOCK_SECONDS - 1))
    with pytest.raises(LockedByOther) as caught:
        plan_edit(locked, {"comment": "ok"}, "ben", NOW)
    assert caught.value.holder == "anna"
    assert plan_edit(locked, {"comment": "ok"}, "anna", NOW).written == {"comment": "ok"}


def test_an_expired_lock_does_not_hold_the_edit() -> None:
    expired = review(locked_by="anna", locked_at=NOW - timedelta(seconds=LOCK_SECONDS))
    assert plan_edit(expired, {"comment": "ok"}, "ben", NOW).written == {"comment": "ok"}


def test_a_step_marked_incorrect_is_unticked_and_only_its_comment_kept() -> None:
    ticked = review(**{s: True for s in STEP_COLUMNS}, completed=True, incomplete=False)
    step = STEP_COLUMNS[2]
    plan = plan_edit(
        ticked,
        {"incorrect_steps": [step], "incorrect_comments": {step: " blurred ", "x": "gone"}},
        "ben",
        NOW,
    )
    assert plan.written == {
        step: False,
        "incorrect_steps": [step],
        "incorrect_comments": {step: "blurred"},
        "completed": False,
        "incomplete": True,
    }
    assert plan.audit["completed"] == [True, False]
    assert plan.audit["version"] == [3, 4]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"completed": True}, "completed needs all 12 steps"),
        ({"incomplete": False}, "steps are missing"),
        ({**{s: True for s in STEP_COLUMNS}, "completed": False}, "the review is complete"),
    ],
)
def test_a_contradicting_completed_or_incomplete_is_rejected(
    changes: dict[str, Any], words: str
) -> None:
    with pytest.raises(EditRejected, match=words):
        plan_edit(review(), changes, "ben", NOW)


def test_without_a_version_a_comment_keeps_the_monitors_resubmission_lines() -> None:
    plan = plan_edit(review(comment=f"old\n{RESUBMITTED}"), {"comment": "new"}, "ben", NOW)
    assert plan.written == {"comment": f"new\n{RESUBMITTED}"}
    assert plan.kept_lines == (RESUBMITTED,)


def test_with_the_current_version_a_comment_may_drop_those_lines() -> None:
    plan = plan_edit(review(comment=RESUBMITTED), {"comment": "new"}, "ben", NOW, version=3)
    assert plan.written == {"comment": "new"}
    assert plan.kept_lines == ()


def test_an_edit_of_the_comment_on_an_old_version_merges_the_steps_changed_since() -> None:
    plan = plan_edit(review(), {"comment": "new"}, "ben", NOW, version=2)
    assert plan.written == {"comment": "new"}
    assert plan.merged == ("steps",)
    assert plan.audit["version"] == [2, 4]


def test_an_edit_of_the_steps_on_an_old_version_conflicts_with_steps_changed_since() -> None:
    current = review()
    with pytest.raises(EditConflict) as caught:
        plan_edit(current, {STEP_COLUMNS[0]: True}, "ben", NOW, version=2)
    assert caught.value.groups == ["steps"]
    assert caught.value.version == 2
    assert caught.value.current == current


def test_an_edit_that_changes_nothing_plans_no_write() -> None:
    plan = plan_edit(review(comment="same"), {"comment": "same"}, "ben", NOW, version=2)
    assert plan.written == {}
    assert plan.audit == {}
    assert plan.merged == ("steps",)
