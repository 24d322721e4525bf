"""The API contract's envelopes, for every answer including errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from http import HTTPStatus
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from wa_monitor.core.errors import ReviewDatabaseError, ReviewDataError

log = logging.getLogger("wa_monitor.web")

T = TypeVar("T")

CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
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
    # A few errors carry more beside the message (a lock's holder: error.lockedBy).
    model_config = ConfigDict(extra="allow")

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
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, HTTPStatus(status).phrase.upper().replace(" ", "_"))
        self.message = message
        self.details = details
        self.headers = headers
        self.extra = extra or {}  # keys of the error object beside code, message, details


def scrub(text: str) -> str:
    """`text` with each lone surrogate (which UTF-8 cannot carry) replaced by U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def utf8(text: str) -> bytes:
    """`text` as UTF-8, whatever it holds: an answer is never lost to one bad character."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return scrub(text).encode()


class SafeJSONResponse(JSONResponse):
    """A JSON answer that a lone surrogate in the data (an old row, an echoed input)
    cannot turn into a 500: it is sent as U+FFFD."""

    def render(self, content: Any) -> bytes:
        return utf8(_dumps(content))


def meta() -> Meta:
    return Meta(timestamp=datetime.now(UTC))


_dumps = partial(json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def ok(data: Any, message: str | None = None, *, status: int = 200, **extra: Any) -> JSONResponse:
    """A success envelope; `extra` adds top-level keys (e.g. summary) or replaces meta."""
    body: dict[str, Any] = {"success": True, "data": data}
    if message is not None:
        body["message"] = message
    body["meta"] = meta().model_dump(mode="json")
    for key, value in extra.items():
        body[key] = value
    return SafeJSONResponse(body, status_code=status)


def encode(data: Any) -> str:
    """`data` as the JSON an envelope carries (to keep an answer encoded in memory)."""
    return _dumps(data)


def ok_encoded(data_json: str, **extra: Any) -> Response:
    """ok() for data already encoded by `encode`: only the rest is encoded per request."""
    head = {"meta": extra.pop("meta", None) or meta().model_dump(mode="json"), **extra}
    rest = "".join(f",{_dumps(k)}:{_dumps(v)}" for k, v in head.items())
    body = f'{{"success":true,"data":{data_json}{rest}}}'
    return Response(utf8(body), media_type="application/json")


def ok_streamed(items: Iterable[str], **extra: Any) -> StreamingResponse:
    """ok() for a list sent as it is read: `items` yields each element already encoded,
    so an answer of any length needs the memory of one batch, not of the whole list."""
    head = {"meta": extra.pop("meta", None) or meta().model_dump(mode="json"), **extra}
    rest = "".join(f",{_dumps(k)}:{_dumps(v)}" for k, v in head.items())

    def chunks() -> Iterator[bytes]:
        yield b'{"success":true,"data":['
        for n, item in enumerate(items):
            yield utf8(item if n == 0 else "," + item)
        yield utf8(f"]{rest}}}")

    return StreamingResponse(chunks(), media_type="application/json")


def error_response(err: ApiError) -> JSONResponse:
    body = ErrorEnvelope(
        error=ErrorBody(code=err.code, message=err.message, details=err.details), meta=meta()
    ).model_dump(mode="json", exclude_none=True)
    body["error"].update(err.extra)
    body["meta"] = meta().model_dump(mode="json")
    return SafeJSONResponse(body, status_code=err.status, headers=err.headers)


def internal_error() -> JSONResponse:
    return error_response(ApiError(500, "Internal error"))


_READABLE = {
    404: "Not found",
    405: "Method not allowed",
}


# Enough to fix a request; a 100,000-item body would otherwise cost seconds to describe.
MAX_DETAILS = 20
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for e in exc.errors()[:MAX_DETAILS]:
        loc = [str(p) for p in e.get("loc", ())]
        details.append({"field": ".".join(loc), "message": e.get("msg", ""), "type": e.get("type")})
    return details


def allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route answers at this request's path (the `Allow` of a 405)."""
    methods: set[str] = set()
    # Routing into a mount (static files) moved root_path to the mount's: match from the top.
    scope = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            methods.update(("GET", "HEAD"))  # static files
        else:
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")  # answered as GET without the body (see web/app.py)
    return sorted(methods, key=lambda m: (*_METHOD_ORDER, m).index(m))


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else _READABLE.get(exc.status_code, "")
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            # Starlette names the methods of the first route at the path, not of all.
            allow = ", ".join(allowed_methods(app.routes, request.scope))
            headers = {**(headers or {}), "Allow": allow}
        return error_response(ApiError(exc.status_code, message or "Error", headers=headers))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(
                ApiError(400, "The request body is not valid JSON", details=details)
            )
        fields = ", ".join(sorted({d["field"] for d in details}))
        more = len(exc.errors()) - len(details)
        if more > 0:
            fields += f" (and {more} more problems)"
        return error_response(ApiError(422, f"Invalid input: {fields}", details=details))

    @app.exception_handler(ReviewDataError)
    async def refused_value(request: Request, exc: ReviewDataError) -> JSONResponse:
        # Every input is checked first, so this is a check missing: say it plainly, log it.
        log.error(
            "review database refused a value on %s %s: %s", request.method, request.url.path, exc
        )
        return error_response(
            ApiError(
                422,
                "The review database refused a value of this request (too long, or a "
                "character it cannot store); change the input",
            )
        )

    @app.exception_handler(ReviewDatabaseError)
    async def database(_request: Request, exc: ReviewDatabaseError) -> JSONResponse:
        log.error("review database error: %s", exc)
        return error_response(
            ApiError(500, "The review database is unavailable", code="DATABASE_ERROR")
        )
