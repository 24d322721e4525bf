"""Feedback outbox drain (issue 5, target 7): measured once wa_monitor/feedback.py is ready."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str]


def run_feedback(work: Path, worker: Callable[[str, dict[str, Any]], dict[str, Any]]) -> list[Row]:
    return [
        (
            "Feedback outbox: 1,000 messages through a fake bridge",
            "not measured",
            "drains at the bridge's pace, bounded memory",
            "⚠️ not measured yet",
        )
    ]
