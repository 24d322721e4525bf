"""The twelve QA photo steps of a drop review."""

from __future__ import annotations

# Column name → the label reviewers see (overridable under `steps:` in projects.yaml).
STEP_LABELS: dict[str, str] = {
    "step_01_house_photo": "House photo",
    "step_02_cable_from_pole": "Cable from pole",
    "step_03_cable_entry_outside": "Cable entry outside",
    "step_04_cable_entry_inside": "Cable entry inside",
    "step_05_wall_for_installation": "Wall for installation",
    "step_06_ont_back_after_install": "ONT back after install",
    "step_07_power_meter_reading": "Power meter reading",
    "step_08_ont_barcode": "ONT barcode",
    "step_09_ups_serial": "UPS serial",
    "step_10_final_installation": "Final installation",
    "step_11_green_lights": "Green lights",
    "step_12_customer_signature": "Customer signature",
}

STEP_COLUMNS: tuple[str, ...] = tuple(STEP_LABELS)

# The standard reasons a reviewer picks from when a step is rejected (besides free text),
# per step; a step's `reasons:` under `steps:` in projects.yaml replaces its list.
_COMMON_REASONS = ("blurred", "too dark", "wrong angle", "not this drop")
DEFAULT_REASONS: dict[str, tuple[str, ...]] = {step: _COMMON_REASONS for step in STEP_COLUMNS} | {
    "step_07_power_meter_reading": ("reading unreadable", *_COMMON_REASONS),
    "step_08_ont_barcode": ("serial unreadable", *_COMMON_REASONS),
    "step_09_ups_serial": ("serial unreadable", *_COMMON_REASONS),
    "step_11_green_lights": ("lights not green", *_COMMON_REASONS),
    "step_12_customer_signature": ("no signature", *_COMMON_REASONS),
}
# The longest reason a file or a reviewer may give.
MAX_REASON_LENGTH = 80
