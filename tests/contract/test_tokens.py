"""Who may call: the front end's proxy always sends its token; without one, or with a
revoked one, every route is 401; the front-end token never reaches admin routes."""

from __future__ import annotations

import pytest

from tests.contract import world as w
from tests.contract.shapes import check_error
from tests.contract.world import FrontEnd

ROUTES = [
    ("GET", "/api/wa-monitor-drops"),
    ("GET", "/api/wa-monitor-daily-drops"),
    ("GET", "/api/wa-monitor-project-stats?project=Lawley"),
    ("GET", "/api/wa-monitor-projects-summary"),
    ("GET", "/api/wa-monitor-health"),
    ("GET", "/api/wa-monitor-dr-validation?project=Lawley&date=2026-01-05"),
    ("POST", "/api/wa-monitor-send-feedback"),
    ("POST", "/api/wa-monitor-sync-sharepoint"),
    ("POST", "/api/wa-monitor-sync-sharepoint-test"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_token_every_route_is_unauthorized(fe: FrontEnd, method: str, path: str) -> None:
    body = {} if method == "POST" else None

    bare = fe.call(method, path, body, token=None, acting=None)
    wrong = fe.call(method, path, body, token="not-a-token-of-this-server")

    for answer in (bare, wrong):
        assert answer.status == 401, (method, path, answer.status, answer.body[:300])
        check_error(answer.json(), ("UNAUTHORIZED",), f"{method} {path}")


def test_lock_and_edit_routes_need_a_token_too(fe: FrontEnd) -> None:
    drop = fe.ids[w.drop_number("Mohadin", 0, 8)]
    for method, path, body in (
        ("POST", f"/api/wa-monitor-drops/{drop}/lock", {"userName": w.ACTING}),
        ("POST", f"/api/wa-monitor-drops/{drop}/unlock", {"userName": w.ACTING}),
        ("PATCH", f"/api/wa-monitor-drops/{drop}", {"comment": "x"}),
    ):
        answer = fe.call(method, path, body, token=None, acting=None)
        assert answer.status == 401, (method, path, answer.status)
    assert fe.drop(w.drop_number("Mohadin", 0, 8))["comment"] in (None, "")


def test_the_front_end_token_never_reaches_admin_routes(fe: FrontEnd) -> None:
    add_user = fe.call(
        "POST",
        "/api/wa-monitor-users",
        {"username": "mallory", "password": "a-long-enough-password", "role": "admin"},
    )
    users = fe.get("/api/wa-monitor-users")

    for answer in (add_user, users):
        assert answer.status == 403, answer.body[:300]
        check_error(answer.json(), ("FORBIDDEN",), "admin route with the front-end token")


def test_only_a_front_end_token_may_name_the_acting_person(fe: FrontEnd) -> None:
    answer = fe.server.request(
        "GET", "/api/wa-monitor-drops?limit=1", headers={"X-Acting-User": w.ACTING}, role="reviewer"
    )

    assert answer.status == 403, answer.body[:300]
    check_error(answer.json(), ("FORBIDDEN",), "X-Acting-User with an ordinary token")
