"""The ONT and UPS serials in a photo's barcodes (pure: over the decoded texts)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

# An ONT's serial as its label's barcode carries it: a 4-letter vendor id and 8 hex digits
# (HWTC1A2B3C4D), or the same with the vendor id spelled as its 8 hex ASCII codes
# (48575443 1A2B3C4D), the other form printed on many labels.
GPON_SERIAL: Final = re.compile(r"^[A-Z]{4}[0-9A-F]{8}$")
_GPON_HEX: Final = re.compile(r"^((?:4[1-9A-F]|5[0-9A])){4}[0-9A-F]{8}$")
ONT_STEP: Final = "step_08_ont_barcode"
UPS_STEP: Final = "step_09_ups_serial"
_UPS_CAPTION: Final = re.compile(r"\bUPS\b", re.IGNORECASE)


def is_ont_serial(text: str) -> bool:
    """Whether a barcode's text is a GPON ONT serial, in either of its printed forms."""
    return bool(GPON_SERIAL.fullmatch(text) or _GPON_HEX.fullmatch(text))


def serials_from(
    barcodes: Sequence[Any], *, step: str | None, caption: str | None
) -> tuple[str | None, str | None]:
    """(ONT serial, UPS serial) read from a photo's barcodes.

    A barcode of the GPON form is the ONT's serial. Another barcode is the UPS's serial
    only on a photo assigned to the UPS step or captioned "UPS": elsewhere it may be any
    label (a meter, a box).
    """
    texts = [str(b["text"] if isinstance(b, dict) else b.text).strip() for b in barcodes]
    ont = next((t for t in texts if is_ont_serial(t)), None)
    ups = None
    if step == UPS_STEP or (caption and _UPS_CAPTION.search(caption)):
        ups = next((t for t in texts if t and not is_ont_serial(t)), None)
    return ont, ups
