"""The API contract's envelopes, for every answer including errors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from wa_monitor.errors import ReviewDatabaseError

log = logging.getLogger("wa_monitor.web")

T = TypeVar("T")

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    502: "BRIDGE_ERROR",
}


class Meta(BaseModel):
    timestamp: datetime


class Pagination(BaseModel):
    page: int
    pageSize: int
    total: int
    pages: int


class PagedMeta(Meta):
    pagination: Pagination


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T
    message: str | None = None
    meta: Meta


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any | None = None


class ErrorEnvelope(BaseModel):
    success: bool = False
    error: ErrorBody
    meta: Meta


class ApiError(Exception):
    """An answer other than success: status, contract code and a message for people."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Any | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, HTTPStatus(status).phrase.upper().replace(" ", "_"))
        self.message = message
        self.details = details
        self.headers = headers


def meta() -> Meta:
    return Meta(timestamp=datetime.now(UTC))


def ok(data: Any, message: str | None = None, *, status: int = 200, **extra: Any) -> JSONResponse:
    """A success envelope; `extra` adds top-level keys (e.g. summary) or replaces meta."""
    body: dict[str, Any] = {"success": True, "data": data}
    if message is not None:
        body["message"] = message
    body["meta"] = meta().model_dump(mode="json")
    for key, value in extra.items():
        body[key] = value
    return JSONResponse(body, status_code=status)


_dumps = partial(json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode(data: Any) -> str:
    """`data` as the JSON an envelope carries (to keep an answer encoded in memory)."""
    return _dumps(data)


def ok_encoded(data_json: str, **extra: Any) -> Response:
    """ok() for data already encoded by `encode`: only the rest is encoded per request."""
    head = {"meta": extra.pop("meta", None) or meta().model_dump(mode="json"), **extra}
    rest = "".join(f",{_dumps(k)}:{_dumps(v)}" for k, v in head.items())
    body = f'{{"success":true,"data":{data_json}{rest}}}'
    return Response(body.encode(), media_type="application/json")


def error_response(err: ApiError) -> JSONResponse:
    body = ErrorEnvelope(
        error=ErrorBody(code=err.code, message=err.message, details=err.details), meta=meta()
    ).model_dump(mode="json", exclude_none=True)
    body["meta"] = meta().model_dump(mode="json")
    return JSONResponse(body, status_code=err.status, headers=err.headers)


_READABLE = {
    404: "Not found",
    405: "Method not allowed",
}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ())]
        details.append({"field": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type")})
    return details


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _READABLE.get(exc.status_code, "")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(ApiError(exc.status_code, message or "Error", headers=headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(
                ApiError(400, "The request body is not valid JSON", details=details)
            )
        fields = ", ".join(sorted({d["field"] for d in details}))
        return error_response(ApiError(422, f"Invalid input: {fields}", details=details))

    @app.exception_handler(ReviewDatabaseError)
    async def database(_request: Request, exc: ReviewDatabaseError) -> JSONResponse:
        log.error("review database error: %s", exc)
        return error_response(
            ApiError(500, "The review database is unavailable", code="DATABASE_ERROR")
        )

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(ApiError(500, "Internal error"))
