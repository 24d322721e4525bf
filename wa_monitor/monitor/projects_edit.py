"""Editing the projects file: atomic, comments and order kept, validated, audited.

Used by `wa-monitor projects add|disable|enable|list` and by the dashboard's projects
page (with the dashboard user as the actor). The running service picks a change up
at its next scan; nothing needs a restart.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import fcntl
import getpass
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from wa_monitor.core.config import (
    GROUP_JID,
    PROJECT_FIELDS,
    ProjectsConfig,
    load_config,
    parse_config,
    read_config_text,
)
from wa_monitor.core.errors import ConfigError, WaMonitorError
from wa_monitor.sources.bridge import BridgeStore, GroupInfo
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import config_audit

log = logging.getLogger("wa_monitor")


@dataclass(frozen=True)
class EditResult:
    """A change written to the projects file."""

    path: Path
    config: ProjectsConfig
    diff: str
    audited: bool
    audit_problem: str = ""


# -- who and what -------------------------------------------------------------------------


def os_actor() -> str:
    """The person at the terminal: the sudo caller when under sudo."""
    user = os.environ.get("SUDO_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def file_owner(path: Path) -> str:
    import pwd

    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (KeyError, OSError):
        return "unknown"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def make_diff(old: str, new: str, path: Path) -> str:
    """A unified diff whose header names both versions' hashes (to tell audited content)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"{path.name} (sha256 {content_hash(old)})",
        tofile=f"{path.name} (sha256 {content_hash(new)})",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# -- the audit ----------------------------------------------------------------------------


def record_audit(
    store: ReviewStore,
    *,
    actor: str,
    source: str,
    path: Path,
    diff: str,
    now: datetime | None = None,
) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.insert(config_audit).values(
                at=now or datetime.now(UTC),
                actor=actor[:100],
                source=source[:50],
                path=str(path.resolve())[:500],
                diff=diff,
            )
        )


def audit_rows(
    store: ReviewStore, path: Path | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    t = config_audit
    query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
    if path is not None:
        query = query.where(t.c.path == str(path.resolve()))
    with store.begin() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def already_audited(store: ReviewStore, path: Path, text: str) -> bool:
    """True when the latest audited change of `path` produced exactly `text`."""
    rows = audit_rows(store, path, limit=1)
    if not rows:
        return False
    marker = f"+++ {path.name} (sha256 {content_hash(text)})"
    return marker in (rows[0]["diff"] or "")


# -- reading and writing the file ---------------------------------------------------------


def _yaml_for(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    try:
        _, indent, block_seq_indent = load_yaml_guess_indent(text)
    except YAMLError:
        indent, block_seq_indent = None, None
    if indent is None or block_seq_indent is None:
        indent, block_seq_indent = 4, 2
    yaml.indent(mapping=max(2, indent - block_seq_indent), sequence=indent, offset=block_seq_indent)
    return yaml


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One editor at a time (the file is replaced, so lock a sibling lock file)."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        handle = open(lock_path, "a+")  # noqa: SIM115
    except OSError:
        # A read-only config directory: writing will fail later with a clear message.
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step, keeping its permissions and owner."""
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConfigError(
            [f"{path}: cannot write in {path.parent} ({exc.strerror}); run as the file's owner"]
        ) from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if st is not None:
            os.chmod(temp, st.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):
                os.chown(temp, st.st_uid, st.st_gid)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def edit_projects(
    path: Path,
    change: Callable[[CommentedMap], None],
    *,
    actor: str,
    source: str,
    store: ReviewStore | None = None,
) -> EditResult:
    """Apply `change` to the parsed file, validate the result, write it, audit it."""
    if not path.is_file():
        load_config(path)  # says the file is missing, before a lock file is made beside it
    with _locked(path):
        # Read once, within bounds, and validated before we touch it.
        old_text = read_config_text(path)
        current = parse_config(old_text, path)
        yaml = _yaml_for(old_text)
        data = yaml.load(old_text)
        change(data)
        buffer = io.StringIO()
        yaml.dump(data, buffer)
        new_text = buffer.getvalue()
        if new_text == old_text:
            return EditResult(path, current, "", audited=False)
        config = parse_config(new_text, path)
        write_atomically(path, new_text)
    diff = make_diff(old_text, new_text, path)
    log.info("📝 %s changed %s (%s)", actor, path, source)
    if store is None:
        return EditResult(path, config, diff, audited=False, audit_problem="no review database")
    try:
        record_audit(store, actor=actor, source=source, path=path, diff=diff)
    except WaMonitorError as exc:
        return EditResult(path, config, diff, audited=False, audit_problem=str(exc))
    return EditResult(path, config, diff, audited=True)


def _projects_seq(data: CommentedMap) -> CommentedSeq:
    seq = data.get("projects")
    if not isinstance(seq, CommentedSeq):
        raise ConfigError(["the projects file has no `projects:` list to edit"])
    return seq


def _find(seq: CommentedSeq, name: str) -> CommentedMap:
    for item in seq:
        if isinstance(item, CommentedMap) and str(item.get("name", "")).strip() == name:
            return item
    names = [str(i.get("name")) for i in seq if isinstance(i, CommentedMap)]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(n) for n in close)}?" if close else ""
    raise ConfigError([f"no project named {name!r} in the projects file{hint}"])


def _append(seq: CommentedSeq, item: CommentedMap) -> None:
    """Append keeping the file's look: blank line between entries, trailing comments last."""
    if len(seq) and isinstance(seq[-1], CommentedMap) and seq[-1]:
        prev = seq[-1]
        last_key = list(prev.keys())[-1]
        tail = prev.ca.items.pop(last_key, None)
        if len(seq) > 1 and isinstance(seq[-2], CommentedMap) and seq[-2]:
            separator = seq[-2].ca.items.get(list(seq[-2].keys())[-1])
            if separator is not None:
                prev.ca.items[last_key] = copy.deepcopy(separator)
        if tail is not None:
            item.ca.items[list(item.keys())[-1]] = tail
    seq.append(item)


def add_project(
    path: Path,
    *,
    name: str,
    group_jid: str,
    description: str = "",
    actor: str,
    source: str = "cli",
    store: ReviewStore | None = None,
    **fields: Any,
) -> EditResult:
    """Add a project entry: `fields` are further keys of PROJECT_FIELDS (enabled, …).

    Keys are written in the table's order; a field left out gets its default when it
    has one (`enabled: true`), and the description defaults to the name.
    """
    unknown = sorted(set(fields) - {f.key for f in PROJECT_FIELDS})
    if unknown:
        raise TypeError(f"add_project() got fields the projects file does not have: {unknown}")
    name, group_jid, description = name.strip(), group_jid.strip(), description.strip()
    if not GROUP_JID.fullmatch(group_jid):
        raise ConfigError(
            [f"`{group_jid}` is not a group JID (<digits>@g.us); pick it with --group-name"]
        )
    values: dict[str, Any] = {
        **fields,
        "name": name,
        "group_jid": group_jid,
        "description": description or name,
    }

    def change(data: CommentedMap) -> None:
        seq = _projects_seq(data)
        for item in seq:
            if not isinstance(item, CommentedMap):
                continue
            if str(item.get("name", "")).strip() == name:
                raise ConfigError([f"a project named {name!r} already exists; pick another name"])
            if str(item.get("group_jid", "")).strip() == group_jid:
                raise ConfigError(
                    [
                        f"group {group_jid} is already monitored by project "
                        f"{item.get('name')!r}; one group belongs to one project"
                    ]
                )
        entry = CommentedMap()
        for spec in PROJECT_FIELDS:
            # A field adding does not ask for is written only when given.
            value = values.get(spec.key, spec.default if spec.added else None)
            if isinstance(value, str):
                value = value.strip()
                entry[spec.key] = DoubleQuotedScalarString(value) if spec.quoted else value
            elif value is not None:
                entry[spec.key] = value
        _append(seq, entry)

    return edit_projects(path, change, actor=actor, source=source, store=store)


def set_enabled(
    path: Path,
    name: str,
    enabled: bool,
    *,
    actor: str,
    source: str = "cli",
    store: ReviewStore | None = None,
) -> EditResult:
    def change(data: CommentedMap) -> None:
        item = _find(_projects_seq(data), name)
        if "enabled" in item:
            item["enabled"] = enabled
        else:
            item.insert(1, "enabled", enabled)

    return edit_projects(path, change, actor=actor, source=source, store=store)


def disable_project(
    path: Path, name: str, *, actor: str, source: str = "cli", store: ReviewStore | None = None
) -> EditResult:
    return set_enabled(path, name, False, actor=actor, source=source, store=store)


def enable_project(
    path: Path, name: str, *, actor: str, source: str = "cli", store: ReviewStore | None = None
) -> EditResult:
    return set_enabled(path, name, True, actor=actor, source=source, store=store)


def list_projects(path: Path) -> ProjectsConfig:
    return load_config(path)


# -- picking a group by its name ----------------------------------------------------------


def closest_groups(name: str, groups: list[GroupInfo], n: int = 3) -> list[GroupInfo]:
    by_name = {g.name: g for g in groups if g.name}
    close = difflib.get_close_matches(name, list(by_name), n=n, cutoff=0.4)
    if not close:
        lowered = {k.casefold(): k for k in by_name}
        close = [
            lowered[k]
            for k in difflib.get_close_matches(name.casefold(), list(lowered), n=n, cutoff=0.4)
        ]
    return [by_name[c] for c in close]


def resolve_group(bridge: BridgeStore, group_name: str) -> GroupInfo:
    """The one group of the bridge store called `group_name` (case-insensitive)."""
    groups = bridge.groups()
    wanted = group_name.strip().casefold()
    matches = [g for g in groups if g.name and g.name.strip().casefold() == wanted]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"{g.jid} ({g.messages} messages)" for g in matches)
        raise ConfigError(
            [f"{len(matches)} groups are called {group_name!r}: {listed}; pass --group-jid"]
        )
    close = closest_groups(group_name, groups)
    hint = (
        "; closest: " + ", ".join(f"{g.name!r} ({g.jid})" for g in close)
        if close
        else "; list them with `wa-monitor groups`"
    )
    raise ConfigError([f"no group called {group_name!r} in {bridge.messages_db}{hint}"])
