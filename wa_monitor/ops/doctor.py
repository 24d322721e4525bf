"""`wa-monitor doctor`: the troubleshooting section of the architecture document, run.

"Service won't start" (config syntax, environment variables, database connection,
SQLite file, what the units may write), "Not detecting drops" (bridge running, messages
in the store, group JIDs), "Drops not appearing" (database, schema), "No photos" (the
media store, the photo queue and its failures): each becomes a check with a fix.
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
from wa_monitor.monitor.health import Check, Report, check_photos, group_staleness, readiness
from wa_monitor.monitor.media_worker import check_media_store
from wa_monitor.monitor.projects_edit import closest_groups
from wa_monitor.ops.environments import (
    DEFAULT_UNIT_DIR,
    DROP_IN,
    UNITS,
    covered,
    created_by_unit,
    unit_read_write_paths,
    write_paths,
)
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
    """No instance writes into another's review database (the guard `run` applies)."""
    name = settings.env_name
    try:
        guard(settings, store)
    except WaMonitorError as exc:
        return Check(
            "instance separation",
            "fail",
            str(exc),
            f"give {name} its own database, or correct the other instance's DATABASE_URL",
        )
    if name is None:
        return Check(
            "instance separation",
            "pass",
            "WA_MONITOR_ENV unset: no instance name, nothing to keep apart",
        )
    return Check("instance separation", "pass", f"instance {name}: no other instance's database")


def _writable(path: Path) -> tuple[bool, str]:
    """Whether the service user (running this) can write `path`, or create it."""
    if path.is_dir():
        return os.access(path, os.W_OK | os.X_OK), "not writable"
    if path.exists():
        return False, "is not a folder"
    parent = next((p for p in path.parents if p.exists()), Path("/"))
    return os.access(parent, os.W_OK | os.X_OK), f"cannot be created ({parent} is not writable)"


def check_write_access(
    settings: Settings,
    config: ProjectsConfig | None,
    config_path: Path,
    *,
    unit_dir: Path = DEFAULT_UNIT_DIR,
    base: Path | None = None,
) -> list[Check]:
    """What the settings make the units write is writable, and each unit may write it.

    ProtectSystem=strict leaves a unit only its ReadWritePaths=: a folder missing from
    them fails at the first write, however its permissions are set.
    """
    base = base or Path.cwd()
    paths = write_paths(settings, config, base=base, config_path=config_path.absolute())
    checks: list[Check] = []
    for wp in paths:
        if wp.why == "logs" or wp.why == "LOG_FILE's folder":
            continue  # the log file check judges those
        ok, problem = _writable(wp.path)
        if ok and not wp.path.exists() and not created_by_unit(wp, paths):
            checks.append(
                Check(
                    f"writable: {wp.why}",
                    "warn",
                    f"{wp.path} does not exist yet",
                    f"create it owned by the service user (install -d -o wa-monitor -g "
                    f"wa-monitor -m 0750 {wp.path}): under the unit's ProtectSystem=strict "
                    "the service cannot",
                )
            )
        elif not ok:
            checks.append(
                Check(
                    f"writable: {wp.why}",
                    "fail",
                    f"{wp.path} {problem} by {_user()}",
                    f"chown wa-monitor:wa-monitor {wp.path} (the service user writes it)",
                )
            )
        else:
            checks.append(Check(f"writable: {wp.why}", "pass", f"{wp.path} writable"))
    name = settings.env_name
    if name is None:
        return checks
    for unit in UNITS:
        allowed = unit_read_write_paths(unit, name, unit_dir)
        if allowed is None:
            continue  # not installed here (a laptop, a container)
        drop_in = unit_dir / f"{unit}@{name}.service.d" / DROP_IN
        missing = [wp for wp in paths if unit in wp.units and not covered(wp.path, allowed)]
        if not missing:
            checks.append(
                Check(
                    f"unit {unit}@{name}",
                    "pass",
                    f"may write {', '.join(str(wp.path) for wp in paths if unit in wp.units)}",
                )
            )
            continue
        lines = "; ".join(f"ReadWritePaths={wp.path}" for wp in missing)
        checks.append(
            Check(
                f"unit {unit}@{name}",
                "fail",
                "ProtectSystem=strict leaves it no write access to "
                + ", ".join(f"{wp.path} ({wp.why})" for wp in missing),
                f"add under [Service] in {drop_in}: {lines} (or run `wa-monitor install-service "
                f"--env {name}` again), then `systemctl daemon-reload` and restart it",
            )
        )
    return checks


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.geteuid()}"


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


def check_media(settings: Settings) -> Check:
    """The media store `run` fetches photos into can be written (S3: answers)."""
    store, problem = check_media_store(settings)
    if store is None:
        # A warning: drops are recorded without it, only the photos wait.
        return Check(
            "media store",
            "warn",
            problem,
            "set MEDIA_DIR to a folder the service user can write (or MEDIA_URL=s3://bucket/"
            "prefix with its AWS_* variables); photos are linked but not fetched until then",
        )
    return Check("media store", "pass", f"{store!r} writable")


def run_doctor(
    config_path: Path,
    *,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    probe_bridge_process: bool = True,
    unit_dir: Path = DEFAULT_UNIT_DIR,
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
    photos: Check | None = None
    try:
        ready = readiness(
            settings,
            store,
            zone,
            instance=settings.instance,
            now=now,
            database_extras=lambda store: [check_separation(settings, store)],
        )
        if store is not None and any(
            c.name == "schema" and c.status == "pass" for c in ready.report.checks
        ):
            photos, _ = check_photos(store, ready.beat, now=now, reasons=True)
    finally:
        if store is not None:
            store.dispose()
    checks.extend(ready.report.checks)
    checks.append(check_media(settings))
    if photos is not None:
        checks.append(photos)
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
    # The units run in the env file's folder (PREFIX/INSTANCE): relative paths are read there.
    base = env_file.absolute().parent if env_file is not None else None
    checks.extend(check_write_access(settings, config, config_path, unit_dir=unit_dir, base=base))
    return Report(tuple(checks))
