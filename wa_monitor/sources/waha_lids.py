"""Asking WAHA for the phone number behind a LID: `GET {WAHA_URL}/api/{session}/lids/{lid}`.

WAHA answers `{"lid": "…@lid", "pn": "…@c.us"}`, `pn` null (or a 404) when it does not
know the number. The key goes in `X-Api-Key`. Nothing here raises for one LID: the answer
is a `LidAnswer` whose status says what to do (`found`, `unknown`: ask again much later,
`retry`: WAHA did not answer). The monitor asks outside its scan batches, with a short
timeout, and caches what it learns in the review database (`gateway_lids`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import httpx

from wa_monitor.sources.bridge import sender_user

__all__ = ["LidAnswer", "LidStatus", "WahaLidClient"]

LidStatus = Literal["found", "unknown", "retry"]


@dataclass(frozen=True)
class LidAnswer:
    """What WAHA said of one LID: its phone number (the user part) when `found`."""

    status: LidStatus
    phone: str | None = None
    reason: str = ""


class WahaLidClient:
    """Looks LIDs up at WAHA's `base_url` for one session; safe to share between threads."""

    def __init__(
        self, base_url: str, api_key: str | None, session: str, *, timeout: float = 3.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout
        headers = {"X-Api-Key": api_key} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def phone_of(self, lid: str) -> LidAnswer:
        """The phone number of `lid` (`123@lid` or bare digits); never raises for it."""
        user = sender_user(lid)
        if not user.isdigit():
            return LidAnswer("unknown", reason=f"{lid!r} is not a LID")
        url = (
            f"{self.base_url}/api/{quote(self.session, safe='')}/lids/"
            f"{quote(f'{user}@lid', safe='')}"
        )
        try:
            response = self._http.get(url)
        except httpx.TimeoutException:
            return LidAnswer("retry", reason=f"WAHA did not answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return LidAnswer("retry", reason=f"WAHA at {self.base_url} is unreachable ({exc})")
        if response.status_code == 404:
            return LidAnswer("unknown", reason="WAHA does not know this LID")
        if response.status_code in (401, 403):
            refused = f"WAHA refused the API key (HTTP {response.status_code})"
            return LidAnswer("retry", reason=f"{refused}; check WAHA_API_KEY")
        if response.status_code != 200:
            return LidAnswer("retry", reason=f"WAHA answered HTTP {response.status_code}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return LidAnswer("retry", reason="WAHA's answer is not a JSON object")
        pn = answer.get("pn") or answer.get("phone")
        phone = sender_user(pn) if isinstance(pn, str) else ""
        if not phone.isdigit():
            return LidAnswer("unknown", reason="WAHA has no phone number for this LID")
        return LidAnswer("found", phone=phone)
