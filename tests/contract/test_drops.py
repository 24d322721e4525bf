"""GET /api/wa-monitor-drops as the front end's fetchAllDrops, fetchDropById and
fetchDropsByStatus call it (January), and with the newer version's page/limit/search."""

from __future__ import annotations

from tests.contract import world as w
from tests.contract.shapes import (
    DROP,
    DROP_NEWER,
    DROPS_SUMMARY,
    PAGINATION,
    UNKNOWABLE,
    check,
    check_each,
    check_error,
    check_success,
)
from tests.contract.world import FrontEnd


def numbers(drops: list[dict[str, object]]) -> set[object]:
    return {d["dropNumber"] for d in drops}


def test_fetch_all_drops_gets_every_drop_in_one_answer(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-drops")

    assert answer.status == 200, answer.body[:500]
    body = answer.json()
    drops = check_success(body, "GET /api/wa-monitor-drops")
    check_each(drops, DROP | DROP_NEWER, "data")
    assert len(drops) == w.ALL_DROPS, f"{len(drops)} of {w.ALL_DROPS} drops in one answer"
    assert len({d["id"] for d in drops}) == w.ALL_DROPS
    check(body.get("summary"), DROPS_SUMMARY, "summary")
    assert body["summary"]["total"] == w.ALL_DROPS


def test_a_drop_has_what_the_card_shows(fe: FrontEnd) -> None:
    drops = {d["dropNumber"]: d for d in fe.get("/api/wa-monitor-drops").json()["data"]}

    approved = drops[w.COMPLETED[0]]
    assert (approved["status"], approved["completed"], approved["incomplete"]) == (
        "complete",
        True,
        False,
    )
    assert {d["status"] for d in drops.values()} <= {"complete", "incomplete"}
    assert drops[w.RESUBMITTED]["resubmitted"] is True
    assert drops[w.FEEDBACK_SENT]["feedbackSent"] is not None
    fresh = drops[w.drop_number("Mohadin", 0, 1)]
    assert fresh["project"] == "Mohadin"
    assert fresh["userName"] == w.INSTALLER[1]
    assert fresh["senderPhone"] == w.INSTALLER[0]
    assert fresh["resubmitted"] is False and fresh["feedbackSent"] is None
    assert fresh["incorrectSteps"] == [] and fresh["incorrectComments"] == {}
    # What WA Monitor cannot know (1Map, stock consumption, scan GPS) is null, never absent.
    assert {k: fresh[k] for k in UNKNOWABLE} == dict.fromkeys(UNKNOWABLE)
    assert fresh["outstandingPhotosLoadedTo1map"] is False


def test_fetch_drop_by_id_answers_one_drop_object(fe: FrontEnd) -> None:
    number = w.drop_number("Lawley", 3, 1)

    answer = fe.get(f"/api/wa-monitor-drops?id={fe.ids[number]}")

    assert answer.status == 200, answer.body[:500]
    drop = check_success(answer.json(), "GET ?id=")
    check(drop, DROP | DROP_NEWER, "data")
    assert (drop["id"], drop["dropNumber"]) == (fe.ids[number], number)


def test_an_unknown_id_is_not_found(fe: FrontEnd) -> None:
    # The front end's own integration test asks for "nonexistent-id-12345".
    for unknown in (w.unknown_id(), "nonexistent-id-12345"):
        answer = fe.get(f"/api/wa-monitor-drops?id={unknown}")
        assert answer.status == 404, (unknown, answer.status, answer.body[:300])
        check_error(answer.json(), ("NOT_FOUND",), f"GET ?id={unknown}")


def test_fetch_drops_by_status(fe: FrontEnd) -> None:
    complete = fe.get("/api/wa-monitor-drops?status=complete")
    incomplete = fe.get("/api/wa-monitor-drops?status=incomplete")

    assert (complete.status, incomplete.status) == (200, 200)
    done = check_success(complete.json(), "?status=complete")
    waiting = check_success(incomplete.json(), "?status=incomplete")
    check_each(done + waiting, DROP, "data")
    assert numbers(done) == set(w.COMPLETED)
    assert {d["status"] for d in waiting} == {"incomplete"}
    assert len(waiting) == w.ALL_DROPS - len(w.COMPLETED)


def test_an_unknown_status_is_a_validation_error(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-drops?status=done")

    assert answer.status == 422, answer.body[:300]
    check_error(answer.json(), ("VALIDATION_ERROR",), "?status=done")


def test_newer_version_pages_with_page_and_limit(fe: FrontEnd) -> None:
    everything = fe.get("/api/wa-monitor-drops?page=1&limit=1000")
    first = fe.get("/api/wa-monitor-drops?page=1&limit=50")
    second = fe.get("/api/wa-monitor-drops?page=2&limit=50")

    assert (everything.status, first.status, second.status) == (200, 200, 200)
    body = everything.json()
    assert len(check_success(body, "?page=1&limit=1000")) == w.ALL_DROPS
    check(body.get("pagination"), PAGINATION, "pagination")
    assert body["pagination"] | {"pageSize": None} == {
        "currentPage": 1,
        "pageSize": None,
        "totalDrops": w.ALL_DROPS,
        "totalPages": 1,
        "hasNextPage": False,
        "hasPreviousPage": False,
    }
    one, two = first.json(), second.json()
    check(one.get("pagination"), PAGINATION, "pagination")
    check(two.get("pagination"), PAGINATION, "pagination")
    assert (len(one["data"]), len(two["data"])) == (50, w.ALL_DROPS - 50)
    assert len(numbers(one["data"]) | numbers(two["data"])) == w.ALL_DROPS
    assert one["pagination"]["hasNextPage"] is True
    assert (two["pagination"]["currentPage"], two["pagination"]["hasPreviousPage"]) == (2, True)


def test_newer_version_limit_alone(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-drops?limit=10")

    assert answer.status == 200, answer.body[:300]
    assert len(check_success(answer.json(), "?limit=10")) == 10


def test_newer_version_searches_drop_numbers(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-drops?page=1&limit=1000&search=dr21")

    assert answer.status == 200, answer.body[:300]
    found = check_success(answer.json(), "?search=dr21")
    assert numbers(found) == {w.drop_number("Mohadin", 0, i) for i in range(1, 13)}


def test_newer_version_searches_project_names(fe: FrontEnd) -> None:
    # The newer route matches the search against the drop number or the project.
    answer = fe.get("/api/wa-monitor-drops?page=1&limit=1000&search=mohadin")

    assert answer.status == 200, answer.body[:300]
    found = check_success(answer.json(), "?search=mohadin")
    assert len(found) == w.TODAY_BY_PROJECT["Mohadin"]
    assert {d["project"] for d in found} == {"Mohadin"}


def test_another_method_is_not_allowed(fe: FrontEnd) -> None:
    answer = fe.call("POST", "/api/wa-monitor-drops", {})

    assert answer.status == 405, answer.body[:300]
    check_error(answer.json(), ("METHOD_NOT_ALLOWED",), "POST /api/wa-monitor-drops")
    assert "GET" in answer.headers.get("allow", ""), answer.headers
