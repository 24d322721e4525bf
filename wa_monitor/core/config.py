"""The projects file: one YAML file, validated in one pass into a frozen object."""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
)
from ruamel.yaml.parser import RoundTripParser

from wa_monitor.core.detect import DEFAULT_DROP_PATTERN, DropPattern, PatternError, compile_pattern
from wa_monitor.core.gateways import GATEWAYS
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.photo_links import (
    DEFAULT_PHOTOS_AFTER,
    DEFAULT_PHOTOS_BEFORE,
    PhotoWindows,
    parse_duration,
)
from wa_monitor.core.report_config import (
    ALERT_CONDITIONS,
    ALERT_KEYS,
    ALL_PROJECTS,
    DESTINATIONS,
    DURATION_CONDITIONS,
    FORMATS,
    REPORT_KEYS,
    REPORT_KINDS,
    REPORT_NAME,
    AlertRules,
    Destination,
    ReportSpec,
    Schedule,
)
from wa_monitor.core.steps import DEFAULT_REASONS, MAX_REASON_LENGTH, STEP_COLUMNS, STEP_LABELS

GROUP_JID = re.compile(r"\d+(-\d+)?@g\.us")
DEFAULT_CONFIG_PATH = Path("config/projects.yaml")

# Bounds on what a projects file may make the parser do, so that no file (an alias
# bomb, 100,000 nested brackets, /dev/zero) can exhaust memory, the stack or the clock.
# ruamel reads 10,000-25,000 values a second, so their number bounds the time: a project
# takes 9 to 15 (its mapping, 4 to 7 keys and their values) and about 100 bytes, so
# 3,000 values are 200 to 330 projects, read in 0.1-0.3 s. A projects file is 3 levels
# deep (top level, `projects`, a project).
MAX_FILE_BYTES = 64 * 1024
MAX_VALUES = 3_000
MAX_DEPTH = 10
# The tags a projects file may spell out (`!!str 123`); any other (!!python/object, a
# local !tag) is refused: values are plain text, numbers, true/false and dates.
_CORE_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {
    f"{_CORE_TAG}{name}"
    for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")
}
# What YAML does not allow in a stream (C0 and C1 controls but tab, LF, CR and NEL,
# U+FFFE and U+FFFF); NUL usually means a binary file.
_NOT_YAML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")

_TOP_KEYS = {"projects", "timezone", "drop_pattern", "steps", "reports", "alerts"}


@dataclass(frozen=True)
class ProjectField:
    """One key of a project entry: how it is checked, written and offered for adding."""

    key: str
    # Shown by the dashboard's form and `projects add --help`.
    label: str
    help: str
    # text, flag (true/false), jid (a group JID), pattern (a regular expression),
    # moment (an ISO date or date-time in the projects' zone), duration (2h, 30m, 90s) or
    # gateway (one of wa_monitor.core.gateways.GATEWAYS).
    kind: str = "text"
    # Required in the file; `missing` says what to write when it is not there.
    required: bool = False
    missing: str = ""
    # How `projects add` and the dashboard's form ask for it: "required", "optional",
    # or "" (edited in the file only). A description may be left out when adding: it
    # defaults to the group's name.
    added: str = ""
    max_length: int = 200
    # Written in double quotes by `projects add` (a JID or a description may look like
    # a number or hold a `: `).
    quoted: bool = True
    # The attribute of Project holding the value, when it is not named like the key.
    attribute: str = ""
    # The value when the key is absent (for a flag; other kinds are None, or the file's;
    # a duration's is its reader's, so that adding never writes it).
    default: Any = None
    # The option of `projects add` that sets a flag false, e.g. --disabled.
    negative: str = ""
    # The heading of its column in the dashboard's list, when it is not the label.
    column: str = ""

    @property
    def api_name(self) -> str:
        """The key as the dashboard's API spells it (camelCase)."""
        head, *rest = self.key.split("_")
        return head + "".join(part.title() for part in rest)

    @property
    def option(self) -> str:
        """The option of `projects add`."""
        return "--" + self.key.replace("_", "-")


# The keys of a project entry, in the order `projects add` writes them. To add a field,
# add it here and to `Project` (below): the file's checks, `projects add` (its options
# and the entry it writes) and the dashboard's API, add form and list follow from this
# table. Only a new kind of field touches more: its reader in `_Validator._field`, its
# input in web/templates/projects.html and its cell in web/static/projects.js.
PROJECT_FIELDS: tuple[ProjectField, ...] = (
    ProjectField(
        "name",
        "Project name",
        "The project's name, as reviewers know it.",
        required=True,
        missing="give the project the name reviewers know it by, e.g. `name: Lawley`",
        added="required",
        column="Name",
        max_length=100,
        quoted=False,
    ),
    ProjectField(
        "enabled",
        "Enabled",
        "Monitor it from the next scan (or add it disabled).",
        "flag",
        added="optional",
        default=True,
        negative="disabled",
        column="Status",
    ),
    ProjectField(
        "group_jid",
        "Group JID",
        "The group's JID (…@g.us).",
        "jid",
        required=True,
        missing="copy the group's JID from `wa-monitor groups`",
        added="required",
        max_length=100,
    ),
    ProjectField(
        "description",
        "Description",
        "A few words (default: the group's name).",
        required=True,
        missing="describe the group in a few words, e.g. `description: Lawley Activation 3`",
        added="optional",
    ),
    ProjectField(
        "drop_pattern",
        "Drop pattern",
        "The project's own drop number pattern (default: the file's).",
        "pattern",
        attribute="pattern",
    ),
    ProjectField("since", "Since", "Ignore the group's messages before this moment.", "moment"),
    ProjectField(
        "photos_after",
        "Photos after",
        "How long after a drop post its photos may come (default 2h).",
        "duration",
    ),
    ProjectField(
        "photos_before",
        "Photos before",
        "How long before a drop post its photos may come (default 30m).",
        "duration",
    ),
    ProjectField(
        "working_hours",
        "Working hours",
        "When the project's review clock runs, e.g. `Mon-Fri 07:00-17:00` "
        "(default: the WORKING_HOURS setting).",
        "hours",
    ),
    ProjectField(
        "review_target",
        "Review target",
        "How long, in working hours, a drop may wait for a reviewer before it is overdue "
        "(e.g. 2h; default: no target).",
        "duration",
    ),
    ProjectField(
        "auto_reply_invalid",
        "Reply to invalid numbers",
        "Tell the group, once per post, when a posted drop number is not on the project's "
        "list of valid numbers.",
        "flag",
        default=False,
    ),
    ProjectField(
        "gateway",
        "Gateway",
        "Where the group's messages come from and its feedback goes: "
        + ", ".join(GATEWAYS)
        + " (default: the GATEWAY setting).",
        "gateway",
    ),
)
_DURATION_DEFAULTS: dict[str, timedelta | None] = {
    "photos_after": DEFAULT_PHOTOS_AFTER,
    "photos_before": DEFAULT_PHOTOS_BEFORE,
    "review_target": None,
}
_PROJECT_KEYS = {f.key for f in PROJECT_FIELDS}
_REQUIRED = tuple(f.key for f in PROJECT_FIELDS if f.required)
_HINTS = {f.key: f.missing for f in PROJECT_FIELDS if f.required}
# What a field's reader returns once it has said the value's problem (None is a value).
_INVALID: Any = object()


@dataclass(frozen=True)
class Project:
    """One monitored WhatsApp group."""

    name: str
    group_jid: str
    description: str
    enabled: bool
    pattern: DropPattern
    since: datetime | None = None
    photos_after: timedelta = DEFAULT_PHOTOS_AFTER
    photos_before: timedelta = DEFAULT_PHOTOS_BEFORE
    # None: the WORKING_HOURS setting's.
    working_hours: WorkingHours | None = None
    review_target: timedelta | None = None
    auto_reply_invalid: bool = False
    # None: the GATEWAY setting's (wa_monitor.core.gateways).
    gateway: str | None = None
    line: int = 0

    @property
    def photo_windows(self) -> PhotoWindows:
        return PhotoWindows(after=self.photos_after, before=self.photos_before)


@dataclass(frozen=True)
class ProjectsConfig:
    """The validated projects file."""

    path: Path
    timezone: str
    drop_pattern: DropPattern
    projects: tuple[Project, ...]
    step_labels: Mapping[str, str] = field(default_factory=lambda: dict(STEP_LABELS))
    step_reasons: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_REASONS)
    )
    reports: tuple[ReportSpec, ...] = ()
    alerts: AlertRules | None = None  # None: no `alerts:`, nothing is sent

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

    def report(self, name: str) -> ReportSpec | None:
        return next((r for r in self.reports if r.name == name), None)


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
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
        return name
    return "UTC"


def load_config(path: Path) -> ProjectsConfig:
    """Read and validate the projects file; raises ConfigError listing every problem."""
    return parse_config(read_config_text(path), path)


def read_config_text(path: Path) -> str:
    """The text of the projects file, read within bounds; raises ConfigError saying why not.

    Only a regular file is read (a FIFO would block, /dev/zero never ends, a directory
    is not a file), at most MAX_FILE_BYTES of it, and it must be UTF-8 text.
    """
    from wa_monitor.core.errors import ConfigError

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ConfigError(
            [
                f"{path}: projects file not found; create it listing the projects, "
                'e.g. \'projects: [{name: Lawley, group_jid: "120363000000000000@g.us", '
                "description: Lawley Activation 3}]' "
                "(`wa-monitor groups` lists the JIDs), or point --config / "
                "WA_MONITOR_CONFIG at an existing one"
            ]
        ) from None
    except PermissionError:
        raise ConfigError(
            [
                f"{path}: permission denied reading the projects file; make it readable by "
                f"the user running wa-monitor (uid {os.geteuid()}), e.g. `chmod 0640` and "
                "that user's group"
            ]
        ) from None
    except OSError as exc:
        raise ConfigError(
            [f"{path}: cannot open the projects file: {exc.strerror or exc}"]
        ) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(
                [
                    f"{path}: is {_file_kind(st.st_mode)}, not a projects file; point "
                    "--config / WA_MONITOR_CONFIG at a YAML file"
                ]
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(
            [f"{path}: cannot read the projects file: {exc.strerror or exc}"]
        ) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(
            [
                f"{path}: the projects file is larger than {MAX_FILE_BYTES // 1024} KiB, the "
                "most that is read (300 projects take about 30 KiB); is it the right file?"
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            [
                f"{path}:{line}: the projects file is not UTF-8 text (byte "
                f"0x{data[exc.start]:02x} at line {line}); save it as UTF-8"
            ]
        ) from None


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def parse_config(text: str, path: Path) -> ProjectsConfig:
    """Validate the text of a projects file; raises ConfigError listing every problem."""
    from wa_monitor.core.errors import ConfigError

    if len(text) > MAX_FILE_BYTES:
        raise ConfigError(
            [f"{path}: the projects file is larger than {MAX_FILE_BYTES // 1024} KiB"]
        )
    bad = _NOT_YAML.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        char = bad.group()
        what = (
            "a NUL byte: this is a binary file, not YAML text"
            if char == "\0"
            else f"the control character U+{ord(char):04X}, which YAML does not allow"
        )
        raise ConfigError([f"{path}:{line}: the projects file holds {what}"])
    deep = _too_deep_line(text)
    if deep is not None:
        raise ConfigError([f"{path}:{deep}: {_TOO_DEEP}"])
    try:
        data = _bounded_yaml().load(text)
    except _Refused as exc:
        raise ConfigError([f"{path}:{exc.line}: {exc.message}"]) from None
    except DuplicateKeyError as exc:  # keys the event check cannot compare, e.g. 1 and 0x1
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError([f"{where}: duplicate key; {exc.problem}"]) from None
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
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # Not expected past the bounds above; still the operator's error, not a crash.
        raise ConfigError([f"{path}: cannot read the projects file: {exc}"]) from None
    validator = _Validator(path)
    config = validator.validate(data)
    if validator.problems or config is None:
        raise ConfigError(validator.problems)
    return config


# -- bounded YAML -------------------------------------------------------------------------

_TOO_DEEP = (
    f"nesting deeper than {MAX_DEPTH} levels; a projects file needs 3 "
    "(top level, `projects`, a project)"
)
# What matters to bracket nesting outside comments and quotes.
_FLOW_CHARS = re.compile(r"""[\[\]{}'"#\n]""")


def _too_deep_line(text: str) -> int | None:
    """The line where `[`/`{` nesting passes MAX_DEPTH, read lexically, if it does.

    ruamel looks up to 1,024 characters ahead at every flow bracket, which costs most of
    a second on `[[[[…`; this pass over the text costs milliseconds. It only has to be
    close: the event check after it is the exact one.
    """
    depth, line, pos = 0, 1, 0
    while True:
        found = _FLOW_CHARS.search(text, pos)
        if found is None:
            return None
        i, ch = found.start(), found.group()
        pos = i + 1
        if ch == "\n":
            line += 1
        elif ch == "#":
            if i == 0 or text[i - 1] in " \t\n":
                pos = text.find("\n", i)  # a comment, to the end of its line
                if pos < 0:
                    return None
        elif ch in "'\"":
            k = i - 1
            while k >= 0 and text[k] in " \t":
                k -= 1
            if k < 0 or text[k] in "\n:-[{,?":  # where a quoted scalar may start
                end = _quote_end(text, i)
                line += text.count("\n", i, end)
                pos = end
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line
        else:
            depth = max(0, depth - 1)


def _quote_end(text: str, start: int) -> int:
    """The index after the quoted scalar opening at `start` (the end of the text if open)."""
    quote, i = text[start], start + 1
    while True:
        j = text.find(quote, i)
        if j < 0:
            return len(text)
        if quote == "'" and text.startswith("''", j):
            i = j + 2  # '' is a quote inside single quotes
            continue
        if quote == '"':
            backslashes = len(text[i:j]) - len(text[i:j].rstrip("\\"))
            if backslashes % 2:
                i = j + 1
                continue
        return j + 1


class _Refused(Exception):
    """A construct the projects file may not use, at a line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class _Level:
    """An open collection: its kind, how many child nodes it has, its keys so far."""

    __slots__ = ("children", "keys", "mapping")

    def __init__(self, mapping: bool) -> None:
        self.mapping = mapping
        self.children = 0
        self.keys: dict[str, int] = {}


class _BoundedParser(RoundTripParser):
    """ruamel's parser, refusing what a projects file never needs before it is composed.

    The composer recurses once per nesting level and expands every alias, so depth and
    aliases are checked on the event stream, before either can cost the stack or memory.
    """

    def __init__(self, loader: Any) -> None:
        super().__init__(loader)
        self._levels: list[_Level] = []
        self._values = 0

    def get_event(self) -> Any:
        event = super().get_event()
        if isinstance(event, NodeEvent | CollectionEndEvent):
            self._check(event)
        return event

    def _check(self, event: Any) -> None:
        line = int(event.start_mark.line) + 1
        if isinstance(event, CollectionEndEvent):
            self._levels.pop()
            self._completed()
            return
        if isinstance(event, AliasEvent) or getattr(event, "anchor", None):
            raise _Refused(
                line,
                "anchors and aliases (&name, *name) are not allowed in a projects file; "
                "write each value out",
            )
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _ALLOWED_TAGS:
            shown = "!!" + tag[len(_CORE_TAG) :] if tag.startswith(_CORE_TAG) else tag
            raise _Refused(
                line,
                f"the tag `{_shown(shown)}` is not allowed in a projects file; values are "
                "plain text, numbers, true/false and dates",
            )
        self._values += 1
        if self._values > MAX_VALUES:
            raise _Refused(
                line,
                f"more than {MAX_VALUES:,} values (keys, values, lists), the most that is "
                "read; a project takes 9 to 15, so that is 200 to 330 projects",
            )
        parent = self._levels[-1] if self._levels else None
        if parent is not None and parent.mapping and parent.children % 2 == 0:
            self._key(parent, event, line)
        if isinstance(event, CollectionStartEvent):
            if len(self._levels) >= MAX_DEPTH:
                raise _Refused(line, _TOO_DEEP)
            self._levels.append(_Level(isinstance(event, MappingStartEvent)))
        else:
            self._completed()

    def _key(self, mapping: _Level, event: Any, line: int) -> None:
        if not isinstance(event, ScalarEvent):
            raise _Refused(line, "a key must be a plain name, not a list or a mapping")
        key = str(event.value)
        first = mapping.keys.get(key)
        if first is None:
            mapping.keys[key] = line
        else:
            raise _Refused(
                line,
                f"duplicate key `{_shown(event.value)}` (first on line {first}); "
                "each key may appear once",
            )

    def _completed(self) -> None:
        if self._levels:
            self._levels[-1].children += 1


class _BoundedConstructor(RoundTripConstructor):
    """ruamel's constructor, turning a value Python cannot hold into an error at its line."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, ArithmeticError, LookupError, TypeError) as exc:
            # ruamel raises IndexError or KeyError on some tagged values (`!!int 0x`).
            value = node.value if isinstance(node.value, str) else ""
            line = int(node.start_mark.line) + 1
            kind = str(tag or node.tag)
            why = (
                _shown(str(exc), 50)
                if isinstance(exc, ValueError | OverflowError)
                else f"not a valid !!{kind.removeprefix(_CORE_TAG)}"
            )
            if kind == f"{_CORE_TAG}timestamp":  # e.g. `since: 2025-13-45`
                raise _Refused(
                    line,
                    f"`{_shown(value)}` is not a real date or time ({why}); write e.g. "
                    "2025-11-01 or 2025-11-01T08:00:00+02:00, or quote it if it is text",
                ) from None
            raise _Refused(
                line,
                f"`{_shown(value, 40)}` cannot be read ({why}); quote it (no `!!` tag) to keep "
                "it as text",
            ) from None


def _bounded_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Parser = _BoundedParser
    yaml.Constructor = _BoundedConstructor
    return yaml


def _shown(value: Any, limit: int = 60) -> str:
    """A value from the file as an error message may show it: printable, and short."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
        labels, reasons = self._steps(data)
        projects = self._projects(data, default_pattern, zone)
        reports = self._reports(data, {p.name for p in projects})
        alerts = self._alerts(data)
        if self.problems or default_pattern is None:
            return None
        return ProjectsConfig(
            path=self.path,
            timezone=zone,
            drop_pattern=default_pattern,
            projects=tuple(projects),
            step_labels=labels,
            step_reasons=reasons,
            reports=reports,
            alerts=alerts,
        )

    def _reports(self, data: CommentedMap, projects: set[str]) -> tuple[ReportSpec, ...]:
        """The `reports:` list: each report's name, project, what, format, when and to."""
        if "reports" not in data:
            return ()
        items = data.get("reports")
        if not isinstance(items, CommentedSeq):
            self.problem(
                _value_line(data, "reports"),
                "`reports` must be a list of reports, e.g. `reports: [{name: daily-sheet, "
                "what: daily-drops, format: xlsx, to: [{folder: /srv/reports}]}]`",
            )
            return ()
        reports: list[ReportSpec] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            line = _item_line(items, index)
            if not isinstance(item, CommentedMap):
                self.problem(
                    line, f"entry {index + 1} of `reports` must be a mapping with name, what, to…"
                )
                continue
            report = self._report(item, line, projects)
            name = str(item.get("name") or "")
            if name in seen:
                self.problem(
                    line,
                    f"report `{_shown(name)}`: duplicate name (also on line {seen[name]}); "
                    "report names must be unique",
                )
            elif name:
                seen[name] = line
            if report is not None:
                reports.append(report)
        return tuple(reports)

    def _report(self, item: CommentedMap, line: int, projects: set[str]) -> ReportSpec | None:
        problems = len(self.problems)
        raw = item.get("name")
        name = raw.strip() if isinstance(raw, str) else ""
        who = f"report `{_shown(name)}`" if name else f"report #{line}"

        def problem(key: str | None, message: str) -> None:
            at = _value_line(item, key) if key is not None and key in item else line
            self.problem(at, f"{who}: {message}")

        for key in item:
            if key not in REPORT_KEYS:
                self.problem(
                    _key_line(item, key),
                    f"{who}: unknown key `{_shown(key)}`; allowed: {', '.join(REPORT_KEYS)}",
                )
        if raw is None:
            problem(None, "`name` is missing; name it, e.g. `name: daily-sheet`")
        elif not REPORT_NAME.fullmatch(name):
            problem(
                "name",
                f"`name: {_shown(raw)}` must be 1 to 60 letters, digits, `-` or `_` "
                "(it names the report's files), e.g. `daily-sheet`",
            )
        project = item.get("project", ALL_PROJECTS)
        if not isinstance(project, str) or (project != ALL_PROJECTS and project not in projects):
            known = ", ".join(sorted(projects)) or "none"
            problem(
                "project",
                f"`project: {_shown(project)}` is not a project of this file; write a "
                f"project's name ({known}) or `{ALL_PROJECTS}`",
            )
        what = item.get("what")
        if what not in REPORT_KINDS:
            kinds = "; ".join(f"`{k}`: {v}" for k, v in REPORT_KINDS.items())
            said = "`what` is missing" if what is None else f"`what: {_shown(what)}` is unknown"
            problem("what", f"{said}; a report is one of {kinds}")
        fmt = item.get("format", "xlsx")
        if fmt not in FORMATS:
            problem("format", f"`format: {_shown(fmt)}` is not one of {', '.join(FORMATS)}")
        when: Schedule | None = None
        if item.get("when") is not None:
            try:
                when = Schedule.parse(str(item.get("when")))
            except ValueError as exc:
                problem("when", f"`when`: {exc}")
        to = self._destinations(item, who, line)
        if len(self.problems) > problems:
            return None
        return ReportSpec(
            name=name,
            what=str(what),
            format=str(fmt),
            to=to,
            project=None if project == ALL_PROJECTS else str(project),
            when=when,
            line=line,
        )

    def _destinations(self, item: CommentedMap, who: str, line: int) -> tuple[Destination, ...]:
        kinds = ", ".join(f"`{k}:`" for k in DESTINATIONS)
        example = "e.g. `to: [{folder: /srv/reports}]`"
        items = item.get("to")
        if not isinstance(items, CommentedSeq) or not items:
            where = _value_line(item, "to") if "to" in item else line
            said = "is missing" if "to" not in item else "must be a non-empty list"
            self.problem(where, f"{who}: `to` {said}; list where it goes ({kinds}), {example}")
            return ()
        found: list[Destination] = []
        for index, entry in enumerate(items):
            at = _item_line(items, index)
            if not isinstance(entry, CommentedMap) or len(entry) != 1:
                self.problem(
                    at,
                    f"{who}: destination {index + 1} must be one `kind: value`, {example}",
                )
                continue
            kind, value = next(iter(entry.items()))
            reader = DESTINATIONS.get(kind)
            if reader is None:
                self.problem(
                    at,
                    f"{who}: unknown destination `{_shown(kind)}`; available: {kinds}",
                )
                continue
            try:
                destination = reader(value, self.path.parent)
            except ValueError as exc:
                self.problem(at, f"{who}: {exc}")
                continue
            if destination in found:
                self.problem(at, f"{who}: {destination} is listed twice")
                continue
            found.append(destination)
        return tuple(found)

    def _alerts(self, data: CommentedMap) -> AlertRules | None:
        """The `alerts:` mapping: its channels (`to`), its quiet period and its conditions."""
        if "alerts" not in data:
            return None
        item = data.get("alerts")
        line = _value_line(data, "alerts")
        example = "e.g. `alerts: {to: [{email: ops@example.com}], quiet: 1h}`"
        if not isinstance(item, CommentedMap):
            self.problem(line, f"`alerts` must be a mapping with `to:` and conditions, {example}")
            return None
        problems = len(self.problems)
        for key in item:
            if key not in ALERT_KEYS:
                self.problem(
                    _key_line(item, key),
                    f"alerts: unknown key `{_shown(key)}`; allowed: {', '.join(ALERT_KEYS)}",
                )
        to = self._destinations(item, "alerts", line)
        values: dict[str, Any] = {}
        for key in ("quiet", *ALERT_CONDITIONS):
            if key not in item:
                continue
            raw = item.get(key)
            try:
                values[key] = _alert_value(key, raw)
            except ValueError as exc:
                self.problem(_value_line(item, key), f"alerts: `{key}`: {exc}")
        if len(self.problems) > problems:
            return None
        return AlertRules(to=to, line=line, **values)

    def _timezone(self, data: CommentedMap) -> str:
        value = data.get("timezone")
        if value is None:
            return host_zone_name()
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.problem(
                _value_line(data, "timezone"),
                f"`timezone: {_shown(value)}` is not a known IANA time zone; "
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
        except PatternError as exc:
            hint = (
                "; quote it with single quotes, e.g. drop_pattern: '\\bDR\\s?\\d{6,8}\\b'"
                if str(exc).startswith("does not compile")
                else ""
            )
            self.problem(_value_line(data, key), f"`{key}` {exc}{hint}", project)
            return None

    def _steps(self, data: CommentedMap) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
        """Each step's label and rejection reasons: `step: Label`, or a mapping with
        `label:` and `reasons:` (a list of short texts)."""
        labels = dict(STEP_LABELS)
        reasons = dict(DEFAULT_REASONS)
        steps = data.get("steps")
        if steps is None:
            return labels, reasons
        if not isinstance(steps, CommentedMap):
            self.problem(
                _value_line(data, "steps"),
                "`steps` must map step columns to labels, e.g. `step_01_house_photo: House photo`",
            )
            return labels, reasons
        for key, value in steps.items():
            if key not in STEP_COLUMNS:
                self.problem(
                    _key_line(steps, key),
                    f"unknown step `{key}` under `steps`; the steps are {', '.join(STEP_COLUMNS)}",
                )
            elif isinstance(value, CommentedMap):
                self._step_entry(steps, key, value, labels, reasons)
            elif not isinstance(value, str) or not value.strip():
                self.problem(_key_line(steps, key), f"the label of `{key}` must be a text")
            else:
                labels[key] = value.strip()
        return labels, reasons

    def _step_entry(
        self,
        steps: CommentedMap,
        key: str,
        entry: CommentedMap,
        labels: dict[str, str],
        reasons: dict[str, tuple[str, ...]],
    ) -> None:
        for name in entry:
            if name not in ("label", "reasons"):
                self.problem(
                    _key_line(entry, name),
                    f"unknown key `{name}` under `{key}`; allowed: label, reasons",
                )
        label = entry.get("label")
        if label is not None:
            if not isinstance(label, str) or not label.strip():
                self.problem(_value_line(entry, "label"), f"the label of `{key}` must be a text")
            else:
                labels[key] = label.strip()
        if "reasons" not in entry:
            return
        items = entry.get("reasons")
        example = "e.g. `reasons: [blurred, wrong angle, serial unreadable]`"
        if not isinstance(items, CommentedSeq):
            self.problem(
                _value_line(entry, "reasons"), f"`reasons` of `{key}` must be a list, {example}"
            )
            return
        picked: list[str] = []
        for index, item in enumerate(items):
            text = str(item).strip() if isinstance(item, str) else ""
            if not text or len(text) > MAX_REASON_LENGTH:
                self.problem(
                    _item_line(items, index),
                    f"reason {index + 1} of `{key}` must be a text of 1 to "
                    f"{MAX_REASON_LENGTH} characters",
                )
            elif text.casefold() in (p.casefold() for p in picked):
                self.problem(
                    _item_line(items, index), f"reason `{_shown(text)}` of `{key}` is listed twice"
                )
            else:
                picked.append(text)
        reasons[key] = tuple(picked)

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
        label = (str(raw_name).strip() if raw_name is not None else "") or f"#{line}"
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
        values: dict[str, Any] = {}
        for spec in PROJECT_FIELDS:
            value = self._field(spec, item, label, default_pattern, zone)
            ok = ok and value is not _INVALID
            values[spec.attribute or spec.key] = value
        if not ok or values["pattern"] is None or values["name"] is None:
            return None
        return Project(**values, line=line)

    def _field(
        self,
        spec: ProjectField,
        item: CommentedMap,
        label: str,
        default_pattern: DropPattern | None,
        zone: str,
    ) -> Any:
        """The value of one field of a project entry, or _INVALID once its problem is said."""
        key = spec.key
        if spec.kind == "text":
            value = item.get(key)
            return str(value).strip() if value is not None else None
        if spec.kind == "jid":
            jid = str(item.get(key) or "").strip()
            if jid and not GROUP_JID.fullmatch(jid):
                self.problem(
                    _value_line(item, key),
                    f"{key} `{jid}` is not a group JID (<digits>@g.us); "
                    "copy it from `wa-monitor groups`",
                    label,
                )
                return _INVALID
            return jid
        if spec.kind == "flag":
            flag = item.get(key, spec.default)
            if not isinstance(flag, bool):
                self.problem(_value_line(item, key), f"`{key}` must be true or false", label)
                return _INVALID
            return flag
        if spec.kind == "pattern":
            if key not in item:
                return default_pattern
            pattern = self._pattern(item, key, DEFAULT_DROP_PATTERN, label)
            return _INVALID if pattern is None else pattern
        if spec.kind == "moment":
            moment = self._since(item, key, zone, label)
            return _INVALID if key in item and moment is None else moment
        if spec.kind == "duration":
            return self._duration(item, key, label)
        if spec.kind == "hours":
            return self._hours(item, key, label)
        if spec.kind == "gateway":
            if key not in item:
                return None
            gateway = str(item.get(key) or "").strip()
            if gateway not in GATEWAYS:
                self.problem(
                    _value_line(item, key),
                    f"`{key}` must be one of {', '.join(GATEWAYS)}, not `{gateway}`",
                    label,
                )
                return _INVALID
            return gateway
        raise AssertionError(f"no reader for the field kind {spec.kind!r}")

    def _duration(self, item: CommentedMap, key: str, label: str) -> Any:
        if key not in item:
            return _DURATION_DEFAULTS[key]
        value = item.get(key)
        try:
            # A bare number is refused: minutes or seconds, the file would not say which.
            if not isinstance(value, str):
                raise ValueError(f"`{value}` is not a duration; write e.g. 2h, 30m or 90s")
            return parse_duration(value)
        except ValueError as exc:
            self.problem(_value_line(item, key), f"`{key}`: {exc}", label)
            return _INVALID

    def _hours(self, item: CommentedMap, key: str, label: str) -> Any:
        if key not in item:
            return None
        try:
            return WorkingHours.parse(str(item.get(key)))
        except ValueError as exc:
            self.problem(_value_line(item, key), f"`{key}`: {exc}", label)
            return _INVALID

    def _since(self, item: CommentedMap, key: str, zone: str, label: str) -> datetime | None:
        if key not in item:
            return None
        value = item.get(key)
        tz = ZoneInfo(zone)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        if isinstance(value, date):
            return datetime.combine(value, time(), tzinfo=tz)
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.problem(
                _value_line(item, key),
                f"`{key}: {value}` is not an ISO date or date-time; "
                "write e.g. 2025-11-01 or 2025-11-01T08:00:00+02:00",
                label,
            )
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _alert_value(key: str, raw: Any) -> Any:
    """An `alerts:` value: `quiet` a duration; a condition its limit, or `off` (None)."""
    off = raw is False or (isinstance(raw, str) and raw.strip().lower() == "off")
    if key == "report_failed":
        if raw is True or off or (isinstance(raw, str) and raw.strip().lower() == "on"):
            return not off
        raise ValueError(f"`{_shown(raw)}` must be on or off")
    if off and key != "quiet":
        return None
    if key == "quiet" or key in DURATION_CONDITIONS:
        try:
            return parse_duration(str(raw))
        except ValueError as exc:
            raise ValueError(f"{exc}, or `off`" if key != "quiet" else str(exc)) from None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValueError(f"`{_shown(raw)}` must be a whole number of at least 1, or `off`")
    return raw


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
