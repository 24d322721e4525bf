"""The review card's writes as the front end sends them: lock → PATCH → unlock with the
acting person's `userName`, a second person's 409, the drop number corrected, feedback sent."""

from __future__ import annotations

from typing import Any

from tests.contract import world as w
from tests.contract.shapes import (
    DROP,
    FEEDBACK_SENT,
    LOCK_CONFLICT,
    LOCKED,
    STEPS,
    UNLOCKED,
    check,
    check_error,
    check_success,
)
from tests.contract.world import FrontEnd


def lock(fe: FrontEnd, number: str, person: str, *, header: bool = True) -> Any:
    """lockDrop(): the body names the card's user; the proxy's header names its sign-in."""
    return fe.call(
        "POST",
        f"/api/wa-monitor-drops/{fe.ids[number]}/lock",
        {"userName": person},
        acting=person if header else None,
    )


def unlock(fe: FrontEnd, number: str, person: str) -> Any:
    return fe.call(
        "POST",
        f"/api/wa-monitor-drops/{fe.ids[number]}/unlock",
        {"userName": person},
        acting=person,
    )


def save(fe: FrontEnd, number: str, person: str, changes: dict[str, Any]) -> Any:
    return fe.call("PATCH", f"/api/wa-monitor-drops/{fe.ids[number]}", changes, acting=person)


def card_save(ticked: int) -> dict[str, Any]:
    """What QaReviewCard's handleSave sends: the steps, comment, flags, incorrect steps."""
    steps = {step: i < ticked for i, step in enumerate(STEPS)}
    return {
        **steps,
        "comment": "UPS serial photo is blurred",
        "incomplete": ticked < len(STEPS),
        "completed": ticked == len(STEPS),
        "incorrectSteps": ["step_09_ups_serial"],
        "incorrectComments": {"step_09_ups_serial": "Blurred, retake"},
    }


def test_the_card_locks_saves_and_unlocks_as_the_acting_person(fe: FrontEnd) -> None:
    number = w.LOCK_CYCLE

    locked = lock(fe, number, w.ACTING)
    assert locked.status == 200, locked.body[:500]
    data = check_success(locked.json(), "lock")
    check(data, LOCKED, "lock.data")
    assert (data["locked"], data["lockedBy"]) == (True, w.ACTING)
    again = lock(fe, number, w.ACTING)  # the same person again refreshes the lock
    assert again.status == 200 and again.json()["data"]["lockedBy"] == w.ACTING

    saved = save(fe, number, w.ACTING, card_save(ticked=5))
    assert saved.status == 200, saved.body[:500]
    check(check_success(saved.json(), "PATCH"), DROP, "PATCH.data")

    unlocked = unlock(fe, number, w.ACTING)
    assert unlocked.status == 200, unlocked.body[:500]
    data = check_success(unlocked.json(), "unlock")
    check(data, UNLOCKED, "unlock.data")
    assert data["unlocked"] is True
    drop = fe.drop(number)
    assert (drop["lockedBy"], drop["lockedAt"]) == (None, None)
    assert [s for s in STEPS if drop[s]] == list(STEPS[:5])
    assert drop["comment"] == "UPS serial photo is blurred"
    assert drop["incorrectSteps"] == ["step_09_ups_serial"]
    assert drop["incorrectComments"] == {"step_09_ups_serial": "Blurred, retake"}
    assert (drop["status"], drop["incomplete"], drop["completed"]) == ("incomplete", True, False)
    # The drop's history names the person, not the front end's account.
    history = fe.get(f"/api/wa-monitor-drops/{fe.ids[number]}").json()["data"]["edits"]
    assert history and {e["actor"] for e in history} == {w.ACTING}, history


def test_a_second_person_sees_who_holds_the_lock(fe: FrontEnd) -> None:
    number = w.LOCK_CONFLICT
    assert lock(fe, number, w.ACTING).status == 200

    refused = lock(fe, number, w.OTHER)

    assert refused.status == 409, refused.body[:500]
    error = check_error(refused.json(), ("CONFLICT", "LOCKED_BY_ANOTHER_USER"), "lock 409")
    check(error, LOCK_CONFLICT, "error")  # lockDrop() reads data.error.lockedBy / lockedAt
    assert error["lockedBy"] == w.ACTING
    assert error["message"] == f"Drop is currently being edited by {w.ACTING}"
    # Nor may they release it; the holder still holds it.
    assert unlock(fe, number, w.OTHER).status in (403, 409)
    assert fe.drop(number)["lockedBy"] == w.ACTING
    assert unlock(fe, number, w.ACTING).status == 200
    taken = lock(fe, number, w.OTHER)
    assert taken.status == 200 and taken.json()["data"]["lockedBy"] == w.OTHER
    assert unlock(fe, number, w.OTHER).status == 200


def test_the_body_names_the_person_when_the_proxy_sends_no_header(fe: FrontEnd) -> None:
    number = w.drop_number("Mohadin", 0, 10)

    locked = lock(fe, number, w.OTHER, header=False)

    assert locked.status == 200, locked.body[:500]
    assert locked.json()["data"]["lockedBy"] == w.OTHER
    assert fe.drop(number)["lockedBy"] == w.OTHER
    released = fe.call(
        "POST", f"/api/wa-monitor-drops/{fe.ids[number]}/unlock", {"userName": w.OTHER}, acting=None
    )
    assert released.status == 200, released.body[:500]
    assert released.json()["data"]["unlocked"] is True
    assert fe.drop(number)["lockedBy"] is None


def test_unlocking_a_drop_nobody_holds_is_fine(fe: FrontEnd) -> None:
    answer = unlock(fe, w.drop_number("Mohadin", 0, 9), w.ACTING)

    assert answer.status == 200, answer.body[:300]
    assert check_success(answer.json(), "unlock")["unlocked"] is True


def test_the_card_corrects_a_mistyped_drop_number(fe: FrontEnd) -> None:
    corrected = "DR31999999"

    answer = save(fe, w.RENAMED, w.ACTING, {"dropNumber": corrected})

    assert answer.status == 200, answer.body[:500]
    assert check_success(answer.json(), "PATCH dropNumber")["dropNumber"] == corrected
    assert fe.drop(w.RENAMED)["dropNumber"] == corrected  # the same drop, by its id
    listed = fe.get("/api/wa-monitor-drops?page=1&limit=1000&search=DR31999999").json()["data"]
    assert [d["id"] for d in listed] == [fe.ids[w.RENAMED]]
    # A number another drop of the project already has is refused, naming both.
    taken = save(fe, w.RENAMED, w.ACTING, {"dropNumber": w.RENAME_TAKEN})
    assert taken.status == 409, taken.body[:500]
    error = check_error(taken.json(), ("CONFLICT",), "PATCH dropNumber taken")
    assert fe.ids[w.RENAMED] in str(error.get("details")), error
    assert fe.ids[w.RENAME_TAKEN] in str(error.get("details")), error
    assert fe.drop(w.RENAMED)["dropNumber"] == corrected
    assert fe.drop(w.RENAME_TAKEN)["dropNumber"] == w.RENAME_TAKEN


def test_saving_an_unknown_drop_or_nothing(fe: FrontEnd) -> None:
    unknown = fe.call("PATCH", f"/api/wa-monitor-drops/{w.unknown_id()}", card_save(1))
    nothing = fe.call("PATCH", f"/api/wa-monitor-drops/{fe.ids[w.LOCK_CYCLE]}", {})

    assert unknown.status == 404, unknown.body[:300]
    check_error(unknown.json(), ("NOT_FOUND",), "PATCH unknown id")
    # The front end's route: "No fields to update", 400.
    assert nothing.status == 400, nothing.body[:300]
    check_error(nothing.json(), ("BAD_REQUEST",), "PATCH {}")


def test_locking_an_unknown_drop_is_not_found(fe: FrontEnd) -> None:
    answer = fe.call("POST", f"/api/wa-monitor-drops/{w.unknown_id()}/lock", {"userName": w.ACTING})

    assert answer.status == 404, answer.body[:300]
    check_error(answer.json(), ("NOT_FOUND",), "lock unknown id")


def test_send_feedback_posts_to_the_group_as_the_acting_person(fe: FrontEnd) -> None:
    number = w.SEND_FEEDBACK
    message = f"{number}\nNEEDS CORRECTION\n\nMissing items:\n• 3. Cable entry outside"
    before = len(fe.bridge.sent)

    answer = fe.call(
        "POST",
        "/api/wa-monitor-send-feedback",
        {"dropId": fe.ids[number], "dropNumber": number, "message": message, "project": "Mohadin"},
    )

    assert answer.status == 200, answer.body[:500]
    body = answer.json()
    data = check_success(body, "send-feedback")
    check(data, FEEDBACK_SENT, "send-feedback.data")
    assert isinstance(body.get("message"), str) and body["message"], body
    assert (data["dropNumber"], data["project"]) == (number, "Mohadin")
    [sent] = fe.bridge.sent[before:]
    assert sent["recipient"] == w.MOHADIN and number in sent["message"]
    assert fe.drop(number)["feedbackSent"] is not None
    outbox = fe.get(f"/api/wa-monitor-drops/{fe.ids[number]}").json()["data"]["feedback"]
    assert [e.get("requestedBy") for e in outbox] == [w.ACTING], outbox


def test_send_feedback_errors_the_client_shows(fe: FrontEnd) -> None:
    missing = fe.call("POST", "/api/wa-monitor-send-feedback", {"message": "hello"})
    unknown = fe.call(
        "POST",
        "/api/wa-monitor-send-feedback",
        {
            "dropId": w.unknown_id(),
            "dropNumber": "DR10000000",
            "message": "hi",
            "project": "Lawley",
        },
    )

    # The front end's route answers 400 for a missing dropId; a 422 with details says more.
    assert missing.status in (400, 422), missing.body[:300]
    check_error(missing.json(), ("BAD_REQUEST", "VALIDATION_ERROR"), "send-feedback {}")
    assert unknown.status == 404, unknown.body[:300]
    check_error(unknown.json(), ("NOT_FOUND",), "send-feedback unknown drop")
