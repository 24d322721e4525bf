"""A drop's photos and thread through the API, reviewers' decisions on a photo, and the
photo figures of the drop list, on both backends.

The rows are written as the linker and the media worker leave them (group_messages), the
files put in a real media store folder.
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from tests.integration.test_api_support import (
    LAWLEY_JID,
    MOHADIN_JID,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.store import group_messages as gm
from wa_monitor.store import media_queue
from wa_monitor.store.media import FolderMediaStore, MediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import group_messages, photo_decisions, qa_photo_reviews
from wa_monitor.web.app import create_app
from wa_monitor.web.changes import REVIEWS

SENDER = "27821234567"
_counter = iter(range(1, 1_000_000))


class Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(size)


def jpeg(color: str = "red", size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def put(media: MediaStore, data: bytes) -> str:
    sha = hashlib.sha256(data).hexdigest()
    media.put(sha, Bytes(data), max_bytes=len(data) + 1)
    return sha


def add_message(store: ReviewStore, **values: Any) -> int:
    """A group_messages row; media rows default to an image waiting to be fetched."""
    text = values.get("media_type") == "text"
    row: dict[str, Any] = {
        "chat_jid": LAWLEY_JID,
        "message_id": f"3EB0MSG{next(_counter):08d}",
        "project": "Lawley",
        "sender": SENDER,
        "sender_name": "Thabo Installer",
        "posted_at": minutes_ago(1),
        "media_type": "image",
        "status": None if text else "pending",
        "link_reason": "after",
        **values,
    }
    with store.begin() as conn:
        return int(conn.execute(sa.insert(group_messages).values(**row)).inserted_primary_key[0])


def available(media: MediaStore, data: bytes, **values: Any) -> dict[str, Any]:
    """The columns of a fetched, verified image (and its thumbnail) in the media store."""
    sha = put(media, data)
    thumb = put(media, jpeg("white", (32, 24)))
    return {
        "status": "available",
        "file_sha256": sha,
        "sha256": sha,
        "size": len(data),
        "content_type": "image/jpeg",
        "width": 64,
        "height": 48,
        "thumb_sha256": thumb,
        **values,
    }


@dataclass
class Api:
    client: TestClient
    store: ReviewStore
    media: MediaStore
    people: People

    def get(self, path: str, role: str = "viewer", **kw: Any) -> Any:
        return self.client.get(path, headers=self.people.bearer(role), **kw)

    def data(self, path: str, role: str = "viewer") -> Any:
        response = self.get(path, role)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def patch(self, path: str, body: Any, role: str = "reviewer", **kw: Any) -> Any:
        return self.client.patch(path, json=body, headers=self.people.bearer(role), **kw)


@pytest.fixture
def api(store: ReviewStore, tmp_path: Path) -> Iterator[Api]:
    people = add_people(store)
    media = FolderMediaStore(tmp_path / "media")
    app = create_app(
        settings_for(store.url), projects_config(), store, run_sender=False, media_store=media
    )
    with TestClient(app) as client:
        yield Api(client, store, media, people)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


@dataclass
class Drop:
    id: uuid.UUID
    number: str
    posted: datetime


def drop(api: Api, number: str, when: datetime, project: str = "Lawley", **kw: Any) -> Drop:
    record(api.store, post(number, when, project=project, sender=SENDER, **kw))
    return Drop(review(api.store, number, project)["id"], number, when)


# -- the gallery -------------------------------------------------------------------------


def test_a_drops_photos_come_by_round_then_posting_time_with_their_files(api: Api) -> None:
    first = drop(api, "DR1000001", minutes_ago(90))
    other = drop(api, "DR1000002", minutes_ago(300))
    base = first.posted
    # Stored out of order (history sync): the answer is in posting order all the same.
    late = add_message(
        api.store,
        review_id=first.id,
        drop_number=first.number,
        round=0,
        posted_at=base + timedelta(minutes=9),
        **available(api.media, jpeg("green")),
        step="step_02_cable_from_pole",
        barcodes=[{"format": "QRCode", "text": "ALCL12345678"}],
        hints=[
            {"kind": "dark", "message": "too dark to judge", "value": 12.5},
            {"kind": "odd"},  # malformed: left out, never a 500
            "blurred",
        ],
    )
    early = add_message(
        api.store,
        review_id=first.id,
        drop_number=first.number,
        round=0,
        posted_at=base + timedelta(minutes=2),
        content="house",
    )
    reused = add_message(
        api.store,
        review_id=other.id,
        drop_number=other.number,
        round=0,
        posted_at=other.posted + timedelta(minutes=1),
        **available(api.media, jpeg("blue")),
    )
    resubmitted = add_message(
        api.store,
        review_id=first.id,
        drop_number=first.number,
        round=1,
        posted_at=base + timedelta(minutes=5),
        status="failed",
        last_error="the bridge says the media expired",
        duplicate_of=reused,
    )
    add_message(
        api.store,
        review_id=first.id,
        drop_number=first.number,
        round=0,
        posted_at=base + timedelta(minutes=3),
        media_type="text",
        content="done at no 12",
    )

    photos = api.data(f"/api/wa-monitor-drops/{first.id}/photos")
    assert [p["id"] for p in photos] == [early, late, resubmitted]
    assert [p["round"] for p in photos] == [0, 0, 1]
    pending, shown, failed = photos
    assert pending["status"] == "pending" and pending["caption"] == "house"
    assert pending["url"] is None and pending["thumbUrl"] is None and pending["sha256"] is None
    sha = shown["sha256"]
    assert shown["url"] == f"/media/{sha}" and shown["thumbUrl"] == f"/media/{sha}/thumb"
    assert shown["step"] == "step_02_cable_from_pole"
    assert shown["barcodes"] == [{"format": "QRCode", "text": "ALCL12345678"}]
    assert shown["hints"] == [
        {
            "kind": "dark",
            "message": "too dark to judge",
            "value": 12.5,
            "state": None,
            "by": None,
            "at": None,
        }
    ]
    assert (shown["width"], shown["height"], shown["contentType"]) == (64, 48, "image/jpeg")
    assert shown["dropId"] == str(first.id) and shown["mediaType"] == "image"
    assert shown["sender"] == SENDER
    assert datetime.fromisoformat(shown["postedAt"]) == base + timedelta(minutes=9)
    assert shown["postedAt"].endswith("+02:00"), "times in the business zone"
    assert shown["duplicateOf"] is None
    assert failed["status"] == "failed" and failed["url"] is None
    assert failed["lastError"] == "the bridge says the media expired"
    duplicate = failed["duplicateOf"]
    assert datetime.fromisoformat(duplicate.pop("postedAt")) == other.posted + timedelta(minutes=1)
    assert duplicate == {"photoId": reused, "dropId": str(other.id), "dropNumber": "DR1000002"}
    # The file the gallery names is served.
    file = api.get(shown["url"])
    assert file.status_code == 200 and file.content.startswith(b"\xff\xd8")
    assert hashlib.sha256(file.content).hexdigest() == sha


def test_a_drop_without_photos_is_an_empty_gallery_and_an_unknown_one_404(api: Api) -> None:
    empty = drop(api, "DR1000003", minutes_ago(10))
    assert api.data(f"/api/wa-monitor-drops/{empty.id}/photos") == []
    assert api.data(f"/api/wa-monitor-drops/{empty.id}/thread") == []
    for what in ("photos", "thread"):
        assert_error(api.get(f"/api/wa-monitor-drops/{uuid.uuid4()}/{what}"), 404, "NOT_FOUND")
        assert_error(api.get(f"/api/wa-monitor-drops/DR1000003/{what}"), 422, "VALIDATION_ERROR")


def test_the_thread_is_the_texts_of_the_drop_in_posting_order(api: Api) -> None:
    d = drop(api, "DR1000004", minutes_ago(60))
    second = add_message(
        api.store,
        review_id=d.id,
        drop_number=d.number,
        round=1,
        media_type="text",
        content="resubmitted the pole photo",
        posted_at=d.posted + timedelta(minutes=20),
    )
    first = add_message(
        api.store,
        review_id=d.id,
        drop_number=d.number,
        round=0,
        media_type="text",
        content="ONT is in the lounge",
        posted_at=d.posted + timedelta(minutes=4),
        sender_name=None,
    )
    add_message(api.store, review_id=d.id, drop_number=d.number, round=0, content="a caption")
    thread = api.data(f"/api/wa-monitor-drops/{d.id}/thread")
    assert [t["text"] for t in thread] == ["ONT is in the lounge", "resubmitted the pole photo"]
    assert thread[0]["senderName"] is None and thread[1]["senderName"] == "Thabo Installer"
    assert [t["round"] for t in thread] == [0, 1]
    assert thread[0]["sender"] == SENDER and thread[0]["messageId"]
    assert first != second
    # The texts are not photos.
    assert [p["caption"] for p in api.data(f"/api/wa-monitor-drops/{d.id}/photos")] == ["a caption"]


# -- the drop list's figures ---------------------------------------------------------------


def set_serials(store: ReviewStore, review_id: uuid.UUID, ont: str | None, ups: str | None) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.id == review_id)
            .values(ont_serial_scanned=ont, ups_serial_scanned=ups)
        )


def test_drops_carry_photo_counts_photos_by_step_and_serial_conflicts(api: Api) -> None:
    a = drop(api, "DR1000005", minutes_ago(50))
    b = drop(api, "DR1000006", minutes_ago(40))
    c = drop(api, "DR1000007", minutes_ago(30))
    house = add_message(
        api.store, review_id=a.id, drop_number=a.number, round=0, step="step_01_house_photo"
    )
    barcode = add_message(
        api.store, review_id=a.id, drop_number=a.number, round=1, step="step_08_ont_barcode"
    )
    add_message(api.store, review_id=a.id, drop_number=a.number, round=1, media_type="video")
    add_message(api.store, review_id=a.id, drop_number=a.number, round=0, media_type="text")
    add_message(api.store, review_id=b.id, drop_number=b.number, round=0)
    set_serials(api.store, a.id, "ALCL12345678", "UPS-778899")
    set_serials(api.store, c.id, "ALCL12345678", None)

    listed = {d["dropNumber"]: d for d in api.data("/api/wa-monitor-drops")}
    assert listed["DR1000005"]["photoCount"] == 3, "photos and the video, all rounds, no texts"
    assert listed["DR1000005"]["photosByStep"] == {
        "step_01_house_photo": house,
        "step_08_ont_barcode": barcode,
    }
    assert listed["DR1000006"]["photoCount"] == 1 and listed["DR1000006"]["photosByStep"] == {}
    assert listed["DR1000007"]["photoCount"] == 0
    assert listed["DR1000005"]["ontSerialScanned"] == "ALCL12345678"
    assert listed["DR1000005"]["upsSerialScanned"] == "UPS-778899"
    assert listed["DR1000005"]["serialConflicts"] == [
        {"field": "ontSerialScanned", "dropId": str(c.id), "dropNumber": "DR1000007"}
    ]
    assert listed["DR1000007"]["serialConflicts"] == [
        {"field": "ontSerialScanned", "dropId": str(a.id), "dropNumber": "DR1000005"}
    ]
    assert listed["DR1000006"]["serialConflicts"] == []
    one = [api.data(f"/api/wa-monitor-drops?id={a.id}")]
    assert (
        one[0]["photoCount"] == 3 and one[0]["photosByStep"] == listed["DR1000005"]["photosByStep"]
    )
    detail = api.data(f"/api/wa-monitor-drops/{a.id}")["drop"]
    assert detail["photoCount"] == 3 and detail["serialConflicts"] == one[0]["serialConflicts"]


def test_the_drop_list_reads_photo_figures_in_one_query_for_the_page(api: Api) -> None:
    for i in range(20):
        d = drop(api, f"DR20000{i:02d}", minutes_ago(100 - i))
        for _ in range(3):
            add_message(api.store, review_id=d.id, drop_number=d.number, round=0)
    sent: list[str] = []

    def on_execute(*args: Any) -> None:
        sent.append(str(args[2]))

    sa.event.listen(api.store.engine, "before_cursor_execute", on_execute)
    try:
        drops = api.data("/api/wa-monitor-drops?pageSize=20")
    finally:
        sa.event.remove(api.store.engine, "before_cursor_execute", on_execute)
    assert [d["photoCount"] for d in drops] == [3] * 20
    photo_queries = [s for s in sent if "group_messages" in s]
    assert len(photo_queries) == 1, photo_queries


def test_a_reviewer_confirms_or_corrects_the_scanned_serials(api: Api) -> None:
    d = drop(api, "DR1000008", minutes_ago(20))
    set_serials(api.store, d.id, "ALCL0000000A", None)
    path = f"/api/wa-monitor-drops/{d.id}"
    saved = api.patch(path, {"ontSerialScanned": "ALCL12345678", "upsSerialScanned": "UPS-1"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["data"]["ontSerialScanned"] == "ALCL12345678"
    assert saved.json()["data"]["upsSerialScanned"] == "UPS-1"
    edit = api.data(path)["edits"][0]
    assert edit["actor"] == "reviewer" and edit["action"] == "edit"
    assert edit["changes"]["ont_serial_scanned"] == ["ALCL0000000A", "ALCL12345678"]
    assert edit["changes"]["ups_serial_scanned"] == [None, "UPS-1"]
    # null (or empty) clears a wrong suggestion.
    cleared = api.patch(path, {"upsSerialScanned": None})
    assert cleared.status_code == 200 and cleared.json()["data"]["upsSerialScanned"] is None
    assert api.patch(path, {"ontSerialScanned": ""}).json()["data"]["ontSerialScanned"] is None
    for bad in ("ALCL 1234", "x" * 101, 12345678, "ALCL\u00e91234"):
        assert_error(api.patch(path, {"ontSerialScanned": bad}), 422, "VALIDATION_ERROR")
    assert_error(api.patch(path, {"ontSerialScanned": "A"}, role="viewer"), 403, "FORBIDDEN")


# -- a reviewer's decisions ----------------------------------------------------------------


def linked_photo(api: Api, d: Drop, minutes: float, **values: Any) -> int:
    """A photo the rules link to `d` (same person, same group, minutes after its post)."""
    return add_message(
        api.store,
        review_id=d.id,
        drop_number=d.number,
        round=0,
        posted_at=d.posted + timedelta(minutes=minutes),
        **values,
    )


def test_a_reviewer_assigns_a_photo_to_a_step(api: Api) -> None:
    d = drop(api, "DR1000009", minutes_ago(30))
    photo = linked_photo(api, d, 2)
    saved = api.patch(f"/api/wa-monitor-photos/{photo}", {"step": "step_03_cable_entry_outside"})
    assert saved.status_code == 200, saved.text
    body = saved.json()["data"]
    assert body["id"] == photo and body["step"] == "step_03_cable_entry_outside"
    assert body["dropId"] == str(d.id)
    drops = [api.data(f"/api/wa-monitor-drops?id={d.id}")]
    assert drops[0]["photosByStep"] == {"step_03_cable_entry_outside": photo}
    edits = api.data(f"/api/wa-monitor-drops/{d.id}")["edits"]
    assert edits[0]["action"] == "photo" and edits[0]["actor"] == "reviewer"
    # null takes the step away.
    cleared = api.patch(f"/api/wa-monitor-photos/{photo}", {"step": None})
    assert cleared.status_code == 200 and cleared.json()["data"]["step"] is None
    assert api.data(f"/api/wa-monitor-drops?id={d.id}")["photosByStep"] == {}


def test_a_photo_assigned_to_the_ups_or_ont_step_gives_the_drop_its_serial(api: Api) -> None:
    d = drop(api, "DR1000019", minutes_ago(30))
    codes = [{"format": "Code128", "text": "UPS-4455667788"}]
    ups_photo = linked_photo(api, d, 2, barcodes=codes)
    ont_photo = linked_photo(api, d, 3, barcodes=[{"format": "Code128", "text": "ZTEG1A2B3C4D"}])

    def serials() -> tuple[str | None, str | None]:
        shown = api.data(f"/api/wa-monitor-drops?id={d.id}")
        return shown["ontSerialScanned"], shown["upsSerialScanned"]

    # A plain barcode says nothing until the photo is the UPS step's.
    assert serials() == (None, None)
    saved = api.patch(f"/api/wa-monitor-photos/{ups_photo}", {"step": "step_09_ups_serial"})
    assert saved.status_code == 200, saved.text
    assert serials() == (None, "UPS-4455667788")
    # A serial the reviewer typed is never overwritten by an assignment.
    api.patch(f"/api/wa-monitor-drops/{d.id}", {"ontSerialScanned": "HWTC00000001"})
    api.patch(f"/api/wa-monitor-photos/{ont_photo}", {"step": "step_08_ont_barcode"})
    assert serials() == ("HWTC00000001", "UPS-4455667788")


def test_a_reviewer_moves_a_photo_to_another_drop_and_detaches_it(api: Api) -> None:
    a = drop(api, "DR1000010", minutes_ago(60))
    b = drop(api, "DR1000011", minutes_ago(30))
    photo = linked_photo(api, a, 5)
    moved = api.patch(f"/api/wa-monitor-photos/{photo}", {"dropId": str(b.id)})
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["dropId"] == str(b.id)
    assert moved.json()["data"]["dropNumber"] == "DR1000011"
    assert [p["id"] for p in api.data(f"/api/wa-monitor-drops/{b.id}/photos")] == [photo]
    assert api.data(f"/api/wa-monitor-drops/{a.id}/photos") == []
    detached = api.patch(f"/api/wa-monitor-photos/{photo}", {"dropId": None})
    assert detached.status_code == 200, detached.text
    assert detached.json()["data"]["dropId"] is None
    assert api.data(f"/api/wa-monitor-drops/{b.id}/photos") == []


def test_a_reviewer_moves_a_photo_to_another_round(api: Api) -> None:
    d = drop(api, "DR1000016", minutes_ago(120))
    record(api.store, post("DR1000016", minutes_ago(60), sender=SENDER))  # resubmitted
    photo = linked_photo(api, d, 5)
    assert api.data(f"/api/wa-monitor-drops/{d.id}/photos")[0]["round"] == 0
    moved = api.patch(f"/api/wa-monitor-photos/{photo}", {"round": 1})
    assert moved.status_code == 200, moved.text
    assert moved.json()["data"]["round"] == 1 and moved.json()["data"]["dropId"] == str(d.id)
    assert [p["round"] for p in api.data(f"/api/wa-monitor-drops/{d.id}/photos")] == [1]
    back = api.patch(f"/api/wa-monitor-photos/{photo}", {"dropId": str(d.id), "round": 0})
    assert back.status_code == 200 and back.json()["data"]["round"] == 0
    error = assert_error(
        api.patch(f"/api/wa-monitor-photos/{photo}", {"dropId": None, "round": 1}),
        422,
        "VALIDATION_ERROR",
    )
    assert "detached" in error["message"]


def test_a_photo_is_never_moved_to_a_drop_of_another_group(api: Api) -> None:
    a = drop(api, "DR1000012", minutes_ago(60))
    elsewhere = drop(api, "DR1000013", minutes_ago(50), project="Mohadin")
    photo = linked_photo(api, a, 5)
    error = assert_error(
        api.patch(f"/api/wa-monitor-photos/{photo}", {"dropId": str(elsewhere.id)}),
        422,
        "VALIDATION_ERROR",
    )
    assert "Mohadin" in error["message"] and "own group" in error["message"]
    error = assert_error(
        api.patch(f"/api/wa-monitor-photos/{photo}", {"dropId": str(uuid.uuid4())}),
        422,
        "VALIDATION_ERROR",
    )
    assert "No drop" in error["message"]
    assert api.data(f"/api/wa-monitor-drops/{a.id}/photos")[0]["id"] == photo
    assert MOHADIN_JID != LAWLEY_JID


def test_bad_photo_decisions_are_clear_4xx(api: Api) -> None:
    d = drop(api, "DR1000014", minutes_ago(30))
    photo = linked_photo(api, d, 2)
    path = f"/api/wa-monitor-photos/{photo}"
    error = assert_error(api.patch(path, {"step": "step_13_selfie"}), 422, "VALIDATION_ERROR")
    assert error["details"][0]["allowed"] == list(STEP_COLUMNS)
    assert "step_01_house_photo" in error["message"]
    error = assert_error(api.patch(path, {"round": 5}), 422, "VALIDATION_ERROR")
    assert "round 5" in error["message"]
    assert_error(api.patch(path, {}), 400, "BAD_REQUEST")
    for body in (
        {"round": -1},
        {"round": "one"},
        {"round": True},
        {"round": "1"},
        {"round": 1.5},
        {"round": 2**40},
        {"step": 3},
        {"step": ["step_01_house_photo"]},
        {"dropId": "DR1000014"},
        {"dropId": 7},
        {"colour": "red"},
        [1, 2],
        "step",
    ):
        assert_error(api.patch(path, body), 422, "VALIDATION_ERROR")
    assert_error(api.patch(path, {"step": "x" * 200_000}), 422, "VALIDATION_ERROR")
    assert_error(api.patch(path, {"step": "x" * 300_000}), 413, "PAYLOAD_TOO_LARGE")
    deep = {"step": None, "round": 0, "extra": [[[[["x"] * 1000] * 10]]]}
    assert_error(api.patch(path, deep), 422, "VALIDATION_ERROR")
    bad = api.client.patch(
        path,
        content=b"{not json",
        headers={**api.people.bearer("reviewer"), "Content-Type": "application/json"},
    )
    assert_error(bad, 400, "BAD_REQUEST")
    for wrong in ("0", "-1", str(2**63), "abc", "1.5"):
        assert_error(
            api.patch(f"/api/wa-monitor-photos/{wrong}", {"step": None}), 422, "VALIDATION_ERROR"
        )
    assert_error(api.patch("/api/wa-monitor-photos/999999", {"step": None}), 404, "NOT_FOUND")
    text = add_message(api.store, review_id=d.id, media_type="text", content="hi")
    assert_error(api.patch(f"/api/wa-monitor-photos/{text}", {"step": None}), 404, "NOT_FOUND")
    # Nothing of that reached the photo.
    assert api.data(f"/api/wa-monitor-drops/{d.id}/photos")[0]["step"] is None


def test_who_may_see_and_decide(api: Api) -> None:
    d = drop(api, "DR1000015", minutes_ago(30))
    photo = linked_photo(api, d, 2, **available(api.media, jpeg()))
    sha = api.data(f"/api/wa-monitor-drops/{d.id}/photos")[0]["sha256"]
    for path in (
        f"/api/wa-monitor-drops/{d.id}/photos",
        f"/api/wa-monitor-drops/{d.id}/thread",
        f"/media/{sha}",
        f"/media/{sha}/thumb",
    ):
        assert_error(api.client.get(path), 401, "UNAUTHORIZED")
        assert_error(
            api.client.get(path, headers={"Authorization": "Bearer wam_nope"}), 401, "UNAUTHORIZED"
        )
        assert api.get(path, "viewer").status_code == 200, path
    path = f"/api/wa-monitor-photos/{photo}"
    assert_error(api.client.patch(path, json={"step": None}), 401, "UNAUTHORIZED")
    error = assert_error(api.patch(path, {"step": None}, role="viewer"), 403, "FORBIDDEN")
    assert "reviewer" in error["message"]
    assert api.patch(path, {"step": "step_01_house_photo"}, role="admin").status_code == 200


# -- quality hints ----------------------------------------------------------------------

HINTS = [
    {"kind": "blurred", "message": "looks blurred", "value": 31.0},
    {"kind": "dark", "message": "too dark to judge", "value": 12.5},
]


def hinted_photo(api: Api, number: str) -> tuple[Drop, int]:
    d = drop(api, number, minutes_ago(30))
    return d, linked_photo(api, d, 2, **available(api.media, jpeg()), hints=HINTS)


def shown_hints(api: Api, d: Drop) -> dict[str, dict[str, Any]]:
    """The gallery's hints of the drop's only photo, by kind (what every reviewer sees)."""
    (photo,) = api.data(f"/api/wa-monitor-drops/{d.id}/photos")
    return {h["kind"]: h for h in photo["hints"]}


def hint_audit(store: ReviewStore) -> list[tuple[str, str | None, str]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.select(photo_decisions.c.action, photo_decisions.c.step, photo_decisions.c.actor)
            .where(photo_decisions.c.action.like("hint-%"))
            .order_by(photo_decisions.c.id)
        )
        return [(r.action, r.step, r.actor) for r in rows]


def test_a_reviewer_dismisses_a_hint_for_everyone_and_takes_it_back(api: Api) -> None:
    d, photo = hinted_photo(api, "DR1000030")
    path = f"/api/wa-monitor-photos/{photo}"
    before = datetime.now().astimezone()
    saved = api.patch(path, {"hint": {"kind": "blurred", "state": "dismissed"}})
    assert saved.status_code == 200, saved.text
    blurred = {h["kind"]: h for h in saved.json()["data"]["hints"]}["blurred"]
    assert blurred["state"] == "dismissed" and blurred["by"] == "reviewer"
    assert datetime.fromisoformat(blurred["at"]) >= before - timedelta(seconds=1)
    assert blurred["at"].endswith("+02:00"), "times in the business zone"
    # Another reviewer (here a viewer reading the gallery) sees the verdict; the other
    # hint is untouched, the measure kept.
    hints = shown_hints(api, d)
    assert hints["blurred"]["state"] == "dismissed" and hints["blurred"]["value"] == 31.0
    assert hints["dark"]["state"] is None and hints["dark"]["by"] is None
    # null takes the verdict back.
    cleared = api.patch(path, {"hint": {"kind": "blurred", "state": None}})
    assert cleared.status_code == 200, cleared.text
    hints = shown_hints(api, d)
    assert (hints["blurred"]["state"], hints["blurred"]["by"], hints["blurred"]["at"]) == (
        None,
        None,
        None,
    )
    assert hint_audit(api.store) == [
        ("hint-dismissed", "blurred", "reviewer"),
        ("hint-cleared", "blurred", "reviewer"),
    ]


def test_a_reviewer_confirms_a_hint_with_a_step_in_one_request(api: Api) -> None:
    d, photo = hinted_photo(api, "DR1000031")
    path = f"/api/wa-monitor-photos/{photo}"
    saved = api.patch(
        path,
        {"step": "step_01_house_photo", "hint": {"kind": "dark", "state": "confirmed"}},
        role="admin",
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["data"]["step"] == "step_01_house_photo"
    hints = shown_hints(api, d)
    assert hints["dark"]["state"] == "confirmed" and hints["dark"]["by"] == "admin"
    assert hints["blurred"]["state"] is None
    # Two verdicts on two hints of one photo both stand.
    assert api.patch(path, {"hint": {"kind": "blurred", "state": "dismissed"}}).status_code == 200
    hints = shown_hints(api, d)
    assert [hints[k]["state"] for k in ("blurred", "dark")] == ["dismissed", "confirmed"]
    # Dismissing a confirmed hint replaces the verdict and who gave it.
    api.patch(path, {"hint": {"kind": "dark", "state": "dismissed"}})
    assert shown_hints(api, d)["dark"]["state"] == "dismissed"
    assert shown_hints(api, d)["dark"]["by"] == "reviewer"
    assert hint_audit(api.store) == [
        ("hint-confirmed", "dark", "admin"),
        ("hint-dismissed", "blurred", "reviewer"),
        ("hint-dismissed", "dark", "reviewer"),
    ]
    edits = api.data(f"/api/wa-monitor-drops/{d.id}")["edits"]
    assert [e["action"] for e in edits] == ["photo"], "the step, as before"


def test_a_hint_the_photo_has_not_is_a_422_naming_the_ones_it_has(api: Api) -> None:
    d, photo = hinted_photo(api, "DR1000032")
    path = f"/api/wa-monitor-photos/{photo}"
    error = assert_error(
        api.patch(path, {"step": "step_01_house_photo", "hint": {"kind": "old", "state": None}}),
        422,
        "VALIDATION_ERROR",
    )
    assert "'old'" in error["message"] and "blurred, dark" in error["message"]
    assert error["details"][0]["allowed"] == ["blurred", "dark"]
    bare = linked_photo(api, d, 3)
    error = assert_error(
        api.patch(
            f"/api/wa-monitor-photos/{bare}", {"hint": {"kind": "dark", "state": "dismissed"}}
        ),
        422,
        "VALIDATION_ERROR",
    )
    assert "no hints" in error["message"]
    for body in (
        {"hint": None},
        {"hint": {"kind": "dark"}},
        {"hint": {"kind": "dark", "state": "ignored"}},
        {"hint": {"kind": "dark", "state": "dismissed", "note": "x"}},
        {"hint": {"kind": 3, "state": "dismissed"}},
        {"hint": "dark"},
    ):
        assert_error(api.patch(path, body), 422, "VALIDATION_ERROR")
    # Nothing of that reached the photo, its step included.
    photos = {p["id"]: p for p in api.data(f"/api/wa-monitor-drops/{d.id}/photos")}
    assert photos[photo]["step"] is None
    assert all(h["state"] is None for h in photos[photo]["hints"])
    assert hint_audit(api.store) == []


def test_a_viewer_may_not_judge_a_hint(api: Api) -> None:
    d, photo = hinted_photo(api, "DR1000033")
    path = f"/api/wa-monitor-photos/{photo}"
    body = {"hint": {"kind": "dark", "state": "dismissed"}}
    assert_error(api.client.patch(path, json=body), 401, "UNAUTHORIZED")
    error = assert_error(api.patch(path, body, role="viewer"), 403, "FORBIDDEN")
    assert "reviewer" in error["message"]
    assert shown_hints(api, d)["dark"]["state"] is None
    assert hint_audit(api.store) == []


def test_two_verdicts_at_once_on_one_photo_both_stand(api: Api) -> None:
    d, photo = hinted_photo(api, "DR1000035")
    for attempt in range(5):
        start = threading.Barrier(2)
        state = "dismissed" if attempt % 2 == 0 else "confirmed"

        def judge(kind: str, state: str = state, start: threading.Barrier = start) -> None:
            start.wait(timeout=10)
            with api.store.begin() as conn:
                gm.set_hint_state(conn, photo, kind, state, f"by-{kind}", gm.utcnow())

        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(judge, "blurred"), pool.submit(judge, "dark")]:
                done.result(timeout=30)
        hints = shown_hints(api, d)
        assert [(hints[k]["state"], hints[k]["by"]) for k in ("blurred", "dark")] == [
            (state, "by-blurred"),
            (state, "by-dark"),
        ], f"attempt {attempt}"


def message_row(photo: dict[str, Any]) -> dict[str, Any]:
    """The row the linker would store again for this photo (a re-read of the bridge)."""
    return {
        "chat_jid": LAWLEY_JID,
        "message_id": photo["messageId"],
        "project": "Lawley",
        "sender": SENDER,
        "posted_at": minutes_ago(5),
        "media_type": "image",
        "status": "pending",
    }


def test_a_hint_verdict_stays_until_the_row_names_another_file(api: Api) -> None:
    d, photo = hinted_photo(api, "DR1000034")
    body = {"hint": {"kind": "dark", "state": "dismissed"}}
    assert api.patch(f"/api/wa-monitor-photos/{photo}", body).status_code == 200
    with api.store.read() as conn:
        stored = conn.execute(
            sa.select(group_messages.c.hints).where(group_messages.c.id == photo)
        ).scalar_one()
    dark = next(h for h in stored if h["kind"] == "dark")
    assert (dark["state"], dark["by"]) == ("dismissed", "reviewer")
    # The same file re-read, or a worker late with its answer: the verdict stays.
    (shown,) = api.data(f"/api/wa-monitor-drops/{d.id}/photos")
    late = media_queue.Analysis(
        sha256=shown["sha256"], size=1, content_type="image/jpeg", hints=HINTS
    )
    assert media_queue.mark_available(api.store, photo, late) is False
    with api.store.begin() as conn:
        gm.upsert_messages(
            conn, [{**message_row(shown), "file_sha256": shown["sha256"]}], gm.utcnow()
        )
    assert shown_hints(api, d)["dark"]["state"] == "dismissed"
    # Re-read with another file: back to the fetch queue, hints (and verdicts) gone.
    with api.store.begin() as conn:
        gm.upsert_messages(conn, [{**message_row(shown), "file_sha256": "f" * 64}], gm.utcnow())
    (shown,) = api.data(f"/api/wa-monitor-drops/{d.id}/photos")
    assert shown["status"] == "pending" and shown["hints"] == []


# -- kept answers ------------------------------------------------------------------------


def test_kept_drop_lists_show_photos_linked_or_assigned_since(store: ReviewStore) -> None:
    from tests.integration.test_change_feed import serve

    with serve(store) as served:
        served.after_notification(
            REVIEWS, lambda: record(served.other, post("DR3000001", minutes_ago(30), sender=SENDER))
        )
        rid = review(store, "DR3000001")["id"]
        path = "/api/wa-monitor-drops"
        assert served.data(path)["data"][0]["photoCount"] == 0
        assert served.data(path)["data"][0]["photoCount"] == 0  # now kept (PostgreSQL)

        # The media worker (another process) links a photo and the linker assigns a step.
        photo = 0

        def link() -> None:
            nonlocal photo
            photo = add_message(
                served.other,
                review_id=rid,
                drop_number="DR3000001",
                round=0,
                posted_at=minutes_ago(29),
                step="step_01_house_photo",
            )

        served.after_notification(("group_messages",), link)
        drop = served.data(path)["data"][0]
        assert drop["photoCount"] == 1
        assert drop["photosByStep"] == {"step_01_house_photo": photo}

        # This process's own decision shows in its very next answer.
        saved = served.client.patch(
            f"/api/wa-monitor-photos/{photo}",
            json={"step": "step_10_final_installation"},
            headers=served.people.bearer("reviewer"),
        )
        assert saved.status_code == 200, saved.text
        drop = served.data(path)["data"][0]
        assert drop["photosByStep"] == {"step_10_final_installation": photo}
