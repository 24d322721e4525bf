"""What every request must be before a route sees it: bounded, and text that is valid Unicode.

Python decodes JSON's `\\udfff` (and UTF-8-encoded surrogates) into strings that cannot be
encoded again, Starlette replaces undecodable bytes in URLs and forms without a word, and
PostgreSQL's text refuses NUL. A value like that, once stored, breaks every later answer
that contains it, so it is refused here, for every route, with the field it came in.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wa_monitor.web.envelope import ApiError, error_response, scrub

# The largest legitimate body (a review edit: 17,000 characters of comments, each of
# which JSON may spell as a 12-byte surrogate pair) is about 210 KB.
MAX_BODY_BYTES = 256 * 1024
# The uploads (a client's drop list, CSV or XLSX) are the only multipart bodies, and the
# only ones allowed this much: a list of 500,000 numbers is about 6 MB as CSV.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_PATHS = (
    "/api/wa-monitor-drop-lists/",
    "/api/wa-monitor-reconcile",
    "/api/wa-monitor-dr-validation",
)
# Evolution API's webhook may carry the photo itself, as base64 (its webhook_base64):
# refused, it would be delivered again and again, and the caption's drop number with it.
MAX_WEBHOOK_BYTES = 16 * 1024 * 1024
MEDIA_WEBHOOK_PATH = "/webhooks/evolution"
# The gateways' calls are read by their own readers, which refuse what cannot be read and
# store hostile text made safe (store/inbox.checked): the JSON check here would only
# parse each body a second time on the busiest route.
WEBHOOK_PREFIX = "/webhooks/"
# Enough to fix a request; more only costs time to build and send.
MAX_PROBLEMS = 20

_SURROGATE = re.compile("[\ud800-\udfff]")
_JSON_TYPES = ("application/json",)


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored or answered as text, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    found = _SURROGATE.search(value)
    if found is not None:
        return (
            f"must be valid Unicode: a lone surrogate (U+{ord(found.group()):04X}) "
            f"at character {found.start() + 1}"
        )
    return None


Problem = tuple[str, str]  # (field, message)


def json_problems(value: Any, root: str = "body") -> list[Problem]:
    """The strings (keys included) of a parsed JSON value that are not valid text."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack and len(problems) < MAX_PROBLEMS:
        field, item = stack.pop()
        if isinstance(item, str):
            reason = text_problem(item)
            if reason is not None:
                problems.append((field, reason))
        elif isinstance(item, dict):
            for key, child in item.items():
                reason = text_problem(key)
                if reason is not None:
                    problems.append((f"{field}.{key}", f"the key {reason}"))
                stack.append((f"{field}.{key}", child))
        elif isinstance(item, list):
            stack.extend((f"{field}.{i}", child) for i, child in enumerate(item))
    problems.sort()
    return problems[:MAX_PROBLEMS]


def form_problems(raw: bytes, root: str) -> list[Problem]:
    """The fields of a query string or urlencoded form that do not decode to valid text."""
    problems: list[Problem] = []
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        name_text, name_reason = _form_text(name)
        field = f"{root}.{name_text}"
        if name_reason is not None:
            problems.append((field, f"the name {name_reason}"))
        _, value_reason = _form_text(value)
        if value_reason is not None:
            problems.append((field, value_reason))
        if len(problems) >= MAX_PROBLEMS:
            break
    return problems[:MAX_PROBLEMS]


def _form_text(raw: bytes) -> tuple[str, str | None]:
    return _decoded(unquote_to_bytes(raw.replace(b"+", b" ")))


def _decoded(data: bytes) -> tuple[str, str | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", "replace"), f"must be valid UTF-8 (byte {exc.start + 1})"
    return text, text_problem(text)


def path_problems(scope: Scope) -> list[Problem]:
    raw = scope.get("raw_path")
    if raw is not None:
        _, reason = _decoded(unquote_to_bytes(raw))
    else:
        reason = text_problem(scope["path"])
    return [] if reason is None else [("path", reason)]


def _invalid(problems: list[Problem]) -> ApiError:
    details = [
        {"field": scrub(field), "message": message, "type": "text_invalid"}
        for field, message in problems
    ]
    fields = ", ".join(dict.fromkeys(d["field"] for d in details))
    return ApiError(422, f"Invalid input: {fields}", details=details)


class InputGuard:
    """Refuses, before routing, a request whose size or text no route could accept.

    Bodies are read whole (up to MAX_BODY_BYTES, else 413; a POST to an upload path up
    to MAX_UPLOAD_BYTES) and handed on unchanged; requests without a body pass straight
    through.
    """

    def __init__(
        self, app: ASGIApp, max_body: int = MAX_BODY_BYTES, max_upload: int = MAX_UPLOAD_BYTES
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.max_upload = max_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problems = path_problems(scope) + form_problems(scope.get("query_string", b""), "query")
        if problems:
            await error_response(_invalid(problems))(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "content-length" not in headers and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        upload = is_upload(scope)
        limit = self.max_upload if upload else self.max_body
        if scope.get("method") == "POST" and scope.get("path") == MEDIA_WEBHOOK_PATH:
            limit = MAX_WEBHOOK_BYTES
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        if declared > limit:
            await error_response(self._too_large(limit, upload))(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                await error_response(self._too_large(limit, upload))(scope, receive, send)
                return
        webhook = str(scope.get("path", "")).startswith(WEBHOOK_PREFIX)
        error = None if upload or webhook else body_error(headers.get("content-type", ""), body)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self, limit: int, upload: bool) -> ApiError:
        if upload:
            return ApiError(
                413,
                f"The file is larger than {limit // (1024 * 1024)} MiB; send the drop "
                "number column alone (as CSV), or split the list",
            )
        return ApiError(413, f"The request body is larger than {limit // 1024} KiB; send less")


def is_upload(scope: Scope) -> bool:
    """A POST to one of the upload routes: its multipart body is read by the route, which
    checks its fields itself."""
    path = scope.get("path", "")
    return scope.get("method") == "POST" and any(
        path == p or (p.endswith("/") and path.startswith(p)) for p in UPLOAD_PATHS
    )


def body_error(content_type: str, body: bytes) -> ApiError | None:
    """Why a body is refused before routing (None: the route decides)."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return ApiError(
            415,
            "Only the file uploads take multipart bodies: send JSON, or a form as "
            "application/x-www-form-urlencoded",
        )
    if kind == "application/x-www-form-urlencoded":
        problems = form_problems(body, "body")
    elif not body or not (not kind or kind in _JSON_TYPES or kind.endswith("+json")):
        return None
    else:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return None  # not JSON: the route answers that, as it would without this check
        problems = json_problems(parsed)
    return _invalid(problems) if problems else None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_UPLOAD_BYTES",
    "InputGuard",
    "is_upload",
    "json_problems",
    "text_problem",
]
