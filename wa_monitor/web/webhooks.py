"""The webhook gateways' calls: WAHA, Evolution API and the Go bridge fork, into the inbox."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
