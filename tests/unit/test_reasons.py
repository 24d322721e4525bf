"""Rejection reasons: what a reviewer may give, what an edit makes of them, the feedback text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from wa_monitor.core.config import parse_config
from wa_monitor.core.review_edits import (
    EditConflict,
    EditRejected,
    clean_reasons,
    plan_edit,
    split_comment,
)
from wa_monitor.core.reviews import RESUBMISSION_MARK
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback.outbox import draft_for, feedback_text
from wa_monitor.web.models import DropPatchModel

NOW = datetime(2025, 11, 10, 9, 0, tzinfo=UTC)
POLE = "step_02_cable_from_pole"
HOUSE = "step_01_house_photo"


def review(**overrides: Any) -> dict[str, Any]:
    """A fully ticked review at version 3 (comment changed at 2, steps at 3)."""
    row: dict[str, Any] = {s: True for s in STEP_COLUMNS}
    row.update(
        comment=None,
        incorrect_steps=None,
        incorrect_comments=None,
        incorrect_reasons=None,
        completed=True,
        incomplete=False,
        locked_by=None,
        locked_at=None,
        version=3,
        comment_version=2,
        steps_version=3,
    )
    row.update(overrides)
    return row


# -- what a reviewer may give ------------------------------------------------------------


def test_reasons_are_trimmed_and_repeats_dropped_whatever_their_case() -> None:
    given = ["  Blurred ", "blurred", "wrong   angle", "BLURRED", "Wrong angle"]
    assert clean_reasons(given) == ["Blurred", "wrong angle"]


@pytest.mark.parametrize(
    ("reasons", "words"),
    [
        (["   "], "cannot be empty"),
        (["x" * 81], "at most 80 characters"),
        ([f"reason {n}" for n in range(11)], "at most 10 reasons"),
    ],
)
def test_an_empty_a_long_reason_or_too_many_are_refused(reasons: list[str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        clean_reasons(reasons)


def test_eighty_characters_and_ten_reasons_are_accepted() -> None:
    assert clean_reasons(["x" * 80]) == ["x" * 80]
    assert len(clean_reasons([f"reason {n}" for n in range(10)])) == 10


def test_the_patch_body_refuses_bad_reasons_naming_the_step() -> None:
    with pytest.raises(ValidationError) as caught:
        DropPatchModel.model_validate({"incorrectReasons": {POLE: ["ok", "  "]}})
    assert caught.value.errors()[0]["loc"] == ("incorrectReasons", POLE)
    with pytest.raises(ValidationError):
        DropPatchModel.model_validate({"incorrectReasons": {"step_13_roof": ["blurred"]}})
    body = DropPatchModel.model_validate({"incorrectReasons": {POLE: [" Blurred", "blurred "]}})
    assert body.incorrectReasons == {POLE: ["Blurred"]}


# -- what an edit makes of them ----------------------------------------------------------


def test_reasons_mark_their_step_incorrect_and_are_audited() -> None:
    plan = plan_edit(review(), {"incorrect_reasons": {POLE: ["blurred", "Blurred"]}}, "ben", NOW)
    assert plan.written == {
        POLE: False,
        "incorrect_steps": [POLE],
        "incorrect_reasons": {POLE: ["blurred"]},
        "completed": False,
        "incomplete": True,
    }
    assert plan.audit["incorrect_reasons"] == [{}, {POLE: ["blurred"]}]


def test_reasons_for_a_step_the_same_edit_leaves_correct_are_refused() -> None:
    with pytest.raises(EditRejected, match=f"incorrectReasons.{POLE}"):
        plan_edit(
            review(),
            {"incorrect_steps": [HOUSE], "incorrect_reasons": {POLE: ["blurred"]}},
            "ben",
            NOW,
        )


def test_clearing_the_incorrect_flag_clears_the_steps_reasons() -> None:
    judged = review(
        **{POLE: False, HOUSE: False},
        incorrect_steps=[HOUSE, POLE],
        incorrect_comments={POLE: "re-take"},
        incorrect_reasons={HOUSE: ["too dark"], POLE: ["blurred"]},
        completed=False,
        incomplete=True,
    )
    plan = plan_edit(judged, {"incorrect_steps": [HOUSE]}, "ben", NOW)
    assert plan.written["incorrect_reasons"] == {HOUSE: ["too dark"]}
    assert plan.written["incorrect_comments"] == {}
    # An empty list takes a step's reasons away; the step stays incorrect.
    plan = plan_edit(judged, {"incorrect_reasons": {HOUSE: [], POLE: ["blurred"]}}, "ben", NOW)
    assert plan.written == {"incorrect_reasons": {POLE: ["blurred"]}}
    assert "incorrect_steps" not in plan.written


def test_the_same_reasons_again_change_nothing() -> None:
    judged = review(
        **{POLE: False},
        incorrect_steps=[POLE],
        incorrect_reasons={POLE: ["blurred"]},
        completed=False,
        incomplete=True,
    )
    plan = plan_edit(judged, {"incorrect_reasons": {POLE: [" blurred "]}}, "ben", NOW)
    assert plan.written == {} and plan.audit == {}


def test_reasons_belong_to_the_steps_group_when_edits_merge() -> None:
    # The steps changed at version 3; an edit of reasons made on version 2 conflicts,
    # an edit of the comment made on version 2 merges.
    with pytest.raises(EditConflict) as caught:
        plan_edit(review(), {"incorrect_reasons": {POLE: ["blurred"]}}, "ben", NOW, version=2)
    assert caught.value.groups == ["steps"]
    merged = plan_edit(review(), {"comment": "fine"}, "ben", NOW, version=2)
    assert merged.merged == ("steps",)


def test_an_unknown_step_in_the_reasons_is_refused() -> None:
    with pytest.raises(EditRejected, match="step_13_roof"):
        plan_edit(review(), {"incorrect_reasons": {"step_13_roof": ["blurred"]}}, "ben", NOW)


# -- the comment's parts -----------------------------------------------------------------


def test_the_comment_splits_into_the_reviewers_text_and_the_monitors_notes() -> None:
    first = f"{RESUBMISSION_MARK}2025-11-10 10:00 SAST by Thabo"
    second = f"{RESUBMISSION_MARK}2025-11-11 08:30 SAST by Thabo"
    assert split_comment(f"Pole photo is blurred\n{first}\nask again\n{second}") == (
        "Pole photo is blurred\nask again",
        (first, second),
    )
    assert split_comment(first) == (None, (first,))
    # Only line feeds end lines: other separators are the reviewer's text.
    assert split_comment(f"one\u2028two\rthree\n{first}") == ("one\u2028two\rthree", (first,))
    assert split_comment(None) == (None, ())
    assert split_comment("  ") == (None, ())


# -- the feedback text -------------------------------------------------------------------


def test_an_incorrect_item_shows_its_reasons_then_the_comment() -> None:
    steps = dict.fromkeys(STEP_COLUMNS, True)
    steps[POLE] = steps[HOUSE] = steps["step_03_cable_entry_outside"] = False
    text = feedback_text(
        "DR12345678",
        steps,
        [POLE, HOUSE],
        {POLE: "re-take from the street"},
        incorrect_reasons={POLE: ["blurred", "wrong angle"], HOUSE: ["too dark"]},
    )
    assert text == (
        "DR12345678\n"
        "NEEDS CORRECTION\n"
        "\n"
        "Missing items:\n"
        "• 3. Cable entry outside\n"
        "\n"
        "Incorrect items:\n"
        "• 1. House photo - too dark\n"
        "• 2. Cable from pole - blurred, wrong angle: re-take from the street"
    )


def test_the_draft_of_a_saved_review_carries_its_reasons() -> None:
    config = parse_config(
        'timezone: Africa/Johannesburg\nprojects:\n  - name: Lawley\n    group_jid: "1@g.us"\n'
        "    description: Lawley Activation 3\n",
        Path("projects.yaml"),
    )
    saved = review(
        drop_number="DR80000004",
        project="Lawley",
        **{POLE: False},
        incorrect_steps=[POLE],
        incorrect_reasons={POLE: ["blurred"]},
    )
    assert draft_for(saved, config).message.endswith("• 2. Cable from pole - blurred")
