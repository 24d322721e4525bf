"""Linking photos to drops: every rule, the windows at their edges, rounds, captions,
reviewers' decisions, and the result's independence from row order and re-reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wa_monitor.core.config import load_config
from wa_monitor.core.detect import compile_pattern
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.photo_links import (
    Detached,
    DropPost,
    LinkRules,
    Moved,
    Photo,
    PhotoLink,
    PhotoWindows,
    link_photos,
    parse_duration,
)
from wa_monitor.monitor.projects_edit import add_project

GROUP = "120363000000000001@g.us"
OTHER = "120363000000000002@g.us"
ALICE = "27820000001"
BOB = "27820000002"
T0 = datetime(2025, 11, 9, 8, 0, tzinfo=UTC)
DR1 = "DR00000001"
DR2 = "DR00000002"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def post(key: str, minutes: float, drop: str = DR1, sender: str = ALICE, chat: str = GROUP):
    return DropPost(chat, key, sender, at(minutes), drop)


def photo(key: str, minutes: float, sender: str = ALICE, caption: str | None = None, chat=GROUP):
    return Photo(chat, key, sender, at(minutes), caption)


def one(photos, posts, **kwargs) -> PhotoLink:
    (link,) = link_photos(photos, posts, **kwargs)
    return link


def where(link: PhotoLink) -> tuple[str | None, int | None, str | None, str]:
    return (link.drop_number, link.round, link.post_key, link.reason)


# --- the time rules ---------------------------------------------------------------


def test_photo_after_a_post_belongs_to_it() -> None:
    assert where(one([photo("p", 5)], [post("m", 0)])) == (DR1, 0, "m", "after")


def test_photo_belongs_to_the_latest_post_before_it() -> None:
    posts = [post("m1", 0, DR1), post("m2", 10, DR2)]
    assert where(one([photo("p", 15)], posts)) == (DR2, 0, "m2", "after")


def test_after_window_is_inclusive_at_two_hours() -> None:
    assert one([photo("p", 120)], [post("m", 0)]).drop_number == DR1
    late = one([Photo(GROUP, "p", ALICE, at(120) + timedelta(seconds=1))], [post("m", 0)])
    assert where(late) == (None, None, None, "none")


def test_photo_of_the_same_second_as_its_post_counts_as_after() -> None:
    assert where(one([photo("p", 0)], [post("m", 0)])) == (DR1, 0, "m", "after")


def test_photo_before_a_post_belongs_to_the_first_post_after_it() -> None:
    posts = [post("m1", 10, DR1), post("m2", 20, DR2)]
    assert where(one([photo("p", 0)], posts)) == (DR1, 0, "m1", "before")


def test_before_window_is_inclusive_at_thirty_minutes() -> None:
    assert one([photo("p", 0)], [post("m", 30)]).reason == "before"
    early = one([Photo(GROUP, "p", ALICE, at(-30) - timedelta(seconds=1))], [post("m", 0)])
    assert early.reason == "none"


def test_a_stale_earlier_post_gives_way_to_a_following_one() -> None:
    # The latest post before is 3 h old: the photo is the next drop's, posted 10 min later.
    posts = [post("m1", 0, DR1), post("m2", 190, DR2)]
    assert where(one([photo("p", 180)], posts)) == (DR2, 0, "m2", "before")


def test_only_the_same_persons_posts_count() -> None:
    posts = [post("m", 0, sender=BOB)]
    assert one([photo("p", 5, sender=ALICE)], posts).reason == "none"


def test_only_the_same_groups_posts_count() -> None:
    posts = [post("m", 0, chat=OTHER)]
    assert one([photo("p", 5)], posts).reason == "none"


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        Photo(GROUP, "p", ALICE, datetime(2025, 11, 9, 8, 0))
    with pytest.raises(ValueError, match="no time zone"):
        DropPost(GROUP, "m", ALICE, datetime(2025, 11, 9, 8, 0), DR1)


def test_a_photo_with_no_post_near_it_belongs_to_no_drop() -> None:
    assert where(one([photo("p", 0)], [])) == (None, None, None, "none")


def test_windows_are_per_group() -> None:
    rules = {GROUP: LinkRules(windows=PhotoWindows(after=timedelta(minutes=10)))}
    photos = [photo("p", 15), photo("q", 15, chat=OTHER)]
    posts = [post("m", 0), post("n", 0, chat=OTHER)]
    links = {link.chat: link for link in link_photos(photos, posts, rules=rules)}
    assert links[GROUP].reason == "none"
    assert links[OTHER].reason == "after"


@pytest.mark.parametrize(
    "after, before",
    [(timedelta(0), timedelta(minutes=1)), (timedelta(hours=1), timedelta(seconds=-1))],
)
def test_windows_must_be_positive(after: timedelta, before: timedelta) -> None:
    with pytest.raises(ValueError, match="positive"):
        PhotoWindows(after=after, before=before)


@pytest.mark.parametrize(
    "text, expected",
    [("2h", timedelta(hours=2)), ("30m", timedelta(minutes=30)), ("90s", timedelta(seconds=90))],
)
def test_durations_are_read(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0m", "-5m", "2 hours", "", "1.5h", "h"])
def test_bad_durations_say_what_to_write(text: str) -> None:
    with pytest.raises(ValueError, match="2h, 30m or 90s"):
        parse_duration(text)


# --- rounds -----------------------------------------------------------------------


def test_each_post_of_a_drop_opens_a_round() -> None:
    posts = [post("m0", 0), post("m1", 300), post("m2", 600)]
    photos = [photo("a", 5), photo("b", 305), photo("c", 590), photo("d", 601)]
    links = {link.photo_key: link for link in link_photos(photos, posts)}
    assert (links["a"].round, links["b"].round) == (0, 1)
    assert (links["c"].round, links["c"].reason) == (2, "before")
    assert (links["d"].round, links["d"].post_key) == (2, "m2")


def test_rounds_count_every_posters_posts_of_the_drop() -> None:
    # A resubmission by a colleague is still round 1 of the drop.
    posts = [post("m0", 0, sender=BOB), post("m1", 300, sender=ALICE)]
    assert where(one([photo("p", 310)], posts)) == (DR1, 1, "m1", "after")


def test_rounds_are_per_drop() -> None:
    posts = [post("m0", 0, DR1), post("m1", 60, DR2), post("m2", 120, DR1)]
    links = {link.photo_key: link for link in link_photos([photo("a", 61), photo("b", 121)], posts)}
    assert (links["a"].drop_number, links["a"].round) == (DR2, 0)
    assert (links["b"].drop_number, links["b"].round) == (DR1, 1)


def test_posts_of_one_second_are_ordered_by_message_key() -> None:
    posts = [post("m-b", 0), post("m-a", 0)]
    link = one([photo("p", 1)], posts)
    assert (link.post_key, link.round) == ("m-b", 1)


# --- captions ---------------------------------------------------------------------


def test_a_caption_naming_a_drop_links_whatever_the_times() -> None:
    posts = [post("m1", 0, DR1), post("m2", 600, DR2)]
    link = one([photo("p", 605, caption=f"step 3 {DR1}")], posts)
    assert where(link) == (DR1, 0, "m1", "caption")


def test_a_caption_links_to_the_round_of_the_latest_post_before_the_photo() -> None:
    posts = [post("m0", 0), post("m1", 300), post("m2", 900)]
    assert where(one([photo("p", 600, caption=DR1)], posts)) == (DR1, 1, "m1", "caption")
    assert where(one([photo("p", -60, caption=DR1)], posts)) == (DR1, 0, "m0", "caption")


def test_a_caption_uses_the_projects_pattern() -> None:
    rules = {GROUP: LinkRules(pattern=compile_pattern(r"\bLAW-\d{4}\b"))}
    posts = [post("m1", 0, "LAW-0001"), post("m2", 600, "LAW-0002")]
    link = one([photo("p", 605, caption="LAW-0001 ONT")], posts, rules=rules)
    assert where(link) == ("LAW-0001", 0, "m1", "caption")


def test_a_caption_naming_a_drop_the_person_never_posted_falls_back_to_the_times() -> None:
    posts = [post("m1", 0, DR1), post("m2", 0, DR2, sender=BOB)]
    assert where(one([photo("p", 5, caption=DR2)], posts)) == (DR1, 0, "m1", "after")


def test_a_caption_naming_two_drops_takes_the_first_the_person_posted() -> None:
    posts = [post("m1", 0, DR1), post("m2", 1, DR2)]
    link = one([photo("p", 500, caption=f"DR00000009 {DR2} {DR1}")], posts)
    assert where(link) == (DR2, 0, "m2", "caption")


def test_a_photo_that_is_itself_a_drop_post_belongs_to_its_own_round() -> None:
    posts = [post("m0", 0), post("p", 300)]
    link = one([photo("p", 300, caption=f"{DR1} resubmitted")], posts)
    assert where(link) == (DR1, 1, "p", "caption")


# --- reviewers' decisions ---------------------------------------------------------


def test_a_move_wins_over_the_rules() -> None:
    posts = [post("m1", 0, DR1), post("m2", 600, DR2)]
    moved = Moved(GROUP, "p", at(700), DR2)
    assert where(one([photo("p", 5)], posts, decisions=[moved])) == (DR2, 0, "m2", "moved")


def test_a_move_to_a_round() -> None:
    posts = [post("m0", 0), post("m1", 300)]
    moved = Moved(GROUP, "p", at(700), DR1, round=0)
    assert where(one([photo("p", 305)], posts, decisions=[moved])) == (DR1, 0, "m0", "moved")


def test_a_move_to_a_drop_or_round_the_group_does_not_show_stands() -> None:
    decisions = [Moved(GROUP, "p", at(700), "DR00000009", round=3)]
    link = one([photo("p", 5)], [post("m", 0)], decisions=decisions)
    assert where(link) == ("DR00000009", 3, None, "moved")
    link = one([photo("p", 5)], [post("m", 0)], decisions=[Moved(GROUP, "p", at(1), "DR9")])
    assert where(link) == ("DR9", None, None, "moved")


def test_detached_wins_over_a_caption() -> None:
    detached = Detached(GROUP, "p", at(700))
    link = one([photo("p", 5, caption=DR1)], [post("m", 0)], decisions=[detached])
    assert where(link) == (None, None, None, "detached")


def test_the_latest_decision_wins_in_any_order() -> None:
    posts = [post("m1", 0, DR1), post("m2", 600, DR2)]
    decisions = [
        Moved(GROUP, "p", at(700), DR2),
        Detached(GROUP, "p", at(800)),
        Moved(GROUP, "p", at(800), DR1, seq=2),
    ]
    for order in (decisions, decisions[::-1]):
        assert where(one([photo("p", 5)], posts, decisions=order)) == (DR1, 0, "m1", "moved")


def test_a_move_to_a_negative_round_is_refused() -> None:
    with pytest.raises(ValueError, match="round"):
        Moved(GROUP, "p", at(0), DR1, round=-1)


def test_a_decision_on_another_groups_photo_of_the_same_key_changes_nothing() -> None:
    decisions = [Detached(OTHER, "p", at(700))]
    assert one([photo("p", 5)], [post("m", 0)], decisions=decisions).reason == "after"


def test_decisions_survive_a_rescan_with_new_posts() -> None:
    decisions = [Moved(GROUP, "p", at(700), DR1, round=0)]
    first = one([photo("p", 5)], [post("m", 0)], decisions=decisions)
    again = one([photo("p", 5)], [post("m", 0), post("m2", 4, DR2)], decisions=decisions)
    assert where(first) == where(again) == (DR1, 0, "m", "moved")


# --- order independence and re-reads ----------------------------------------------

KEYS = [f"k{i}" for i in range(8)]
minutes = st.integers(min_value=-200, max_value=400)
photos_st = st.lists(
    st.builds(
        lambda key, m, sender, caption: photo(key, m, sender, caption),
        st.sampled_from(KEYS),
        minutes,
        st.sampled_from([ALICE, BOB]),
        st.sampled_from([None, "", DR1, f"{DR2} ups", "nothing"]),
    ),
    max_size=12,
    unique_by=lambda p: p.key,
)
posts_st = st.lists(
    st.builds(
        lambda key, m, drop, sender: post(key, m, drop, sender),
        st.sampled_from([f"m{i}" for i in range(6)] + KEYS[:2]),
        minutes,
        st.sampled_from([DR1, DR2]),
        st.sampled_from([ALICE, BOB]),
    ),
    max_size=10,
    unique_by=lambda p: (p.key, p.drop_number),
)
decisions_st = st.lists(
    st.one_of(
        st.builds(
            lambda key, m, drop, rnd, seq: Moved(GROUP, key, at(m), drop, rnd, seq),
            st.sampled_from(KEYS),
            minutes,
            st.sampled_from([DR1, DR2]),
            st.none() | st.integers(0, 3),
            st.integers(0, 3),
        ),
        st.builds(
            lambda key, m, seq: Detached(GROUP, key, at(m), seq),
            st.sampled_from(KEYS),
            minutes,
            st.integers(0, 3),
        ),
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(photos_st, posts_st, decisions_st, st.randoms(use_true_random=False))
def test_any_order_and_any_re_read_give_the_same_links(photos, posts, decisions, rnd) -> None:
    expected = link_photos(photos, posts, decisions=decisions)
    assert len(expected) == len(photos)
    shuffled = [list(photos), list(posts), list(decisions)]
    for items in shuffled:
        rnd.shuffle(items)
    # History sync re-delivers rows: each row may come twice.
    again = link_photos(
        shuffled[0] + photos[: len(photos) // 2],
        shuffled[1] + posts[::2],
        decisions=shuffled[2],
    )
    assert again == expected
    assert link_photos(photos, posts, decisions=decisions) == expected


@settings(max_examples=100, deadline=None)
@given(photos_st, posts_st, photos_st, posts_st)
def test_another_groups_rows_change_nothing(photos, posts, other_photos, other_posts) -> None:
    expected = link_photos(photos, posts)
    elsewhere_photos = [Photo(OTHER, p.key, p.sender, p.posted, p.caption) for p in other_photos]
    elsewhere_posts = [
        DropPost(OTHER, p.key, p.sender, p.posted, p.drop_number) for p in other_posts
    ]
    links = link_photos(photos + elsewhere_photos, posts + elsewhere_posts)
    assert tuple(link for link in links if link.chat == GROUP) == expected


@settings(max_examples=100, deadline=None)
@given(photos_st, posts_st, decisions_st)
def test_each_photo_is_linked_as_if_it_were_alone(photos, posts, decisions) -> None:
    together = link_photos(photos, posts, decisions=decisions)
    alone = sorted(
        (link for p in photos for link in link_photos([p], posts, decisions=decisions)),
        key=lambda link: (
            next(p.posted for p in photos if p.key == link.photo_key),
            link.photo_key,
        ),
    )
    assert list(together) == alone


@settings(max_examples=100, deadline=None)
@given(photos_st, posts_st)
def test_every_link_points_at_a_post_of_the_same_person_unless_decided(photos, posts) -> None:
    by_key = {(p.key, p.drop_number): p for p in posts}
    senders = {p.key: p.sender for p in photos}
    for link in link_photos(photos, posts):
        if link.drop_number is None:
            continue
        linked = by_key[(link.post_key, link.drop_number)]
        assert linked.sender == senders[link.photo_key]


# --- the windows in the projects file ---------------------------------------------

PROJECTS_FILE = """\
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "120363418298130331@g.us"
    description: "Lawley Activation 3"
"""


def test_windows_default_to_two_hours_and_thirty_minutes(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS_FILE)
    (project,) = load_config(path).projects
    assert project.photo_windows == PhotoWindows(timedelta(hours=2), timedelta(minutes=30))


def test_a_project_overrides_its_windows(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS_FILE + "    photos_after: 90m\n    photos_before: 90s\n")
    (project,) = load_config(path).projects
    assert (project.photos_after, project.photos_before) == (
        timedelta(minutes=90),
        timedelta(seconds=90),
    )


@pytest.mark.parametrize("value", ["0m", "-5m", "120", "two hours", "true"])
def test_a_bad_window_is_refused_at_its_line(tmp_path: Path, value: str) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS_FILE + f"    photos_before: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:6: project 'Lawley': `photos_before`")
    assert "2h, 30m or 90s" in problem


def test_adding_a_project_writes_no_window(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS_FILE)
    add_project(path, name="Velo", group_jid="120363400000000009@g.us", actor="a")
    assert "photos_" not in path.read_text()
    added = load_config(path).by_name("Velo")
    assert added is not None and added.photos_after == timedelta(hours=2)
