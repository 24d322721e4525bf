"""What the company's Next.js front end reads, as data: field → JavaScript type.

Written from its TypeScript interfaces, API routes and pages (both versions: January 2026
and the newer one). A type is a JS `typeof`-like name, or several joined by `|`:
`string`, `number`, `boolean`, `null`, `array`, `object`, `iso` (a string `new Date()`
parses: an ISO date or date-time), `day` (`YYYY-MM-DD`). A missing field and a field of
another type are both reported by path, all at once, so a failure names what is wrong.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

Shape = dict[str, str]

STEPS = (
    "step_01_house_photo",
    "step_02_cable_from_pole",
    "step_03_cable_entry_outside",
    "step_04_cable_entry_inside",
    "step_05_wall_for_installation",
    "step_06_ont_back_after_install",
    "step_07_power_meter_reading",
    "step_08_ont_barcode",
    "step_09_ups_serial",
    "step_10_final_installation",
    "step_11_green_lights",
    "step_12_customer_signature",
)

# QaReviewDrop (types/wa-monitor.types.ts), January version.
DROP: Shape = {
    "id": "string",
    "dropNumber": "string",
    "status": "string",
    "reviewDate": "iso",
    "userName": "string",
    "completedPhotos": "number",
    "outstandingPhotos": "number",
    "outstandingPhotosLoadedTo1map": "boolean",
    "comment": "string|null",
    "createdAt": "iso",
    "updatedAt": "iso",
    "project": "string|null",
    "assignedAgent": "string|null",
    "completed": "boolean",
    "incomplete": "boolean",
    "feedbackSent": "iso|null",
    "senderPhone": "string|null",
    "resubmitted": "boolean",
    "lockedBy": "string|null",
    "lockedAt": "iso|null",
    "incorrectSteps": "array",
    "incorrectComments": "object",
    **dict.fromkeys(STEPS, "boolean"),
}

# The newer version's additions (stock scanning and 1Map); WA Monitor knows the serials it
# reads from photos, the rest is null.
DROP_NEWER: Shape = {
    "ontSerialScanned": "string|null",
    "upsSerialScanned": "string|null",
    "ontConsumptionId": "string|null",
    "upsConsumptionId": "string|null",
    "scanGpsLat": "number|null",
    "scanGpsLng": "number|null",
    "onemapOntBarcode": "string|null",
    "onemapOntActivationCode": "string|null",
    "onemapUpsSerial": "string|null",
    "onemapInstallerName": "string|null",
    "onemapInstallationDate": "string|null",
}
UNKNOWABLE = (
    "ontConsumptionId",
    "upsConsumptionId",
    "scanGpsLat",
    "scanGpsLng",
    "onemapOntBarcode",
    "onemapOntActivationCode",
    "onemapUpsSerial",
    "onemapInstallerName",
    "onemapInstallationDate",
)

# WaMonitorSummary, beside `data` in the drops list.
DROPS_SUMMARY: Shape = {
    "total": "number",
    "incomplete": "number",
    "complete": "number",
    "averageFeedbackCount": "number",
    "totalFeedback": "number",
}

# The newer drops route's top-level `pagination`.
PAGINATION: Shape = {
    "currentPage": "number",
    "pageSize": "number",
    "totalDrops": "number",
    "totalPages": "number",
    "hasNextPage": "boolean",
    "hasPreviousPage": "boolean",
}

# lockDrop() / unlockDrop() return `data` as these.
LOCKED: Shape = {"locked": "boolean", "lockedBy": "string", "lockedAt": "iso"}
UNLOCKED: Shape = {"unlocked": "boolean"}
# The 409 the lock route answers: the client reads these inside `error`.
LOCK_CONFLICT: Shape = {
    "code": "string",
    "message": "string",
    "lockedBy": "string",
    "lockedAt": "iso",
}

# send-feedback's answer (the client reads `success` and the top-level `message`).
FEEDBACK_SENT: Shape = {
    "dropNumber": "string",
    "project": "string|null",
    "group": "string",
    "recipient": "string|null",
    "sentAt": "iso",
}

# DailyDropsResponse.data and its rows.
DAILY: Shape = {"drops": "array", "total": "number", "date": "day"}
DAILY_ROW: Shape = {"date": "day", "project": "string", "count": "number"}

# project-stats: data.{project, stats.{today, week, month, allTime}}.
PERIOD: Shape = {
    "total": "number",
    "complete": "number",
    "incomplete": "number",
    "completionRate": "number",
}
PROJECT_STATS: Shape = {"project": "string", "stats": "object"}
PERIODS = ("today", "week", "month", "allTime")

# getAllProjectsStatsSummary(): what the projects page, the drops dashboard and the hook read.
SUMMARY: Shape = {
    "total": "number",
    "complete": "number",
    "incomplete": "number",
    "completionRate": "number",
    "byProject": "array",
    "overallStats": "object",
    "trends": "object",
    "outstanding": "object",
    "resubmissions": "object",
    "commonFailures": "array",
    "feedbackStats": "object",
    "agentPerformance": "array",
}
SUMMARY_PARTS: dict[str, Shape] = {
    "overallStats": {
        "totalInSystem": "number",
        "completedInSystem": "number",
        "systemCompletionRate": "number",
    },
    "trends.weekly": {"total": "number", "complete": "number", "completionRate": "number"},
    "trends.monthly": {"total": "number", "complete": "number", "completionRate": "number"},
    "outstanding": {"totalIncomplete": "number", "needsAttention": "number", "recent": "number"},
    "resubmissions": {"total": "number", "rate": "number", "firstTimePassRate": "number"},
    "feedbackStats": {"sent": "number", "pending": "number", "sendRate": "number"},
}
BY_PROJECT: Shape = {
    "project": "string",
    "total": "number",
    "complete": "number",
    "completionRate": "number",
    "overallTotal": "number",
    "overallComplete": "number",
    "overallCompletionRate": "number",
}
FAILURE: Shape = {"step": "string", "count": "number", "percentage": "number"}
AGENT: Shape = {"agent": "string", "drops": "number", "completionRate": "number"}

# SystemHealthPanel's HealthData.
HEALTH: Shape = {"overall_status": "string", "timestamp": "iso", "checks": "object"}
HEALTH_CHECKS = {
    "vps": ("whatsapp_bridge", "drop_monitor_prod", "drop_monitor_dev", "log_activity"),
    "database": ("connection", "table_exists", "recent_data"),
    "api": ("get_drops", "get_daily_drops"),
}
HEALTH_CHECK: Shape = {"status": "string", "details": "object"}
# Optional in HealthCheck; when present, of these types.
HEALTH_CHECK_OPTIONAL: Shape = {"latency_ms": "number", "error": "string"}
HEALTH_STATUSES = ("up", "down", "degraded", "stale")
OVERALL_STATUSES = ("healthy", "degraded", "down")

# DrValidationClient: POST's ValidationResult, its CSV and database rows, GET, PUT, DELETE.
VALIDATION: Shape = {
    "inCsvAndDb": "array",
    "inCsvNotInDb": "array",
    "inDbNotInCsv": "array",
    "csvTotal": "number",
    "dbTotal": "number",
}
CSV_ROW: Shape = {"date": "day", "dropNumber": "string", "time": "string"}
DB_ROW: Shape = {
    "id": "string",
    "dropNumber": "string",
    "date": "day",
    "time": "string",
    "project": "string",
    "completed": "boolean",
    "incomplete": "boolean",
}
DAY_DROPS: Shape = {"drops": "array", "total": "number"}
ADDED: Shape = {"inserted": "number", "ids": "array"}
DELETED: Shape = {"deleted": "boolean", "id": "string"}

# sync-sharepoint: a delivery, or `synced: 0` when the day has no drops.
SYNCED: Shape = {
    "succeeded": "number",
    "failed": "number",
    "total": "number",
    "message": "string",
    "date": "day",
    "projects": "array",
}
NOTHING_SYNCED: Shape = {"synced": "number", "message": "string", "date": "day"}

# apiResponse.ts: every answer's envelope.
ERROR: Shape = {"code": "string", "message": "string"}

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def js_type(value: Any) -> str:
    """The JavaScript type JSON.parse gives `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def is_iso(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        (date if _DAY.match(value) else datetime).fromisoformat(value)
    except ValueError:
        return False
    return True


def _fits(value: Any, kind: str) -> bool:
    if kind == "iso":
        return is_iso(value)
    if kind == "day":
        return isinstance(value, str) and bool(_DAY.match(value)) and is_iso(value)
    return js_type(value) == kind


def problems(value: Any, shape: Shape, where: str) -> list[str]:
    """Each field of `shape` missing from `value` or of another type, by its path."""
    if not isinstance(value, dict):
        return [f"{where} is {js_type(value)}, the front end reads an object"]
    found = []
    for name, kinds in shape.items():
        path = f"{where}.{name}"
        if name not in value:
            found.append(f"{path} is missing (the front end reads {kinds})")
        elif not any(_fits(value[name], kind) for kind in kinds.split("|")):
            found.append(f"{path} is {value[name]!r}, the front end reads {kinds}")
    return found


def check(value: Any, shape: Shape, where: str) -> None:
    found = problems(value, shape, where)
    assert not found, "\n".join(found)


def check_each(values: Any, shape: Shape, where: str) -> None:
    assert isinstance(values, list), f"{where} is {js_type(values)}, the front end reads an array"
    found = [p for i, v in enumerate(values) for p in problems(v, shape, f"{where}[{i}]")]
    assert not found, "\n".join(found[:40])


def check_success(answer: Any, where: str) -> Any:
    """apiResponse.success: `success: true`, `data`, `meta.timestamp`; returns `data`."""
    assert isinstance(answer, dict), f"{where}: the answer is {js_type(answer)}"
    assert answer.get("success") is True, f"{where}: success is {answer.get('success')!r}"
    assert "data" in answer, f"{where}: data is missing"
    assert is_iso((answer.get("meta") or {}).get("timestamp")), f"{where}: meta.timestamp"
    return answer["data"]


def check_error(answer: Any, codes: tuple[str, ...], where: str) -> dict[str, Any]:
    """apiResponse.error: `success: false`, `error.code` (one of `codes`), `error.message`."""
    assert isinstance(answer, dict), f"{where}: the answer is {js_type(answer)}"
    assert answer.get("success") is False, f"{where}: success is {answer.get('success')!r}"
    error = answer.get("error")
    check(error, ERROR, f"{where}.error")
    assert error["code"] in codes, f"{where}: error.code is {error['code']!r}, not one of {codes}"
    assert error["message"].strip(), f"{where}: error.message is empty"
    return dict(error)
