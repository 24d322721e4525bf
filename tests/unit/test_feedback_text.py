"""The feedback text, as the company dashboard writes it (FIELD_NOTES section 2)."""

from __future__ import annotations

from wa_monitor.core.steps import STEP_COLUMNS, STEP_LABELS
from wa_monitor.feedback.outbox import feedback_text


def test_a_complete_review_says_all_items_complete() -> None:
    steps = dict.fromkeys(STEP_COLUMNS, True)
    assert feedback_text("DR12345678", steps) == "DR12345678\nAll items complete! ✅"


def test_missing_and_incorrect_items_follow_the_template() -> None:
    steps = dict.fromkeys(STEP_COLUMNS, True)
    steps["step_03_cable_entry_outside"] = False
    steps["step_01_house_photo"] = False
    text = feedback_text(
        "DR12345678",
        steps,
        ["step_01_house_photo"],
        {"step_01_house_photo": "Photo is of the neighbour's house"},
    )
    assert text == (
        "DR12345678\n"
        "NEEDS CORRECTION\n"
        "\n"
        "Missing items:\n"
        "• 3. Cable entry outside\n"
        "\n"
        "Incorrect items:\n"
        "• 1. House photo - Photo is of the neighbour's house"
    )


def test_items_keep_step_order_and_use_the_configured_labels() -> None:
    steps = dict.fromkeys(STEP_COLUMNS, False)
    labels = {**STEP_LABELS, "step_09_ups_serial": "UPS serial number"}
    text = feedback_text("DR1752169", steps, ["step_12_customer_signature"], {}, labels)
    lines = text.splitlines()
    assert lines[:4] == ["DR1752169", "NEEDS CORRECTION", "", "Missing items:"]
    missing = lines[4:15]
    assert [line.split(".")[0] for line in missing] == [f"• {n}" for n in range(1, 12)]
    assert "• 9. UPS serial number" in missing
    # An incorrect step without a comment is listed without a dash.
    assert lines[-2:] == ["Incorrect items:", "• 12. Customer signature"]


def test_only_incorrect_items_omit_the_missing_section() -> None:
    steps = dict.fromkeys(STEP_COLUMNS, True)
    steps["step_07_power_meter_reading"] = False
    text = feedback_text(
        "DR1",
        steps,
        ["step_07_power_meter_reading"],
        {"step_07_power_meter_reading": "-31 dBm, must be -25 to -10"},
    )
    assert "Missing items" not in text
    assert text.endswith("• 7. Power meter reading - -31 dBm, must be -25 to -10")
