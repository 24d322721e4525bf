"""The table of project fields drives the file's checks, `projects add` and the add form."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from wa_monitor.cli.main import main
from wa_monitor.core.config import PROJECT_FIELDS, Project, load_config
from wa_monitor.core.errors import ConfigError
from wa_monitor.monitor.projects_edit import add_project
from wa_monitor.web.projects import NewProject, form_fields

PROJECTS = """\
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "120363418298130331@g.us"
    description: "Lawley Activation 3"
"""


def test_every_field_of_the_table_is_read_onto_a_project() -> None:
    attributes = {f.name for f in dataclasses.fields(Project)} - {"line"}
    assert {f.attribute or f.key for f in PROJECT_FIELDS} == attributes


def test_a_key_outside_the_table_is_refused_naming_the_table(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS + "    colour: blue\n")
    with pytest.raises(ConfigError, match="unknown field `colour`") as caught:
        load_config(path)
    assert ", ".join(sorted(f.key for f in PROJECT_FIELDS)) in str(caught.value)


def test_adding_writes_the_table_s_keys_in_its_order_and_refuses_others(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS)
    add_project(path, name="Velo", group_jid="120363400000000009@g.us", enabled=False, actor="a")
    added = load_config(path).by_name("Velo")
    assert added is not None and not added.enabled and added.description == "Velo"
    tail = path.read_text().split("- name: Velo", 1)[1]
    keys = [line.split(":")[0].strip() for line in tail.strip().splitlines()]
    assert keys == [
        f.key for f in PROJECT_FIELDS if f.key in {"enabled", "group_jid", "description"}
    ]
    with pytest.raises(TypeError, match="colour"):
        add_project(path, name="X", group_jid="120363400000000010@g.us", colour="b", actor="a")


def test_projects_add_offers_an_option_per_field_adding_asks_for() -> None:
    shown = CliRunner().invoke(main, ["projects", "add", "--help"]).output
    for field in PROJECT_FIELDS:
        assert (field.option in shown) == bool(field.added), field.key
    assert "--disabled" in shown and "--group-name" in shown


def test_the_add_form_and_its_api_body_have_the_same_fields() -> None:
    listed = [f["name"] for f in form_fields()]
    assert sorted(listed) == sorted(f.api_name for f in PROJECT_FIELDS if f.added)
    assert listed[0] == "name"  # it heads each row of the dashboard's list
    body = NewProject.model_json_schema()
    assert set(body["properties"]) == {*listed, "groupName"}
    assert body["required"] == [
        f.api_name for f in PROJECT_FIELDS if f.added == "required" and f.kind != "jid"
    ]
