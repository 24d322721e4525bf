"""`wa-monitor doctor`: the troubleshooting section of the architecture document, run.

"Service won't start" (config syntax, environment variables, database connection,
SQLite file), "Not detecting drops" (bridge running, messages in the store, group
JIDs), "Drops not appearing" (database, schema): each becomes a check with a fix.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from wa_monitor.core.config import ProjectsConfig, load_config
from wa_monitor.core.errors import BridgeStoreError, ConfigError, WaMonitorError
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.settings import Settings, load_settings
from wa_monitor.monitor.health import Check, Report, group_staleness, readiness
from wa_monitor.monitor.projects_edit import closest_groups
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.database import guard, open_review_store
from wa_monitor.store.review_store import ReviewStore

# Settings that must be in the environment (or the env file) for `run`.
REQUIRED_ENV = ("DATABASE_URL", "WHATSAPP_DB_PATH")


def check_settings(
    load: Callable[[], Settings], env_file: Path | None
) -> tuple[list[Check], Settings | None]:
    where = f"the env file {env_file}" if env_file else "the environment (or --env-file)"
    try:
        settings = load()
    except ConfigError as exc:
        return [
            Check("settings", "fail", "; ".join(exc.problems), f"fix the values in {where}")
        ], None
    checks = [Check("settings", "pass", f"settings read from {where}")]
    env = settings.environ
    missing = [
        n
        for n in REQUIRED_ENV
        if not env.get(n) and not (n == "DATABASE_URL" and env.get("NEON_DATABASE_URL"))
    ]
    if missing:
        checks.append(
            Check(
                "environment variables",
                "fail",
                f"not set: {', '.join(missing)}",
                f"add them to {where} (see deploy/prod/.env.example)",
            )
        )
    else:
        checks.append(
            Check("environment variables", "pass", "DATABASE_URL and WHATSAPP_DB_PATH set")
        )
    return checks, settings


def check_config(path: Path) -> tuple[Check, ProjectsConfig | None]:
    try:
        config = load_config(path)
    except ConfigError as exc:
        return (
            Check(
                "projects file",
                "fail",
                "; ".join(exc.problems),
                f"fix {path} (YAML indentation: two spaces, `- name:` entries under projects:)",
            ),
            None,
        )
    return (
        Check("projects file", "pass", f"{path}: {len(config.enabled)} enabled project(s)"),
        config,
    )


def check_groups(bridge: BridgeStore, config: ProjectsConfig) -> list[Check]:
    """Each enabled project's group is in the store (closest group names when not)."""
    groups = bridge.groups()
    by_jid = {g.jid: g for g in groups}
    checks: list[Check] = []
    for project in config.enabled:
        found = by_jid.get(project.group_jid)
        label = f"group of {project.name}"
        if found is not None:
            checks.append(
                Check(
                    label,
                    "pass",
                    f"{project.group_jid} is {found.name or 'unnamed'!r} "
                    f"({found.messages} messages)",
                )
            )
            continue
        close = closest_groups(project.name, groups) or closest_groups(project.description, groups)
        hint = (
            "closest groups: " + ", ".join(f"{g.name!r} = {g.jid}" for g in close)
            if close
            else "list the groups with `wa-monitor groups`"
        )
        checks.append(
            Check(
                label,
                "fail",
                f"{project.group_jid} is not in the bridge store",
                f"copy the right JID into group_jid; {hint}. If it is right, the bridge's "
                "number is not in the group (or nobody posted since it joined)",
            )
        )
    return checks


def check_separation(settings: Settings, store: ReviewStore) -> Check:
    """Dev and prod do not share a review database (the guard `run` applies)."""
    try:
        guard(settings, store)
    except WaMonitorError as exc:
        return Check("prod/dev separation", "fail", str(exc), "give dev its own database")
    return Check("prod/dev separation", "pass", f"environment {settings.env_name or 'unset'}")


def check_bridge_process(bridge_url: str, timeout: float = 2.0) -> Check:
    """Is anything listening where the bridge's API should be (its process is up)?"""
    parts = urlsplit(bridge_url)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return Check(
            "bridge process",
            "warn",
            f"nothing answers at {host}:{port} ({exc.strerror or exc})",
            "start the bridge (`ps aux | grep whatsapp-bridge`); feedback needs it, scanning "
            "only needs its store",
        )
    return Check("bridge process", "pass", f"the bridge API answers at {host}:{port}")


def check_log_file(settings: Settings) -> Check:
    path = settings.log_file
    if path is None:
        return Check("log file", "pass", "LOG_FILE not set: logging to the journal only")
    directory = path.parent
    if path.exists() and not os.access(path, os.W_OK):
        return Check("log file", "fail", f"{path} is not writable", "chown it to the service user")
    if not path.exists() and not os.access(directory if directory.exists() else Path("."), os.W_OK):
        return Check(
            "log file",
            "fail",
            f"cannot create {path}",
            f"create {directory} owned by the service user",
        )
    return Check("log file", "pass", f"{path} writable")


def run_doctor(
    config_path: Path,
    *,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    probe_bridge_process: bool = True,
) -> Report:
    """Every check, in the order an operator would do them by hand."""
    checks: list[Check] = []
    setting_checks, settings = check_settings(lambda: load_settings(environ, env_file), env_file)
    checks.extend(setting_checks)
    config_check, config = check_config(config_path)
    checks.append(config_check)
    if settings is None:
        return Report(tuple(checks))
    zone = config.zone if config is not None else ZoneInfo("UTC")
    now = now or datetime.now(UTC)
    try:
        store: ReviewStore | None = open_review_store(settings, purpose="read", check_schema=False)
    except WaMonitorError as exc:
        checks.append(Check("database", "fail", str(exc), "fix DATABASE_URL"))
        store = None
    try:
        ready = readiness(
            settings,
            store,
            zone,
            instance=settings.instance,
            now=now,
            database_extras=lambda store: [check_separation(settings, store)],
        )
    finally:
        if store is not None:
            store.dispose()
    checks.extend(ready.report.checks)
    bridge_path = settings.whatsapp_db_path
    if ready.bridge_readable and bridge_path is not None and config is not None:
        hours = WorkingHours.parse(settings.working_hours)
        bridge = BridgeStore(bridge_path, settings.whatsapp_store_path)
        try:
            checks.extend(check_groups(bridge, config))
            names = {p.group_jid: p.name for p in config.enabled}
            newest = bridge.newest_messages(names)
            checks.extend(
                c
                for c in group_staleness(newest, names, settings.stale_after, hours, zone, now=now)
                if c.status == "warn" and "no message" not in c.detail
            )
        except BridgeStoreError as exc:
            checks.append(Check("bridge store", "fail", str(exc), "see above"))
        finally:
            bridge.close()
    if probe_bridge_process:
        checks.append(check_bridge_process(settings.bridge_url))
    checks.append(check_log_file(settings))
    return Report(tuple(checks))
