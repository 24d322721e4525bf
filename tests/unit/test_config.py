"""The projects file: the document's YAML works unchanged; every problem is reported at once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import PROJECTS_YAML
from wa_monitor.config import parse_config, resolve_config_path
from wa_monitor.errors import ConfigError

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
