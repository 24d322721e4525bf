"""The feedback a saved review gives, and where it would go, from values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wa_monitor.core.config import parse_config
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback.outbox import draft_for

CONFIG = parse_config(
    """
timezone: Africa/Johannesburg
steps:
  step_09_ups_serial: UPS serial number
projects:
  - name: Lawley
    group_jid: "120363000000000001@g.us"
    description: Lawley Activation 3 group
""",
    Path("projects.yaml"),
)


def review(project: str | None = "Lawley", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {s: True for s in STEP_COLUMNS}
    row.update(
        drop_number="DR80000004",
        project=project,
        incorrect_steps=None,
        incorrect_comments=None,
    )
    row.update(overrides)
    return row


def test_a_review_missing_a_step_drafts_a_correction_for_the_projects_group() -> None:
    draft = draft_for(review(step_09_ups_serial=False), CONFIG)
    assert draft.message.splitlines()[:2] == ["DR80000004", "NEEDS CORRECTION"]
    assert "• 9. UPS serial number" in draft.message  # the projects file's label
    assert draft.recipient == "120363000000000001@g.us"


def test_a_drop_without_a_configured_project_has_a_draft_but_no_recipient() -> None:
    draft = draft_for(review("Nowhere"), CONFIG)
    assert draft.message == "DR80000004\nAll items complete! ✅"
    assert draft.recipient is None
    assert draft_for(review(None), CONFIG).recipient is None
