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
