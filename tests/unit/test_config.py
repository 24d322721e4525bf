"""The projects file: the document's YAML works unchanged; every problem is reported at once;
a hostile file is refused at its line, in bounded time and memory."""

from __future__ import annotations

import os
import re
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.helpers import PROJECTS_YAML
from wa_monitor.core.config import MAX_FILE_BYTES, load_config, parse_config, resolve_config_path
from wa_monitor.core.errors import ConfigError

SEED_YAML = """\
# WhatsApp Monitor - Production Projects
# Last updated: 2025-11-09

projects:
  - name: Lawley
    enabled: true
    group_jid: "120363418298130331@g.us"
    description: "Lawley Activation 3 group"

  - name: Velo Test
    enabled: true
    group_jid: "120363421664266245@g.us"
    description: "Velo Test group"

  - name: Mohadin
    enabled: true
    group_jid: "120363421532174586@g.us"
    description: "Mohadin Activations group"

  - name: Mamelodi
    enabled: true
    group_jid: "120363408849234743@g.us"
    description: "Mamelodi POP1 Activations group"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("projects.yaml"))
    return caught.value.problems


def test_the_architecture_documents_file_loads_unchanged() -> None:
    config = parse_config(SEED_YAML, Path("projects.yaml"))
    assert [p.name for p in config.enabled] == ["Lawley", "Velo Test", "Mohadin", "Mamelodi"]
    assert config.enabled[0].pattern.source == r"\bDR\d{8}\b"
    assert config.by_group()["120363408849234743@g.us"].name == "Mamelodi"


def test_optional_additions() -> None:
    text = PROJECTS_YAML.replace(
        "timezone: Africa/Johannesburg\n",
        "timezone: Africa/Johannesburg\ndrop_pattern: '\\bDR\\d{7,8}\\b'\n"
        "steps:\n  step_01_house_photo: Front of the house\n",
    ).replace(
        '    description: "Velo Test group"\n',
        '    description: "Velo Test group"\n    since: 2025-11-01T08:00:00\n',
    )
    config = parse_config(text, Path("projects.yaml"))
    velo = config.by_name("Velo Test")
    assert velo is not None
    assert velo.since == datetime(2025, 11, 1, 8, tzinfo=ZoneInfo("Africa/Johannesburg"))
    assert velo.pattern.source == r"\bDR\d{7,8}\b"  # the top-level default
    assert config.step_labels["step_01_house_photo"] == "Front of the house"
    assert config.step_labels["step_12_customer_signature"] == "Customer signature"
    # Disabled projects are validated but not monitored.
    assert [p.name for p in config.projects] == ["Lawley", "Velo Test", "Mohadin"]
    assert [p.name for p in config.enabled] == ["Lawley", "Velo Test"]


def test_every_problem_is_reported_with_line_project_and_hint() -> None:
    text = """\
timezone: Mars/Olympus
colour: blue
projects:
  - name: Lawley
    group_jid: "120363418298130331@g.us"
    description: "Lawley"
  - name: Lawley
    group_jid: "27821234567@s.whatsapp.net"
    description: "dup name"
  - name: Velo
    group_jid: "120363418298130331@g.us"
    description: "dup jid"
    drop_pattern: '(DR'
    since: last tuesday
    owner: me
  - group_jid: "120363400000000009@g.us"
  - name: Mamelodi
    enabled: yes please
    group_jid: "120363408849234743@g.us"
    description: "x"
"""
    found = problems(text)
    joined = "\n".join(found)
    expected = [
        "projects.yaml:1: `timezone: Mars/Olympus` is not a known IANA time zone",
        "projects.yaml:2: unknown key `colour`",
        "projects.yaml:7: project 'Lawley': duplicate name (also on line 4)",
        "projects.yaml:8: project 'Lawley': group_jid `27821234567@s.whatsapp.net` is not a "
        "group JID",
        "projects.yaml:11: project 'Velo': group_jid 120363418298130331@g.us is already used by "
        "project 'Lawley'",
        "projects.yaml:13: project 'Velo': `drop_pattern` does not compile",
        "projects.yaml:14: project 'Velo': `since: last tuesday` is not an ISO date",
        "projects.yaml:15: project 'Velo': unknown field `owner`",
        "projects.yaml:16: project '#16': `name` is missing",
        "projects.yaml:16: project '#16': `description` is missing",
        "projects.yaml:18: project 'Mamelodi': `enabled` must be true or false",
    ]
    for line in expected:
        assert line in joined, f"missing: {line}\n--- got:\n{joined}"
    assert "wa-monitor groups" in joined  # the hint for a bad group_jid
    assert len(found) == len(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("projects:\n  - name: [unclosed\n", "flow sequence on line 2"),
        ("projects:\n- name: a\n  group_jid: 1@g.us\n bad: indent\n", "YAML syntax error"),
        ("", "the file is empty"),
        ("- just a list\n", "must be a mapping"),
        ("timezone: UTC\n", "the `projects:` list is missing"),
        ("projects: Lawley\n", "`projects` must be a list"),
    ],
)
def test_malformed_files(text: str, message: str) -> None:
    assert any(message in p for p in problems(text))


def test_config_path_resolution() -> None:
    assert resolve_config_path("a.yaml", {"WA_MONITOR_CONFIG": "b.yaml"}) == Path("a.yaml")
    assert resolve_config_path(None, {"WA_MONITOR_CONFIG": "b.yaml"}) == Path("b.yaml")
    assert resolve_config_path(None, {}) == Path("config/projects.yaml")


# -- a hostile projects file: refused at its line, in bounded time and memory -------------

VALID = SEED_YAML
LAUGHS = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{x}: &{x} [{', '.join(['*' + w] * 9)}]\n" for w, x in zip("abcde", "bcdef", strict=True)
)  # 9**6 = 531,441 strings once expanded
HOSTILE = {
    # what: (text, the line the error names, what it says)
    "an alias bomb": (LAUGHS + VALID, 1, "anchors and aliases"),
    "an anchor": (VALID + "  - &p\n    name: X\n", 24, "anchors and aliases"),
    "an alias": (VALID.replace('"Mamelodi POP1 Activations group"', "*x"), 23, "aliases"),
    "60,000 nested [": ("[" * 60_000, 1, "nesting deeper than 10 levels"),
    "60,000 nested {": ("{" * 60_000, 1, "nesting deeper than 10 levels"),
    "nested [ over lines": ("x:\n" + "  [\n" * 5_000, 12, "nesting deeper than 10 levels"),
    "deep block mappings": ("".join("  " * i + f"k{i}:\n" for i in range(30)), 11, "deeper"),
    "a Python tag": ("x: !!python/object:os.system {}\n" + VALID, 1, "`!!python/object:os.system`"),
    "a local tag": (VALID.replace('"Lawley Activation 3 group"', "!x y"), 8, "the tag `!x`"),
    "a tag directive": ("%TAG !! tag:evil.example,2000:\n---\nprojects: !!seq []\n", 3, "tag"),
    "a 5,000-digit number": (
        VALID.replace("enabled: true", "enabled: " + "9" * 5000, 1),
        6,
        "(Exceeds the limit (4300 digits)",
    ),
    "a date that does not exist": (VALID + "    since: 2025-02-30\n", 24, "`2025-02-30`"),
    "a duplicated top-level key": (VALID + "projects: []\n", 24, "duplicate key `projects`"),
    "a duplicated project field": (VALID + "    name: Again\n", 24, "(first on line 20)"),
    "a duplicated key in a flow mapping": ("projects: [{name: a, name: b}]\n", 1, "duplicate"),
    "a duplicated number key": ("1: a\n0x1: b\n" + VALID, 2, "duplicate key"),
    "a key that is a list": ("? [a, b]\n: c\n" + VALID, 1, "a key must be a plain name"),
    "a NUL byte": (VALID[:100] + "\x00" + VALID[100:], 6, "NUL byte"),
    "a control character": (VALID + "# \x1b[31m\n", 24, "U+001B"),
    "3,001 values": ("x: [" + "1, " * 3001 + "1]\n", 1, "more than 3,000 values"),
    "a block list of 5,000": ("x:\n" + "- a\n" * 5_000, 2999, "more than 3,000 values"),
    "two documents": (VALID + "---\n" + VALID, 24, "another document"),
    "a time zone of 5,000 letters": ("timezone: " + "a" * 5000 + "\n" + VALID, 1, "time zone"),
    "a time zone with a NUL": ('timezone: "Africa\\0"\n' + VALID, 1, "not a known IANA"),
}


@pytest.mark.timing
@pytest.mark.parametrize("what", list(HOSTILE))
def test_a_hostile_projects_file_is_refused_at_its_line_within_bounds(what: str) -> None:
    text, line, message = HOSTILE[what]
    started = time.perf_counter()
    found = problems(text)
    took = time.perf_counter() - started
    # Memory is measured on a second reading: tracing allocations slows Python severalfold.
    tracemalloc.start()
    try:
        problems(text)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert found[0].startswith(f"projects.yaml:{line}: "), found
    assert message in found[0], found
    assert len(found[0]) < 300, found[0]  # values from the file are shortened
    assert took < 1.0, f"{what}: {took:.2f} s"
    assert peak < 50_000_000, f"{what}: {peak / 1e6:.0f} MB"


def test_the_largest_file_read_is_bounded() -> None:
    too_big = VALID + "# " + "x" * MAX_FILE_BYTES + "\n"
    assert problems(too_big) == ["projects.yaml: the projects file is larger than 64 KiB"]


# Hostile values, put in place of a value of the valid file, and hostile lines, put
# between two of its lines; random text too.
_VALUES = st.sampled_from(
    [
        "*a", "&a x", "&b [*a, *a, *a]", "!!python/object:os.system {}", "!x y", "! y",
        "!!binary aGk=", "!!timestamp 2025-13-45", "!!int 9", "!!float 1e999", "[" * 40,
        "{" * 40, "[1, [2, [3]]]", "{a: 1}", "[]", "{}", "'unterminated", '"\\u0000"',
        "9" * 5000, "-" + "9" * 5000, "2025-02-30", "2025-11-01T25:00:00", "1e999", ".inf",
        ".nan", "~", "null", "0x1F", "0o17", "1_000", "yes", "no", "'DR(\\d+)+X'",
        "'(DR)\\1'", "'\\d*'", "'DR{,8}'", "\x00", "\x07", "\ud800", "\ufeff", "a" * 5000,
        "!!int 0x", "!!int ''", "!!float _", "!!bool maybe", "!!timestamp x", "2025-11-01 25:00",
    ]
)  # fmt: skip
_LINES = st.sampled_from(
    [
        "x: &a [*a]", "%TAG !! tag:x:", "---", "...", "<<: {name: a}", "? [a]\n: b", "  - *a",
        "projects: []", "timezone: UTC", "  - name: Lawley", "    name: Again", "steps: *a",
        "drop_pattern: '(?=x)'", "  " + "[" * 30, "- - - - - - - - - - - - x", "\t- x",
    ]
)  # fmt: skip
_EDIT = st.tuples(
    st.integers(0, VALID.count("\n")),
    st.sampled_from(["value", "line", "text"]),
    st.one_of(_VALUES, _LINES, st.text(max_size=12)),
)


# Each edit's parse is bounded by the clock: run alone, not beside the parallel workers.
@pytest.mark.timing
@settings(max_examples=500, deadline=None)
@given(edits=st.lists(_EDIT, min_size=1, max_size=4))
@example(edits=[(21, "value", "2025-02-30")])
def test_any_edit_of_the_file_is_a_config_or_an_error_never_a_crash(
    edits: list[tuple[int, str, str]],
) -> None:
    lines = VALID.splitlines()
    for at, how, piece in edits:
        at = min(at, len(lines) - 1)
        if how == "value" and ": " in lines[at]:
            lines[at] = lines[at].split(": ", 1)[0] + ": " + piece
        elif how == "line":
            lines.insert(at, piece)
        else:
            lines[at] = lines[at][: len(piece)] + piece + lines[at][len(piece) :]
    text = "\n".join(lines) + "\n"
    started = time.perf_counter()
    try:
        config = parse_config(text, Path("projects.yaml"))
    except ConfigError as exc:
        assert exc.problems
        assert all(p.startswith("projects.yaml") for p in exc.problems), exc.problems
    else:
        assert config.projects  # what is valid still holds its projects
    assert time.perf_counter() - started < 1.0


# -- what the path names: only a regular UTF-8 file, within bounds ------------------------


def read_problem(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return "\n".join(caught.value.problems)


@pytest.mark.timeout(20)  # a FIFO or /dev/zero read as a file never ends
def test_the_projects_path_must_name_a_regular_file(tmp_path: Path) -> None:
    missing = read_problem(tmp_path / "missing.yaml")
    assert "projects file not found" in missing
    assert "projects.example.yaml" not in missing
    # The example in the message is a projects file that loads.
    sample = re.search(r"'(projects: .*?)'", missing)
    assert sample is not None
    (tmp_path / "example.yaml").write_text(sample.group(1) + "\n")
    assert [p.name for p in load_config(tmp_path / "example.yaml").projects] == ["Lawley"]
    assert "is a directory, not a projects file" in read_problem(tmp_path)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert "is a FIFO (named pipe), not a projects file" in read_problem(fifo)
    zero = tmp_path / "zero.yaml"
    zero.symlink_to("/dev/zero")
    assert "is a character device, not a projects file" in read_problem(zero)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * 10_000_000)
    assert "larger than 64 KiB" in read_problem(big)


def test_a_file_that_is_not_utf8_text_is_named_with_its_line(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(VALID.replace("Lawley Activation", "Lawléy Activation").encode("latin-1"))
    assert read_problem(latin1) == (
        f"{latin1}:8: the projects file is not UTF-8 text (byte 0xe9 at line 8); save it as UTF-8"
    )
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes(VALID.encode("utf-16"))
    assert "not UTF-8 text" in read_problem(utf16)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    assert read_problem(binary).startswith(f"{binary}:")
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert len(load_config(bom).projects) == 4  # a byte order mark is fine


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file; see tests/faults")
def test_an_unreadable_file_says_whose_permission_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(VALID)
    path.chmod(0)
    assert "permission denied reading the projects file" in read_problem(path)


def test_a_drop_pattern_that_cannot_run_safely_is_refused_with_its_line_and_reason() -> None:
    text = VALID.replace(
        '    description: "Velo Test group"\n',
        "    description: \"Velo Test group\"\n    drop_pattern: '(DR)\\d{6}\\1'\n",
    ).replace("projects:\n", "drop_pattern: 'DR(?=\\d)\\d{8}'\nprojects:\n")
    assert problems(text) == [
        "projects.yaml:4: `drop_pattern` cannot be used: it holds a lookahead or lookbehind "
        "((?=…), (?<=…)); drop patterns run on RE2, which matches in linear time and cannot "
        "run those: rewrite it without",
        "projects.yaml:15: project 'Velo Test': `drop_pattern` cannot be used: it holds a "
        "backreference (\\1, (?P=name)); drop patterns run on RE2, which matches in linear "
        "time and cannot run those: rewrite it without",
    ]
    # The pattern that froze the scan is accepted: RE2 runs it in linear time.
    fine = VALID.replace("projects:\n", "drop_pattern: 'DR(\\d+)+X'\nprojects:\n")
    assert parse_config(fine, Path("projects.yaml")).drop_pattern.source == r"DR(\d+)+X"


# -- a tagged or dated value Python cannot hold: its line, never a crash ------------------


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("!!int 0x", "`0x` cannot be read (not a valid !!int)"),
        ("!!int ''", "`` cannot be read (not a valid !!int)"),
        ("!!int 0b_", "`0b_` cannot be read (not a valid !!int)"),
        ("!!float _", "`_` cannot be read (not a valid !!float)"),
        ("!!float .", "`.` cannot be read (could not convert string to float"),
        ("!!bool maybe", "`maybe` cannot be read (not a valid !!bool)"),
        ("2025-13-45", "`2025-13-45` is not a real date or time (month must be in 1..12)"),
        ("!!timestamp 2025-02-30", "is not a real date or time (day is out of range for month)"),
        ("2025-11-01 25:00:00", "is not a real date or time (hour must be in 0..23)"),
    ],
)
def test_a_value_its_tag_or_date_cannot_hold_is_refused_at_its_line(value: str, said: str) -> None:
    text = PROJECTS_YAML.replace(
        '    description: "Velo Test group"\n',
        f'    description: "Velo Test group"\n    since: {value}\n',
    )
    line = text.splitlines().index(f"    since: {value}") + 1
    found = problems(text)
    assert len(found) == 1, found
    assert found[0].startswith(f"projects.yaml:{line}: "), found
    assert said in found[0], found
