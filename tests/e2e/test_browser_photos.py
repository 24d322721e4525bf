"""The review with photos in headless Chromium: gallery, large view, steps, serials, thread.

The photos are real JPEGs (the simulator's scenes), stored content-addressed in a media
folder, with group_messages rows as the media worker leaves them (fetched, analysed,
linked). Screenshots of the gallery (desktop 1280, phone 390) refresh docs/screenshots/
only when WA_MONITOR_SCREENSHOTS=1.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_browser import DESKTOP, LIVE, PHONE, SQLITE_ONLY, drop_item, shot, sign_in
from tests.fakebridge import running_bridge
from tests.helpers import wait_until
from tests.integration.test_api_support import (
    LAWLEY_JID,
    LiveServer,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.core.images import thumbnail
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback.outbox import BridgeClient
from wa_monitor.sim.photos import PHOTO_SIZE, Scene, fake_mp4, render_jpeg
from wa_monitor.store.media import FolderMediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import group_messages, qa_photo_reviews
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app

pytestmark = pytest.mark.browser

INSTALLER = "27821234567"
DROP = "DR10000001"  # the drop under review: two rounds, every kind of tile
OTHER = "DR10000002"  # an older drop whose photo and UPS serial DROP re-uses
ONT_SERIAL = "ZTEG1A2B3C4D"
UPS_SERIAL = "UPS-77821"


def scene(step: int, drop: str, seed: int, **options: Any) -> bytes:
    """The photo an installer posts for `step`: the simulator's scene, labelled, as a JPEG."""
    return render_jpeg(Scene(step=step, drop_number=drop, seed=seed, **options))


@dataclass
class Gallery:
    """The world of one test: the server, its stores, the drops and their photos."""

    url: str
    store: ReviewStore
    media: FolderMediaStore
    browser: Browser
    ids: dict[str, int] = field(default_factory=dict)  # photo name → group_messages id
    seq: int = 0

    def drop_id(self, number: str) -> str:
        return str(review(self.store, number)["id"])

    def photo(
        self,
        name: str,
        drop: str,
        posted_at: datetime,
        *,
        round: int = 0,
        step: str | None = None,
        shows: int = 1,
        status: str = "available",
        image: bytes | None = None,
        media_type: str = "image",
        caption: str | None = None,
        barcodes: list[dict[str, str]] | None = None,
        hints: list[dict[str, str]] | None = None,
        duplicate_of: str | None = None,
        last_error: str | None = None,
        sender: str = INSTALLER,
    ) -> int:
        """One media row as the worker leaves it; an available file is in the media folder."""
        self.seq += 1
        values: dict[str, Any] = {
            "chat_jid": LAWLEY_JID,
            "message_id": f"3EB0PHOTO{self.seq:06d}",
            "project": "Lawley",
            "sender": sender,
            "sender_name": "Thabo Installer",
            "posted_at": posted_at,
            "content": caption,
            "media_type": media_type,
            "filename": f"image_{self.seq:04d}.jpg",
            "drop_number": drop,
            "review_id": review(self.store, drop)["id"],
            "round": round,
            "post_message_id": "3EB0POST",
            "link_reason": "after",
            "step": step,
            "status": status,
            "last_error": last_error,
            "barcodes": barcodes or [],
            "hints": hints or [],
            "duplicate_of": self.ids[duplicate_of] if duplicate_of else None,
        }
        if status == "available":
            data = image if image is not None else scene(shows, drop, self.seq)
            values.update(self.stored(data, media_type), fetched_at=posted_at)
        with self.store.begin() as conn:
            photo_id = conn.execute(
                sa.insert(group_messages).values(**values).returning(group_messages.c.id)
            ).scalar_one()
        self.ids[name] = int(photo_id)
        return int(photo_id)

    def stored(self, data: bytes, media_type: str = "image") -> dict[str, Any]:
        """`data` (and an image's thumbnail) in the media folder, as the row records it."""
        sha = hashlib.sha256(data).hexdigest()
        self.media.put(sha, io.BytesIO(data), max_bytes=len(data))
        values: dict[str, Any] = {"file_sha256": sha, "sha256": sha, "size": len(data)}
        if media_type != "image":
            return {**values, "content_type": "video/mp4"}
        thumb = thumbnail(io.BytesIO(data))
        thumb_sha = hashlib.sha256(thumb).hexdigest()
        self.media.put(thumb_sha, io.BytesIO(thumb), max_bytes=len(thumb))
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
        return {
            **values,
            "content_type": "image/jpeg",
            "thumb_sha256": thumb_sha,
            "width": width,
            "height": height,
        }

    def fetched(self, name: str, data: bytes) -> None:
        """The worker fetched a pending photo meanwhile."""
        with self.store.begin() as conn:
            conn.execute(
                sa.update(group_messages)
                .where(group_messages.c.id == self.ids[name])
                .values(status="available", fetched_at=minutes_ago(0), **self.stored(data))
            )

    def text(self, drop: str, posted_at: datetime, text: str, *, round: int = 0) -> None:
        self.seq += 1
        review_id = review(self.store, drop)["id"]
        with self.store.begin() as conn:
            conn.execute(
                sa.insert(group_messages).values(
                    chat_jid=LAWLEY_JID,
                    message_id=f"3EB0TEXT{self.seq:06d}",
                    project="Lawley",
                    sender=INSTALLER,
                    sender_name="Thabo Installer",
                    posted_at=posted_at,
                    content=text,
                    media_type="text",
                    drop_number=drop,
                    review_id=review_id,
                    round=round,
                    link_reason="after",
                )
            )

    def serials(self, drop: str, **values: str | None) -> None:
        with self.store.begin() as conn:
            conn.execute(
                sa.update(qa_photo_reviews)
                .where(qa_photo_reviews.c.drop_number == drop)
                .values(**values)
            )


@pytest.fixture
def gallery(store: ReviewStore, chromium: Browser, tmp_path: Path) -> Iterator[Gallery]:
    add_people(store, ("viewer", "reviewer", "reviewer2"))
    media = FolderMediaStore(tmp_path / "media")
    with running_bridge() as bridge:
        app = create_app(
            settings_for(store.url, bridge.url),
            projects_config(),
            store,
            bridge=BridgeClient(bridge.url, timeout=2),
            sender_interval=0.2,
            poll_seconds=0.5,
            media_store=media,
        )
        server = LiveServer(app).start()
        try:
            yield Gallery(server.url, store, media, chromium)
        finally:
            server.stop()


def a_drop_with_photos(g: Gallery) -> None:
    """DROP: 12 media in the first submission (pending, failed, a video, a re-used photo,
    a blurred one, the ONT barcode), 2 in the resubmission, 2 texts; OTHER: the original."""
    record(g.store, post(OTHER, minutes_ago(3 * 24 * 60), sender="27839990000", name="Lerato M."))
    original = scene(4, OTHER, 1)
    g.photo("original", OTHER, minutes_ago(3 * 24 * 60 - 5), sender="27839990000", image=original)
    g.serials(OTHER, ups_serial_scanned=UPS_SERIAL)
    record(g.store, post(DROP, minutes_ago(120), sender=INSTALLER))
    record(g.store, post(DROP, minutes_ago(30), sender=INSTALLER))  # resubmission 1
    first = minutes_ago(118)
    at = [first + timedelta(minutes=i) for i in range(12)]
    g.photo("house", DROP, at[0], step="step_01_house_photo", shows=1)
    g.photo("pole", DROP, at[1], step="step_02_cable_from_pole", shows=2)
    g.photo("outside", DROP, at[2], caption="cable entry outside", shows=3)
    g.photo("inside", DROP, at[3], image=original, duplicate_of="original")  # forwarded
    g.photo(
        "wall",
        DROP,
        at[4],
        image=scene(5, DROP, 5, blurred=True),
        hints=[{"kind": "blurred", "message": "The photo looks blurred (sharpness 12 of 100)"}],
    )
    g.photo("ont-back", DROP, at[5], shows=6)
    g.photo("meter", DROP, at[6], image=scene(7, DROP, 7, dark=True))
    g.photo(
        "ont-label",
        DROP,
        at[7],
        step="step_08_ont_barcode",
        image=scene(8, DROP, 8, serial=ONT_SERIAL),
        barcodes=[{"format": "Code128", "text": ONT_SERIAL}],
    )
    g.photo("ups", DROP, at[8], status="pending")
    g.photo(
        "final",
        DROP,
        at[9],
        status="failed",
        last_error="The bridge's file did not match its SHA-256 after 8 attempts",
    )
    g.photo("video", DROP, at[10], media_type="video", image=fake_mp4(1))
    g.photo("lights", DROP, at[11], shows=11)
    g.photo("house-again", DROP, minutes_ago(28), round=1, shows=1)
    g.photo("signature", DROP, minutes_ago(27), round=1, shows=12)
    g.text(DROP, minutes_ago(119), "Morning, photos for DR10000001 coming")
    g.text(DROP, minutes_ago(29), "Resent the house photo, the first was blurry", round=1)
    g.serials(DROP, ups_serial_scanned=UPS_SERIAL)


def api_photos(g: Gallery, drop: str) -> list[dict[str, Any]]:
    _token, secret = create_token(g.store, "viewer", "check")
    res = httpx.get(
        f"{g.url}/api/wa-monitor-drops/{g.drop_id(drop)}/photos",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert res.status_code == 200, res.text
    return res.json()["data"]  # type: ignore[no-any-return]


def thumbs_loaded(page: Page, selector: str) -> int:
    """How many of the images `selector` names were loaded and decoded."""
    return int(
        page.evaluate(
            "(s) => [...document.querySelectorAll(s)]"
            ".filter((i) => i.complete && i.naturalWidth > 0).length",
            selector,
        )
    )


def shows_whole(page: Page) -> bool:
    """The large view's photo is all on the screen: its picture box needs no scrolling."""
    return bool(
        page.evaluate(
            """() => {
                const p = document.querySelector("#lb-picture");
                const i = document.querySelector("#lb-image").getBoundingClientRect();
                const r = p.getBoundingClientRect();
                return p.scrollWidth <= p.clientWidth && p.scrollHeight <= p.clientHeight
                    && i.left >= r.left && i.right <= r.right + 0.5
                    && i.top >= r.top && i.bottom <= r.bottom + 0.5;
            }"""
        )
    )


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def test_a_reviewer_reviews_a_drop_with_its_photos(gallery: Gallery) -> None:
    g = gallery
    a_drop_with_photos(g)
    page = sign_in(g, DESKTOP)  # type: ignore[arg-type]
    errors = watch_errors(page)
    card = drop_item(page, DROP)
    expect(card).to_contain_text("14 photos for 12 steps")
    expect(card).to_contain_text(f"Serial also on {OTHER}")
    card.get_by_role("button").click()
    editor = page.locator("#editor")
    photos = editor.locator("#photos")

    # The gallery: one section per round, in posting order, with the time.
    rounds = photos.locator("section.round h4")
    expect(rounds).to_have_text(["First submission · 12 photos", "Resubmission 1 · 2 photos"])
    expect(photos.locator("#photo-count")).to_have_text(
        "14 photos for 12 steps · 3 steps have a photo"
    )
    tiles = photos.locator("li.tile")
    expect(tiles).to_have_count(14)
    expect(tiles.nth(0)).to_have_attribute("data-photo", str(g.ids["house"]))
    expect(tiles.nth(13)).to_have_attribute("data-photo", str(g.ids["signature"]))
    wait_until(lambda: thumbs_loaded(page, "#photos img.thumb") == 11)
    expect(tiles.nth(8)).to_contain_text("Fetching from WhatsApp…")
    expect(tiles.nth(9)).to_contain_text("did not match its SHA-256")
    video = tiles.nth(10)
    expect(video).to_contain_text("Video")
    expect(video.get_by_role("link", name="Download")).to_have_attribute(
        "href", re.compile(r"/media/[0-9a-f]{64}$")
    )
    expect(tiles.nth(3).locator(".chip")).to_have_text(["Re-used"])
    expect(tiles.nth(4).locator(".chip")).to_have_text(["Blurred"])

    # Each step shows its photo beside its check box; a step without one is marked.
    house = editor.locator('li[data-step="step_01_house_photo"]')
    expect(house.locator(".step-photo img")).to_be_visible()
    outside = editor.locator('li[data-step="step_03_cable_entry_outside"]')
    expect(outside).to_have_class(re.compile(r"\bno-photo\b"))
    expect(outside.locator(".step-photo")).to_have_text("No photo")

    # The installer's messages, collapsed until asked for.
    thread = editor.locator("#thread")
    expect(thread.locator("summary")).to_have_text("Installer's messages (2)")
    expect(thread.get_by_text("Resent the house photo")).to_be_hidden()
    thread.locator("summary").click()
    expect(thread.get_by_text("Resent the house photo, the first was blurry")).to_be_visible()
    shot(page, "desktop-photos-gallery.png")

    # The large view: click opens it, → and ← move, zoom, Esc closes it.
    tiles.nth(2).get_by_role("button").click()
    large = page.locator("dialog.lightbox")
    expect(large).to_be_visible()
    where = large.locator("#lb-where")
    expect(where).to_contain_text("3 / 14 · First submission")
    wait_until(lambda: thumbs_loaded(page, "#lb-image") == 1)
    assert page.evaluate("document.querySelector('#lb-image').naturalWidth") == PHOTO_SIZE[0]
    page.keyboard.press("ArrowRight")
    expect(where).to_contain_text("4 / 14")
    expect(large.locator("#lb-duplicate")).to_contain_text(f"Also posted for {OTHER} on ")
    page.keyboard.press("ArrowRight")
    expect(large.locator('[data-hint="blurred"]')).to_contain_text("sharpness 12 of 100")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(where).to_contain_text("3 / 14")
    wait_until(lambda: thumbs_loaded(page, "#lb-image") == 1)
    assert shows_whole(page), "fitted, the whole photo is on the screen"
    page.keyboard.press("+")
    expect(large).to_have_attribute("data-zoom", "1.5")
    assert not shows_whole(page), "zoomed, the photo is larger than the screen (and scrolls)"
    large.get_by_role("button", name="Fit to the screen").click()
    expect(large).to_have_attribute("data-zoom", "1")
    assert shows_whole(page)
    large.locator("#lb-image").click()  # a click zooms in where clicked
    expect(large).to_have_attribute("data-zoom", "2.5")
    page.keyboard.press("f")
    expect(large).to_have_attribute("data-zoom", "1")

    # Assign it to step 3 with its key, tick the step: the server has it, the step shows it.
    page.keyboard.press("3")
    expect(large.locator("#lb-note")).to_have_text("Assigned to step 3. Cable entry outside")
    assert next(p for p in api_photos(g, DROP) if p["id"] == g.ids["outside"])["step"] == (
        "step_03_cable_entry_outside"
    )
    page.keyboard.press("t")
    expect(large.locator("#lb-tick")).to_have_attribute("aria-pressed", "true")
    shot(page, "desktop-photo-large.png", full_page=False)
    page.keyboard.press("Escape")
    expect(large).to_be_hidden()
    expect(tiles.nth(2).get_by_role("button")).to_be_focused()
    expect(outside.get_by_label("3. Cable entry outside", exact=True)).to_be_checked()
    expect(outside).not_to_have_class(re.compile(r"\bno-photo\b"))
    expect(outside.locator(".step-photo img")).to_be_visible()
    expect(photos.locator("#photo-count")).to_contain_text("4 steps have a photo")
    editor.get_by_role("button", name="Save review").click()
    expect(editor.locator("#save-note")).to_have_text("Saved")
    assert review(g.store, DROP)["step_03_cable_entry_outside"] is True

    # The ONT serial read from the photo: suggested beside step 8, accepted, stored.
    ont = editor.locator('li[data-step="step_08_ont_barcode"] .serial')
    expect(ont).to_contain_text(f"ONT serial read from the photo: {ONT_SERIAL}")
    ont.get_by_role("button", name=f"Accept ONT serial {ONT_SERIAL}").click()
    expect(ont).to_have_text(f"ONT serial: {ONT_SERIAL}")
    wait_until(lambda: review(g.store, DROP)["ont_serial_scanned"] == ONT_SERIAL)
    # The UPS serial is on another drop too.
    ups = editor.locator('li[data-step="step_09_ups_serial"] .serial')
    expect(ups).to_contain_text(f"UPS serial: {UPS_SERIAL}")
    expect(ups.locator(".conflict")).to_have_text(f"⚠ Also used on {OTHER}")

    # A photo fetched meanwhile appears without a reload.
    g.fetched("ups", scene(9, DROP, 9, serial=UPS_SERIAL))
    expect(tiles.nth(8).locator("img.thumb")).to_be_visible(timeout=LIVE)
    expect(tiles.nth(8)).not_to_contain_text("Fetching")

    # A quality hint, dismissed for everyone: struck through in the large view with who
    # dismissed it, gone from the tile; still so after a reload (the server keeps it).
    tiles.nth(4).get_by_role("button").click()
    blurred = large.locator('[data-hint="blurred"]')
    expect(blurred.get_by_role("button", name="Confirm: Blurred")).to_be_visible()
    blurred.get_by_role("button", name="Dismiss: Blurred").click()
    expect(large.locator("#lb-note")).to_have_text("Blurred: dismissed")
    expect(blurred).to_have_attribute("data-state", "dismissed")
    expect(blurred).to_contain_text("dismissed by reviewer")
    assert blurred.locator(".hint-text").evaluate(
        "e => getComputedStyle(e).textDecorationLine"
    ) == ("line-through")
    (wall,) = (p for p in api_photos(g, DROP) if p["id"] == g.ids["wall"])
    assert (wall["hints"][0]["state"], wall["hints"][0]["by"]) == ("dismissed", "reviewer")
    page.keyboard.press("Escape")
    expect(tiles.nth(4).locator(".chip")).to_have_count(0)
    page.reload()
    card.get_by_role("button").click()
    expect(tiles).to_have_count(14)
    expect(tiles.nth(4).locator(".chip")).to_have_count(0)
    tiles.nth(4).get_by_role("button").click()
    expect(blurred).to_have_attribute("data-state", "dismissed")
    expect(blurred).to_contain_text("dismissed by reviewer")
    # Undone, then confirmed: the hint stays, with who confirmed it.
    blurred.get_by_role("button", name="Undo dismissing: Blurred").click()
    expect(blurred).to_have_attribute("data-state", "open")
    blurred.get_by_role("button", name="Confirm: Blurred").click()
    expect(blurred).to_have_attribute("data-state", "confirmed")
    expect(blurred).to_contain_text("confirmed by reviewer")
    expect(large.locator("#lb-note")).to_have_text("Blurred: confirmed")
    page.keyboard.press("Escape")
    expect(tiles.nth(4).locator(".chip")).to_have_text(["Blurred"])
    (wall,) = (p for p in api_photos(g, DROP) if p["id"] == g.ids["wall"])
    assert wall["hints"][0]["state"] == "confirmed"

    # The menu of the large view: move a photo to another drop, detach another.
    tiles.nth(11).get_by_role("button").click()
    large.get_by_role("button", name="Move…").click()
    large.get_by_label("Move to drop number").fill(OTHER.lower())
    large.get_by_role("button", name="Move", exact=True).click()
    expect(large.locator("#lb-note")).to_have_text(f"Moved to {OTHER}, First submission")
    expect(tiles).to_have_count(13)
    large.get_by_role("button", name="Move…").click()
    large.get_by_role("button", name="Detach from this drop").click()
    expect(large.locator("#lb-note")).to_have_text("Detached from this drop")
    page.keyboard.press("Escape")
    expect(tiles).to_have_count(12)
    expect(card).to_contain_text("12 photos for 12 steps", timeout=LIVE)
    moved = {p["id"] for p in api_photos(g, OTHER)}
    assert moved == {g.ids["original"], g.ids["lights"]}
    assert g.ids["house-again"] not in {p["id"] for p in api_photos(g, DROP)}

    # The re-used photo's flag opens the drop it was first posted for.
    tiles.nth(3).get_by_role("button").click()
    large.get_by_role("button", name=f"Open {OTHER}").click()
    expect(editor.get_by_role("heading", name=OTHER)).to_be_visible()
    expect(editor.locator("#photos li.tile")).to_have_count(2)
    assert not errors, errors


@SQLITE_ONLY
def test_a_drop_with_twelve_photos_is_reviewed_from_the_keyboard(gallery: Gallery) -> None:
    g = gallery
    number = "DR20000001"
    record(g.store, post(number, minutes_ago(60)))
    for i, col in enumerate(STEP_COLUMNS):
        g.photo(col, number, minutes_ago(59 - i), shows=i + 1)
    page = sign_in(g, DESKTOP)  # type: ignore[arg-type]
    errors = watch_errors(page)
    # The keys are documented on `?`.
    page.keyboard.press("?")
    help_box = page.get_by_role("dialog", name="Keys")
    expect(help_box).to_contain_text("assign the photo to step 1–12")
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()

    drop_item(page, number).get_by_role("button").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#editor-title")).to_be_focused()
    page.keyboard.press("o")
    large = page.locator("dialog.lightbox")
    expect(large.locator("#lb-where")).to_contain_text("1 / 12")
    for key in ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "-", "="]:
        page.keyboard.press(key)
        page.keyboard.press("t")
        page.keyboard.press("ArrowRight")
    expect(large.locator("#lb-where")).to_contain_text("12 / 12")
    page.keyboard.press("Control+s")
    expect(page.locator("#save-note")).to_have_text("Saved")
    page.keyboard.press("Escape")
    expect(large).to_be_hidden()
    expect(page.locator("#editor-progress")).to_have_text("12/12")
    saved = review(g.store, number)
    assert all(saved[col] for col in STEP_COLUMNS)
    wait_until(lambda: [p["step"] for p in api_photos(g, number)] == list(STEP_COLUMNS))
    expect(page.locator("#photo-count")).to_have_text(
        "12 photos for 12 steps · 12 steps have a photo"
    )
    expect(page.locator("#editor .step.no-photo")).to_have_count(0)
    assert not errors, errors


@SQLITE_ONLY
def test_the_gallery_and_the_large_view_work_on_a_phone(gallery: Gallery) -> None:
    g = gallery
    a_drop_with_photos(g)
    page = sign_in(g, PHONE)  # type: ignore[arg-type]
    errors = watch_errors(page)
    drop_item(page, DROP).get_by_role("button").click()
    editor = page.locator("#editor")
    tiles = editor.locator("#photos li.tile")
    expect(tiles).to_have_count(14)
    wait_until(lambda: thumbs_loaded(page, "#photos img.thumb") == 11)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    box = tiles.first.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    shot(page, "phone-photos-gallery.png", full_page=False)

    tiles.first.get_by_role("button").click()
    large = page.locator("dialog.lightbox")
    where = large.locator("#lb-where")
    expect(where).to_contain_text("1 / 14")
    for name in (
        "Previous photo",
        "Next photo",
        "Zoom in",
        "Fit to the screen",
        "Close the large view",
    ):
        button = large.get_by_role("button", name=name)
        b = button.bounding_box()
        assert b is not None and b["x"] >= 0 and b["x"] + b["width"] <= PHONE["width"], name
    large.get_by_role("button", name="Next photo").click()
    expect(where).to_contain_text("2 / 14")
    # A swipe to the left is the next photo, to the right the previous one.
    stage = large.locator("#lb-picture").bounding_box()
    assert stage is not None
    y = stage["y"] + stage["height"] / 2
    page.mouse.move(300, y)
    page.mouse.down()
    page.mouse.move(80, y, steps=5)
    page.mouse.up()
    expect(where).to_contain_text("3 / 14")
    wait_until(lambda: thumbs_loaded(page, "#lb-image") == 1)
    # The step is a list the phone can pick from.
    large.get_by_label("Step").select_option("step_03_cable_entry_outside")
    expect(large.locator("#lb-note")).to_have_text("Assigned to step 3. Cable entry outside")
    shot(page, "phone-photo-large.png", full_page=False)
    large.get_by_role("button", name="Close the large view").click()
    expect(large).to_be_hidden()
    outside = editor.locator('li[data-step="step_03_cable_entry_outside"]')
    expect(outside.locator(".step-photo img")).to_be_visible()
    assert not errors, errors


@SQLITE_ONLY
def test_a_viewer_sees_the_photos_but_cannot_assign_them(gallery: Gallery) -> None:
    g = gallery
    a_drop_with_photos(g)
    page = sign_in(g, DESKTOP, user="viewer")  # type: ignore[arg-type]
    drop_item(page, DROP).get_by_role("button").click()
    tiles = page.locator("#photos li.tile")
    tiles.first.get_by_role("button").click()
    large = page.locator("dialog.lightbox")
    expect(large.get_by_label("Step")).to_be_disabled()
    expect(large.get_by_role("button", name="Move…")).to_be_hidden()
    page.keyboard.press("5")
    page.keyboard.press("ArrowRight")
    expect(large.locator("#lb-where")).to_contain_text("2 / 14")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(large.locator("#lb-where")).to_contain_text("5 / 14")
    blurred = large.locator('[data-hint="blurred"]')
    expect(blurred).to_contain_text("sharpness 12 of 100")
    expect(blurred.get_by_role("button")).to_have_count(0)  # seen, not judged
    assert next(p for p in api_photos(g, DROP) if p["id"] == g.ids["house"])["step"] == (
        "step_01_house_photo"
    )
    ont = page.locator('li[data-step="step_08_ont_barcode"] .serial')
    expect(ont).to_contain_text(ONT_SERIAL)
    expect(ont.get_by_role("button")).to_have_count(0)
