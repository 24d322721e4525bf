"""The HTTP API fuzzed from its own OpenAPI document (schemathesis), over a real socket:
valid and invalid requests as every kind of caller never get a 500, and every error is in
the contract's envelope. Then every input the document names (path parameters, query
strings, headers, body fields and keys) takes each kind of hostile value in turn: text
that is not valid Unicode is refused with 422, dates at the ends of the calendar too, and
nothing answers 500."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from tests.integration.test_api_support import (
    PROJECTS_YAML,
    LiveServer,
    People,
    add_people,
    minutes_ago,
    post,
    record,
    review,
    settings_for,
)
from wa_monitor.core.config import parse_config
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

ERROR_CODES = {"BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED",
               "CONFLICT", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE", "VALIDATION_ERROR",
               "TOO_MANY_REQUESTS", "INTERNAL_ERROR", "DATABASE_ERROR", "BRIDGE_ERROR",
               "MEDIA_STORE_UNAVAILABLE"}  # fmt: skip
SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options")
# Who calls, and how many generated requests per operation (valid and invalid).
CALLERS = {"admin": 15, "viewer": 5, "anonymous": 4, "garbage token": 3}


@pytest.fixture
def server(store: ReviewStore, tmp_path: Path) -> Iterator[tuple[str, People]]:
    people = add_people(store)
    record(
        store,
        post("DR12121212", minutes_ago(30)),
        post("DR12121212", minutes_ago(10)),
        post("DR34343434", minutes_ago(5), project="Mohadin"),
    )
    # The projects routes edit this file: a copy of the test's, never one in the tree.
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS_YAML)
    config = parse_config(PROJECTS_YAML, path)
    app = create_app(settings_for(store.url), config, store, run_sender=False)
    live = LiveServer(app).start()
    try:
        yield live.url, people
    finally:
        live.stop()


def _headers(caller: str, people: People) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "garbage token":
        return {"Authorization": "Bearer \u00ff" + "A" * 300}
    return people.bearer(caller)


def test_fuzzed_requests_never_fail_the_server_or_the_envelope(
    server: tuple[str, People],
) -> None:
    url, people = server
    schema = schemathesis.openapi.from_url(f"{url}/api/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    statuses: Counter[int] = Counter()
    carried: Counter[str] = Counter()
    for caller, examples in CALLERS.items():
        for operation in operations:
            try:
                fuzz(url, operation, _headers(caller, people), examples, statuses, carried)
            except BaseException as exc:
                pytest.fail(f"{caller}: {operation.method.upper()} {operation.path}: {exc}")
    print(
        f"fuzzed {len(operations)} operations as {', '.join(CALLERS)}: "
        f"{sum(statuses.values())} requests ({carried['path']} with path parameters, "
        f"{carried['query']} with query strings, {carried['headers']} with the documented "
        f"headers, {carried['body']} with bodies), statuses {dict(sorted(statuses.items()))}"
    )
    assert not any(status >= 500 for status in statuses)
    assert all(carried[where] for where in ("path", "query", "headers", "body")), carried


def fuzz(
    url: str,
    operation: Any,
    headers: dict[str, str],
    examples: int,
    statuses: Counter[int],
    carried: Counter[str],
) -> None:
    @given(
        case=operation.as_strategy()
        | operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    )
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        try:
            response = case.call(base_url=url, headers=headers, timeout=30)
        except (requests.ConnectionError, UnicodeEncodeError, ValueError):
            # The client could not send it (invalid header bytes), or uvicorn dropped it
            # before the app: the server must still answer.
            assert requests.get(f"{url}/healthz", timeout=10).ok
            return
        statuses[response.status_code] += 1
        for where, value in (
            ("path", case.path_parameters),
            ("query", case.query),
            ("headers", case.headers),
            ("body", case.body if case.media_type else None),
        ):
            carried[where] += bool(value)
        if response.content == b"Invalid HTTP request received.":
            return  # uvicorn's own 400 for bytes HTTP does not allow
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            body = response.json()
            assert body["success"] is False, body
            assert body["error"]["code"] in ERROR_CODES, body
            assert isinstance(body["error"]["message"], str), body
            assert "timestamp" in body["meta"], body

    check()


# -- every input, each kind of hostile value ----------------------------------------------

# Values a URL or a header can carry, as bytes (percent-encoded into URLs): `invalid`
# ones are not valid text and must be refused with 422 wherever they go.
URL_VALUES: list[tuple[bytes, bool]] = [
    (b"a\x00b", True),  # NUL: PostgreSQL text refuses it
    (b"\xed\xbf\xbf", True),  # a UTF-8-encoded lone surrogate
    (b"\xff\xfe", True),  # not UTF-8 at all
    (b"a" * 5000, False),
    (b"0001-01-01", False),
    (b"9999-12-31", False),
    (b"-1", False),
    (b"1" * 30, False),
    ("\u202e😀 ' OR 1=1 --".encode(), False),
]
HEADER_VALUES: list[tuple[bytes, bool]] = [
    (b"\xff\xfe-key-1234", True),
    (b"a" * 5000, False),
    (b'"1", W/"2"', False),
]
# Values a JSON body can carry, as JSON text (so lone surrogates travel as escapes).
BODY_VALUES: list[tuple[str, bool]] = [
    (json.dumps("\udfff"), True),
    (json.dumps("bad \ud83d"), True),
    (json.dumps("a\x00b"), True),
    (json.dumps("x" * 100_000), False),
    (json.dumps("\u202e😀"), False),
    ("[" * 50 + "]" * 50, False),
    ("1e999", False),
    ("-9223372036854775809", False),
]
DATE_PARAMETERS = {"date", "dateFrom", "dateTo", "startDate", "endDate"}


def _valid_bodies(drop_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid body per operation, so the hostile value is the request's only fault."""
    return {
        ("PATCH", "/api/wa-monitor-drops/{drop_id}"): {
            "comment": "ok",
            "incorrectSteps": ["step_01_house_photo"],
            "incorrectComments": {"step_01_house_photo": "blurry"},
        },
        ("POST", "/api/wa-monitor-send-feedback"): {
            "dropId": drop_id,
            "dropNumber": "DR12121212",
            "message": "hello",
            "project": "Lawley",
            "requestKey": "fuzz-key-0001",
        },
        ("POST", "/api/wa-monitor-users"): {
            "username": "fuzzed",
            "password": "long-enough-password",
            "role": "viewer",
        },
        ("PATCH", "/api/wa-monitor-users/{username}"): {"role": "viewer"},
        ("PATCH", "/api/wa-monitor-photos/{photo_id}"): {
            "step": "step_01_house_photo",
            "dropId": drop_id,
            "round": 0,
        },
        ("POST", "/api/wa-monitor-projects"): {
            "name": "Fuzzed",
            "groupJid": "120363400000000009@g.us",
        },
        ("POST", "/api/wa-monitor-drops/next"): {"project": "Lawley"},
        ("PUT", "/api/wa-monitor-dr-validation"): {
            "drops": [{"dropNumber": "DR12121212"}],
            "project": "Lawley",
        },
        ("POST", "/api/wa-monitor-drops/{drop_id}/assign"): {"agent": "reviewer"},
        ("POST", "/api/wa-monitor-drops/{drop_id}/lock"): {"userName": "Fuzz"},
        ("POST", "/api/wa-monitor-drops/{drop_id}/unlock"): {"userName": "Fuzz"},
        ("POST", "/api/wa-monitor-sync-sharepoint"): {},
        ("POST", "/api/wa-monitor-sync-sharepoint-test"): {},
        ("POST", "/api/wa-monitor-users/{username}/password"): {
            "password": "another-long-password"
        },
    }


def _body_with(body: dict[str, Any], field: str, value_json: str, as_key: bool) -> bytes:
    """The body's JSON with `field` set to the value (or, for a map, given it as a key)."""
    marker = "\x01hostile\x01"
    changed = dict(body)
    if as_key:
        changed[field] = {marker: "x"}
    else:
        changed[field] = marker
    text = json.dumps(changed)
    return text.replace(json.dumps(marker), value_json).encode()


def test_every_input_takes_each_kind_of_hostile_value(
    server: tuple[str, People], store: ReviewStore
) -> None:
    url, people = server
    doc = requests.get(f"{url}/api/openapi.json", timeout=10).json()
    drop_id = str(review(store, "DR12121212")["id"])
    real = {
        "drop_id": drop_id,
        "username": "viewer",
        "entry_id": "1",
        "name": "Lawley",
        "photo_id": "1",
        "sha256": "0" * 64,
    }
    bodies = _valid_bodies(drop_id)
    session = requests.Session()
    statuses: Counter[int] = Counter()
    injected: Counter[str] = Counter()

    def send(
        method: str, template: str, where: str, name: str, value: bytes | str, invalid: bool
    ) -> None:
        path = template
        for param, default in real.items():
            raw = value if (where == "path" and name == param) else default.encode()
            assert isinstance(raw, bytes)
            path = path.replace("{" + param + "}", quote_from_bytes(raw, safe=""))
        target = f"{url}{path}"
        headers: dict[str, str | bytes] = dict(people.bearer("admin"))
        data: bytes | None = None
        if where == "query":
            assert isinstance(value, bytes)
            target += f"?{name}={quote_from_bytes(value, safe='')}"
        elif where == "header":
            headers[name] = value
        body = bodies.get((method, template))
        if where.startswith("body"):
            assert isinstance(value, str) and body is not None
            data = _body_with(body, name, value, as_key=where == "body key")
        elif body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        response = session.request(method, target, data=data, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        injected[where] += 1
        what = f"{method} {template}: {value!r:.60} in {where} {name} -> {response.status_code}"
        assert response.status_code < 500, what + response.text[:300]
        assert all(h in response.headers for h in SECURITY_HEADERS), what
        if response.status_code >= 400:
            body_json = response.json()
            assert body_json["success"] is False and body_json["error"]["code"] in ERROR_CODES
        calendar_end = name in DATE_PARAMETERS and value in (b"0001-01-01", b"9999-12-31")
        if (invalid and where != "header") or calendar_end:
            assert response.status_code == 422, what + response.text[:300]
        elif invalid:  # a header's own check may answer 400
            assert 400 <= response.status_code < 500, what

    operations = 0
    for template, methods in doc["paths"].items():
        for method, operation in methods.items():
            operations += 1
            method = method.upper()
            for parameter in operation.get("parameters", []):
                values = HEADER_VALUES if parameter["in"] == "header" else URL_VALUES
                for value, invalid in values:
                    send(method, template, parameter["in"], parameter["name"], value, invalid)
            body = bodies.get((method, template))
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content:
                # An uploaded file's contents are the input there: the drop list tests give
                # those routes hostile files; here they get the hostile URLs and headers.
                continue
            if body is None:
                assert "requestBody" not in operation, f"no valid body for {method} {template}"
                continue
            schema = operation["requestBody"]["content"]["application/json"]["schema"]
            # An optional body is "anyOf: [its model, null]".
            ref = next(s["$ref"] for s in schema.get("anyOf", [schema]) if "$ref" in s)
            fields = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
            for field in fields:
                for value_json, invalid in BODY_VALUES:
                    send(method, template, "body", field, value_json, invalid)
                send(method, template, "body key", field, json.dumps("\udfff"), True)
    print(
        f"hostile inputs: {operations} operations, {sum(injected.values())} requests "
        f"({', '.join(f'{n} into {where}' for where, n in sorted(injected.items()))}): "
        f"NUL, lone and encoded surrogates, undecodable bytes, 5,000-character and 100 KB "
        "strings, calendar ends, huge numbers, deep nesting; "
        f"statuses {dict(sorted(statuses.items()))}"
    )
    assert injected["path"] and injected["query"] and injected["header"] and injected["body"]
