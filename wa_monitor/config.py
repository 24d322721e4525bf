"""The projects file: one YAML file, validated in one pass into a frozen object."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from wa_monitor.detect import DEFAULT_DROP_PATTERN, DropPattern, compile_pattern
from wa_monitor.steps import STEP_COLUMNS, STEP_LABELS

GROUP_JID = re.compile(r"\d+(-\d+)?@g\.us")
DEFAULT_CONFIG_PATH = Path("config/projects.yaml")

_TOP_KEYS = {"projects", "timezone", "drop_pattern", "steps"}
_PROJECT_KEYS = {"name", "enabled", "group_jid", "description", "drop_pattern", "since"}
_REQUIRED = ("name", "group_jid", "description")
_HINTS = {
    "name": "give the project the name reviewers know it by, e.g. `name: Lawley`",
    "group_jid": "copy the group's JID from `wa-monitor groups`",
    "description": "describe the group in a few words, e.g. `description: Lawley Activation 3`",
}


@dataclass(frozen=True)
class Project:
    """One monitored WhatsApp group."""

    name: str
    group_jid: str
    description: str
    enabled: bool
    pattern: DropPattern
    since: datetime | None = None
    line: int = 0


@dataclass(frozen=True)
class ProjectsConfig:
    """The validated projects file."""

    path: Path
    timezone: str
    drop_pattern: DropPattern
    projects: tuple[Project, ...]
    step_labels: Mapping[str, str] = field(default_factory=lambda: dict(STEP_LABELS))

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @property
    def enabled(self) -> tuple[Project, ...]:
        return tuple(p for p in self.projects if p.enabled)

    def by_group(self) -> dict[str, Project]:
        """Enabled projects keyed by group JID."""
        return {p.group_jid: p for p in self.enabled}

    def by_name(self, name: str) -> Project | None:
        return next((p for p in self.projects if p.name == name), None)


def resolve_config_path(option: str | Path | None, environ: Mapping[str, str]) -> Path:
    """`--config`, else WA_MONITOR_CONFIG, else config/projects.yaml under the working dir."""
    if option:
        return Path(option)
    if environ.get("WA_MONITOR_CONFIG"):
        return Path(environ["WA_MONITOR_CONFIG"])
    return DEFAULT_CONFIG_PATH


def host_zone_name() -> str:
    """The host's IANA zone name (TZ, /etc/timezone, /etc/localtime), else UTC."""
    candidates: list[str] = []
    if os.environ.get("TZ"):
        candidates.append(os.environ["TZ"].lstrip(":"))
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text().strip())
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


def load_config(path: Path) -> ProjectsConfig:
    """Read and validate the projects file; raises ConfigError listing every problem."""
    from wa_monitor.errors import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [
                f"{path}: projects file not found; create it (see config/projects.example.yaml) "
                "or point --config / WA_MONITOR_CONFIG at it"
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the projects file: {exc}"]) from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> ProjectsConfig:
    """Validate the text of a projects file; raises ConfigError listing every problem."""
    from wa_monitor.errors import ConfigError

    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = exc.problem or "syntax error"
        if exc.context and exc.context_mark is not None:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise ConfigError(
            [f"{where}: YAML syntax error: {problem}; check the indentation and quotes"]
        ) from None
    except YAMLError as exc:
        raise ConfigError([f"{path}: YAML syntax error: {exc}"]) from None
    validator = _Validator(path)
    config = validator.validate(data)
    if validator.problems or config is None:
        raise ConfigError(validator.problems)
    return config


class _Validator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, line: int | None, message: str, project: str | None = None) -> None:
        where = f"{self.path}:{line}" if line else str(self.path)
        who = f" project '{project}':" if project else ""
        self.problems.append(f"{where}:{who} {message}")

    def validate(self, data: Any) -> ProjectsConfig | None:
        if data is None:
            self.problem(None, "the file is empty; it needs a `projects:` list")
            return None
        if not isinstance(data, CommentedMap):
            self.problem(1, "the file must be a mapping with a `projects:` list at the top level")
            return None
        for key in data:
            if key not in _TOP_KEYS:
                self.problem(
                    _key_line(data, key),
                    f"unknown key `{key}`; allowed at the top level: "
                    + ", ".join(sorted(_TOP_KEYS)),
                )
        zone = self._timezone(data)
        default_pattern = self._pattern(data, "drop_pattern", DEFAULT_DROP_PATTERN, None)
        labels = self._steps(data)
        projects = self._projects(data, default_pattern, zone)
        if self.problems or default_pattern is None:
            return None
        return ProjectsConfig(
            path=self.path,
            timezone=zone,
            drop_pattern=default_pattern,
            projects=tuple(projects),
            step_labels=labels,
        )

    def _timezone(self, data: CommentedMap) -> str:
        value = data.get("timezone")
        if value is None:
            return host_zone_name()
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(
                _value_line(data, "timezone"),
                f"`timezone: {value}` is not a known IANA time zone; "
                "use a name such as Africa/Johannesburg",
            )
            return "UTC"
        return str(value)

    def _pattern(
        self, data: CommentedMap, key: str, default: str, project: str | None
    ) -> DropPattern | None:
        value = data.get(key, default)
        if not isinstance(value, str) or not value:
            self.problem(
                _value_line(data, key),
                f"`{key}` must be a non-empty regular expression string",
                project,
            )
            return None
        try:
            return compile_pattern(value)
        except re.error as exc:
            self.problem(
                _value_line(data, key),
                f"`{key}` does not compile: {exc}; quote it with single quotes, e.g. "
                "drop_pattern: '\\bDR\\s?\\d{6,8}\\b'",
                project,
            )
            return None

    def _steps(self, data: CommentedMap) -> dict[str, str]:
        labels = dict(STEP_LABELS)
        steps = data.get("steps")
        if steps is None:
            return labels
        if not isinstance(steps, CommentedMap):
            self.problem(
                _value_line(data, "steps"),
                "`steps` must map step columns to labels, e.g. `step_01_house_photo: House photo`",
            )
            return labels
        for key, value in steps.items():
            if key not in STEP_COLUMNS:
                self.problem(
                    _key_line(steps, key),
                    f"unknown step `{key}` under `steps`; the steps are {', '.join(STEP_COLUMNS)}",
                )
            elif not isinstance(value, str) or not value.strip():
                self.problem(_key_line(steps, key), f"the label of `{key}` must be a text")
            else:
                labels[key] = value.strip()
        return labels

    def _projects(
        self, data: CommentedMap, default_pattern: DropPattern | None, zone: str
    ) -> list[Project]:
        items = data.get("projects")
        if items is None:
            self.problem(None, "the `projects:` list is missing")
            return []
        if not isinstance(items, CommentedSeq):
            self.problem(_value_line(data, "projects"), "`projects` must be a list of projects")
            return []
        projects: list[Project] = []
        seen_names: dict[str, int] = {}
        seen_jids: dict[str, tuple[str, int]] = {}
        for index, item in enumerate(items):
            line = _item_line(items, index)
            if not isinstance(item, CommentedMap):
                self.problem(
                    line, f"entry {index + 1} of `projects` must be a mapping with name, group_jid…"
                )
                continue
            project = self._project(item, line, default_pattern, zone)
            name = str(item.get("name") or "").strip()
            jid = str(item.get("group_jid") or "").strip()
            if name and name in seen_names:
                self.problem(
                    line,
                    f"duplicate name (also on line {seen_names[name]}); "
                    "project names must be unique",
                    name,
                )
            elif name:
                seen_names[name] = line
            if jid and jid in seen_jids:
                other, other_line = seen_jids[jid]
                self.problem(
                    _value_line(item, "group_jid"),
                    f"group_jid {jid} is already used by project '{other}' "
                    f"(line {other_line}); one group belongs to one project",
                    name or None,
                )
            elif jid:
                seen_jids[jid] = (name, line)
            if project is None:
                continue
            projects.append(project)
        return projects

    def _project(
        self, item: CommentedMap, line: int, default_pattern: DropPattern | None, zone: str
    ) -> Project | None:
        raw_name = item.get("name")
        name = str(raw_name).strip() if raw_name is not None else None
        label = name or f"#{line}"
        ok = True
        for key in item:
            if key not in _PROJECT_KEYS:
                self.problem(
                    _key_line(item, key),
                    f"unknown field `{key}`; allowed: {', '.join(sorted(_PROJECT_KEYS))}",
                    label,
                )
                ok = False
        for key in _REQUIRED:
            value = item.get(key)
            if value is None or not str(value).strip():
                self.problem(line, f"`{key}` is missing; {_HINTS[key]}", label)
                ok = False
        jid = str(item.get("group_jid") or "").strip()
        if jid and not GROUP_JID.fullmatch(jid):
            self.problem(
                _value_line(item, "group_jid"),
                f"group_jid `{jid}` is not a group JID (<digits>@g.us); "
                "copy it from `wa-monitor groups`",
                label,
            )
            ok = False
        enabled = item.get("enabled", True)
        if not isinstance(enabled, bool):
            self.problem(_value_line(item, "enabled"), "`enabled` must be true or false", label)
            ok = False
        pattern = default_pattern
        if "drop_pattern" in item:
            pattern = self._pattern(item, "drop_pattern", DEFAULT_DROP_PATTERN, label)
            ok = ok and pattern is not None
        since = self._since(item, zone, label)
        if "since" in item and since is None:
            ok = False
        if not ok or pattern is None or name is None:
            return None
        return Project(
            name=name,
            group_jid=jid,
            description=str(item["description"]).strip(),
            enabled=bool(enabled),
            pattern=pattern,
            since=since,
            line=line,
        )

    def _since(self, item: CommentedMap, zone: str, label: str) -> datetime | None:
        if "since" not in item:
            return None
        value = item.get("since")
        tz = ZoneInfo(zone)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        if isinstance(value, date):
            return datetime.combine(value, time(), tzinfo=tz)
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.problem(
                _value_line(item, "since"),
                f"`since: {value}` is not an ISO date or date-time; "
                "write e.g. 2025-11-01 or 2025-11-01T08:00:00+02:00",
                label,
            )
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _key_line(mapping: CommentedMap, key: Any) -> int:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (KeyError, TypeError, AttributeError):
        return int(mapping.lc.line) + 1


def _value_line(mapping: CommentedMap, key: Any) -> int:
    try:
        return int(mapping.lc.value(key)[0]) + 1
    except (KeyError, TypeError, AttributeError):
        return _key_line(mapping, key)


def _item_line(seq: CommentedSeq, index: int) -> int:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (KeyError, TypeError, AttributeError, IndexError):
        return int(seq.lc.line) + 1
