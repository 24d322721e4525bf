"""GET /api/wa-monitor-health as SystemHealthPanel reads it."""

from __future__ import annotations

from tests.contract.shapes import (
    HEALTH,
    HEALTH_CHECK,
    HEALTH_CHECK_OPTIONAL,
    HEALTH_CHECKS,
    HEALTH_STATUSES,
    OVERALL_STATUSES,
    check,
    check_error,
    check_success,
    js_type,
)
from tests.contract.world import FrontEnd


def test_the_health_panel_gets_every_check(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-health")

    assert answer.status == 200, answer.body[:500]
    data = check_success(answer.json(), "health")
    check(data, HEALTH, "data")
    assert data["overall_status"] in OVERALL_STATUSES, data["overall_status"]
    for group, names in HEALTH_CHECKS.items():
        checks = data["checks"].get(group)
        assert isinstance(checks, dict), f"data.checks.{group} is {js_type(checks)}"
        for name in names:
            where = f"data.checks.{group}.{name}"
            item = checks.get(name)
            check(item, HEALTH_CHECK, where)
            assert item["status"] in HEALTH_STATUSES, (where, item["status"])
            for key, kind in HEALTH_CHECK_OPTIONAL.items():
                if key in item:
                    assert js_type(item[key]) == kind, (where, key, item[key])
    assert data["checks"]["database"]["connection"]["status"] == "up"


def test_the_health_answer_holds_no_secret(fe: FrontEnd) -> None:
    body = fe.get("/api/wa-monitor-health").body.decode()

    assert fe.token not in body
    assert "a-secret-key-for-the-hostile-test" not in body  # the server's SECRET_KEY


def test_health_refuses_another_method(fe: FrontEnd) -> None:
    answer = fe.call("POST", "/api/wa-monitor-health", {})

    assert answer.status == 405, answer.body[:300]
    check_error(answer.json(), ("METHOD_NOT_ALLOWED",), "POST health")
