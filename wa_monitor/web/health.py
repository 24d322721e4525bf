"""Operational endpoints: /healthz, /readyz and /metrics."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
