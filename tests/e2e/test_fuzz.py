"""The HTTP API fuzzed from its own OpenAPI document (schemathesis), over a real socket:
valid and invalid requests as every kind of caller never get a 500, and every error is in
the contract's envelope."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from tests.integration.test_api_support import (
    LiveServer,
    People,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    settings_for,
)
from wa_monitor.store import ReviewStore
from wa_monitor.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

ERROR_CODES = {"BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED",
               "CONFLICT", "VALIDATION_ERROR", "TOO_MANY_REQUESTS", "INTERNAL_ERROR",
               "DATABASE_ERROR", "BRIDGE_ERROR"}  # fmt: skip
# Who calls, and how many generated requests per operation (valid and invalid).
CALLERS = {"admin": 15, "viewer": 5, "anonymous": 4, "garbage token": 3}


@pytest.fixture
def server(store: ReviewStore) -> Iterator[tuple[str, People]]:
    people = add_people(store)
    record(
        store,
        post("DR12121212", minutes_ago(30)),
        post("DR12121212", minutes_ago(10)),
        post("DR34343434", minutes_ago(5), project="Mohadin"),
    )
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
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
    for caller, examples in CALLERS.items():
        for operation in operations:
            try:
                fuzz(url, operation, _headers(caller, people), examples, statuses)
            except BaseException as exc:
                pytest.fail(f"{caller}: {operation.method.upper()} {operation.path}: {exc}")
    print(
        f"fuzzed {len(operations)} operations as {', '.join(CALLERS)}: "
        f"{sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}"
    )
    assert not any(status >= 500 for status in statuses)


def fuzz(
    url: str, operation: Any, headers: dict[str, str], examples: int, statuses: Counter[int]
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
        if response.text == "Invalid HTTP request received.":
            return  # uvicorn's own 400 for bytes HTTP does not allow
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            body = response.json()
            assert body["success"] is False, body
            assert body["error"]["code"] in ERROR_CODES, body
            assert isinstance(body["error"]["message"], str), body
            assert "timestamp" in body["meta"], body

    check()
