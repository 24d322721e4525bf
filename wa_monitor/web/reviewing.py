"""Judging a drop: the steps and their standard rejection reasons."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.web.api import _config, _errors
from wa_monitor.web.auth import Viewer
from wa_monitor.web.envelope import Envelope, ok
from wa_monitor.web.models import StepOut

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)


def steps_out(config: ProjectsConfig) -> list[dict[str, Any]]:
    """The twelve steps in order, with the labels and reasons of the projects file."""
    return [
        StepOut(
            step=step,
            label=config.step_labels.get(step, step),
            reasons=list(config.step_reasons.get(step, ())),
        ).model_dump(mode="json")
        for step in STEP_COLUMNS
    ]


@router.get("/wa-monitor-steps", response_model=Envelope[list[StepOut]])
def list_steps(request: Request, _caller: Viewer) -> JSONResponse:
    """The twelve QA photo steps in order, each with its label and the standard reasons a
    reviewer picks from when rejecting it (the projects file's `steps:`, else the defaults).
    Free-text reasons are accepted too (PATCH incorrectReasons)."""
    return ok(steps_out(_config(request)))
