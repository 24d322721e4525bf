"""Dashboard API figures (issue 5, target 6): measured once wa_monitor/web exists and works."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str]


def run_api(work: Path, worker: Callable[[str, dict[str, Any]], dict[str, Any]]) -> list[Row]:
    return [
        (
            "Dashboard API with 1,000,000 reviews (wrk -c32)",
            "not measured",
            "p99 ≤ 50 ms, ≥ 1,000 req/s",
            "⚠️ not measured yet",
        )
    ]
