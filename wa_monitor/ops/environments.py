"""Instances side by side: two systemd template units, an instance per company or environment.

`wa-monitor@NAME` (the monitor) and `wa-monitor-web@NAME` (the dashboard) both run from
PREFIX/NAME with its `.env` and projects file. Both are read-only but for what each
writes; what an instance's settings make it write (a SQLite database's folder, the media
store, report folders) goes into a drop-in per instance. The guard that keeps one
instance out of another's review data is in `database`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wa_monitor.core.config import ProjectsConfig, load_config
from wa_monitor.core.errors import ConfigError, WaMonitorError
from wa_monitor.core.report_config import FolderDestination
from wa_monitor.core.settings import Settings, instance_name_problem, read_env_file, settings_from

DEFAULT_PREFIX = Path("/opt/wa-monitor")
DEFAULT_BRIDGE_STORE = Path("/opt/velo-test-monitor/services/whatsapp-bridge/store")
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")
MONITOR = "wa-monitor"
WEB = "wa-monitor-web"
UNITS = (MONITOR, WEB)
UNIT_NAME = f"{MONITOR}@.service"
WEB_UNIT_NAME = f"{WEB}@.service"
DROP_IN = "50-write-paths.conf"
# ProtectHome=yes hides these entirely; a path under them needs ProtectHome=read-only.
HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))


def check_instance(name: str) -> str:
    """`name` if it can name an instance, else ConfigError saying what can."""
    problem = instance_name_problem(name)
    if problem:
        raise ConfigError([problem])
    return name


# -- systemd units ------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitOptions:
    prefix: Path = DEFAULT_PREFIX
    user: str = "wa-monitor"
    group: str = "wa-monitor"
    executable: str = "/opt/wa-monitor/venv/bin/wa-monitor"
    bridge_store: Path = DEFAULT_BRIDGE_STORE
    watchdog_sec: int = 120


_HEAD = """\
[Unit]
Description={description} (%i)
Documentation=https://github.com/wa-monitor/wa-monitor/blob/main/docs/operations.md
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0
"""

_ENVIRONMENT = """\
User={user}
Group={group}
WorkingDirectory={prefix}/%i
Environment=WA_MONITOR_ENV=%i
Environment=WA_MONITOR_CONFIG={prefix}/%i/config/projects.yaml
Environment=INSTANCE_ENV_FILES={prefix}/*/.env
Environment=PYTHONUNBUFFERED=1
EnvironmentFile={prefix}/%i/.env
"""

_HARDENING = """\
# Hardening: the whole file system is read-only except the instance's logs and what
# its settings make this unit write, which install-service lists in
# {unit}@INSTANCE.service.d/{drop_in}: {writes}.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
UMask=0027
ReadWritePaths={prefix}/%i/logs
# The bridge's store is read, never written.
ReadOnlyPaths={bridge_store}

[Install]
WantedBy=multi-user.target
"""

UNIT_TEMPLATE = (
    """\
# WA Monitor drop monitor, one instance per company or environment: wa-monitor@prod, ….
# Rendered by `wa-monitor install-service`; the instance name (%i) picks the directory.
"""
    + _HEAD
    + """
[Service]
Type=notify
NotifyAccess=main
"""
    + _ENVIRONMENT
    + """\
ExecStart={executable} run
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=10
# The monitor pings the watchdog while it scans; a hung monitor is restarted.
WatchdogSec={watchdog_sec}
TimeoutStopSec=30

"""
    + _HARDENING
)

WEB_UNIT_TEMPLATE = (
    """\
# WA Monitor dashboard, one instance per company or environment: wa-monitor-web@prod, ….
# Rendered by `wa-monitor install-service`; it listens on WEB_HOST:WEB_PORT of the
# instance's .env (127.0.0.1:8000 by default), behind the reverse proxy of deploy/.
"""
    + _HEAD
    + """
[Service]
Type=exec
"""
    + _ENVIRONMENT
    + """\
ExecStart={executable} serve
Restart=always
RestartSec=5
TimeoutStopSec=30

"""
    + _HARDENING
)


def _render(template: str, unit: str, o: UnitOptions, description: str, writes: str) -> str:
    return template.format(
        description=description,
        prefix=str(o.prefix).rstrip("/"),
        user=o.user,
        group=o.group,
        executable=o.executable,
        bridge_store=o.bridge_store,
        watchdog_sec=o.watchdog_sec,
        unit=unit,
        drop_in=DROP_IN,
        writes=writes,
    )


def render_unit(options: UnitOptions | None = None) -> str:
    """The monitor's template unit, wa-monitor@.service."""
    return _render(
        UNIT_TEMPLATE,
        MONITOR,
        options or UnitOptions(),
        "WA Monitor drop monitor",
        "a SQLite database's folder, the media store",
    )


def render_web_unit(options: UnitOptions | None = None) -> str:
    """The dashboard's template unit, wa-monitor-web@.service."""
    return _render(
        WEB_UNIT_TEMPLATE,
        WEB,
        options or UnitOptions(),
        "WA Monitor dashboard",
        "a SQLite database's folder, report folders, the projects file's folder",
    )


# -- what each unit writes ----------------------------------------------------------------


@dataclass(frozen=True)
class WritePath:
    """A folder a unit must be able to write, and why."""

    path: Path
    why: str
    units: tuple[str, ...] = UNITS
    # False: listed with `-`, so a folder not created yet does not stop the unit from
    # starting (what would write there fails and says so instead).
    required: bool = True


@dataclass(frozen=True)
class Instance:
    """One instance's settings and projects file, as its units see them."""

    name: str
    directory: Path
    settings: Settings
    config_path: Path
    config: ProjectsConfig | None
    problems: tuple[str, ...] = ()


def read_instance(name: str, prefix: Path = DEFAULT_PREFIX) -> Instance:
    """PREFIX/NAME's `.env` and projects file; what is missing or invalid is in `problems`."""
    directory = prefix / check_instance(name)
    problems: list[str] = []
    env: dict[str, str] = {}
    env_file = directory / ".env"
    if env_file.is_file():
        try:
            env = read_env_file(env_file)
        except ConfigError as exc:
            problems.extend(exc.problems)
    else:
        problems.append(f"{env_file} does not exist yet")
    try:
        settings = settings_from(env)
    except ConfigError as exc:
        problems.extend(f"{env_file}: {p}" for p in exc.problems)
        settings = settings_from({})
    # The unit's own WA_MONITOR_CONFIG, unless the .env names another file.
    config_path = _absolute(Path(env.get("WA_MONITOR_CONFIG") or "config/projects.yaml"), directory)
    config: ProjectsConfig | None = None
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        problems.extend(exc.problems)
    return Instance(name, directory, settings, config_path, config, tuple(problems))


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def sqlite_file(database_url: str) -> Path | None:
    """The file of a SQLite DATABASE_URL (as written, maybe relative); None otherwise."""
    for scheme in ("sqlite:///", "sqlite+pysqlite:///"):
        if database_url.startswith(scheme):
            database = database_url.removeprefix(scheme).split("?", 1)[0]
            return Path(database) if database and database != ":memory:" else None
    return None


def report_folders(config: ProjectsConfig | None) -> list[tuple[Path, str]]:
    """Each folder the projects file delivers reports (or alerts) into, with what to."""
    if config is None:
        return []
    found: list[tuple[Path, str]] = []
    for report in config.reports:
        found.extend(
            (d.path, f"report {report.name!r}")
            for d in report.to
            if isinstance(d, FolderDestination)
        )
    alerts: Any = getattr(config, "alerts", None)
    for destination in getattr(alerts, "to", ()) or ():
        if isinstance(destination, FolderDestination):
            found.append((destination.path, "alerts"))
    return found


def write_paths(
    settings: Settings, config: ProjectsConfig | None, *, base: Path, config_path: Path
) -> list[WritePath]:
    """What the monitor and the dashboard write, relative paths read from `base`."""
    paths = [WritePath(base / "logs", "logs")]
    if settings.log_file is not None:
        paths.append(WritePath(_absolute(settings.log_file, base).parent, "LOG_FILE's folder"))
    database = sqlite_file(settings.database_url)
    if database is not None:
        # SQLite writes its journal beside the file: the folder, not only the file.
        paths.append(WritePath(_absolute(database, base).parent, "review database (SQLite)"))
    if settings.media_url is None and settings.media_dir is not None:
        # Only the monitor fetches photos; the dashboard reads them.
        paths.append(
            WritePath(
                _absolute(settings.media_dir, base), "media store", units=(MONITOR,), required=False
            )
        )
    # The dashboard delivers reports and alerts (its scheduler, the front end's sync).
    paths.extend(
        WritePath(_absolute(folder, base), why, units=(WEB,), required=False)
        for folder, why in report_folders(config)
    )
    # The dashboard's projects page rewrites the file (a temporary file, then a rename).
    paths.append(WritePath(config_path.parent, "projects file's folder", units=(WEB,)))
    return paths


def instance_write_paths(instance: Instance) -> list[WritePath]:
    return write_paths(
        instance.settings,
        instance.config,
        base=instance.directory,
        config_path=instance.config_path,
    )


def covered(path: Path, by: Iterable[Path]) -> bool:
    return any(path == other or path.is_relative_to(other) for other in by)


def created_by_unit(wp: WritePath, paths: Iterable[WritePath]) -> bool:
    """Whether `wp` lies in another folder its units may write, so they can create it."""
    return any(
        other.required
        and other.path != wp.path
        and wp.path.is_relative_to(other.path)
        and set(wp.units) <= set(other.units)
        for other in paths
    )


def _unit_path(path: Path, required: bool) -> str:
    """A path as a systemd ReadWritePaths= word: `%` and quotes escaped, `-` when optional."""
    text = ("" if required else "-") + str(path).replace("\\", "\\\\").replace("%", "%%")
    if any(c.isspace() or c in "\"'" for c in text):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def render_drop_in(unit: str, instance: str, paths: Iterable[WritePath], prefix: Path) -> str:
    """The drop-in of `unit`@`instance`: a ReadWritePaths= line per folder it writes."""
    template = [prefix / instance / "logs"]  # in the template unit already
    lines = [
        f"# What {unit}@{instance} writes besides its logs, from {prefix / instance}/.env",
        f"# and its projects file. Written by `wa-monitor install-service --env {instance}`:",
        "# run it again after changing DATABASE_URL, MEDIA_DIR, LOG_FILE or a report folder.",
        "# `wa-monitor doctor` checks that these folders are writable and listed here.",
        "[Service]",
    ]
    listed: list[Path] = []
    home = False
    for wp in paths:
        if unit not in wp.units or covered(wp.path, template + listed):
            continue
        listed.append(wp.path)
        home = home or covered(wp.path, HOME_DIRS)
        lines.append(f"# {wp.why}")
        lines.append(f"ReadWritePaths={_unit_path(wp.path, wp.required)}")
    if home:
        lines.append("# A folder above is under a home directory: visible, read-only elsewhere.")
        lines.append("ProtectHome=read-only")
    return "\n".join(lines) + "\n"


def unit_read_write_paths(unit: str, instance: str, unit_dir: Path) -> list[Path] | None:
    """The ReadWritePaths= of `unit`@`instance` installed in `unit_dir`; None if not installed.

    Installed means by install-service: the template and the instance's drop-in folder.
    """
    template = unit_dir / f"{unit}@.service"
    if not template.is_file() or not (unit_dir / f"{unit}@{instance}.service.d").is_dir():
        return None
    files = [template, *sorted((unit_dir / f"{unit}@{instance}.service.d").glob("*.conf"))]
    found: list[Path] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key.strip() != "ReadWritePaths":
                continue
            if not value.strip():
                found.clear()  # an empty assignment resets the list
                continue
            for word in shlex.split(value.replace("%i", instance).replace("%%", "%")):
                found.append(Path(word.lstrip("-+")))
    return found


# -- installing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallPlan:
    files: dict[Path, str]
    commands: list[list[str]]
    warnings: list[str] = field(default_factory=list)

    @property
    def unit_path(self) -> Path:
        """The monitor's template unit."""
        return next(p for p in self.files if p.name == UNIT_NAME)


def install_plan(
    env: str,
    unit_dir: Path,
    options: UnitOptions,
    instance: Instance | None = None,
) -> InstallPlan:
    """Both template units, each one's drop-in for `env`, and the systemctl commands."""
    instance = instance or read_instance(env, options.prefix)
    paths = instance_write_paths(instance)
    files = {
        unit_dir / UNIT_NAME: render_unit(options),
        unit_dir / WEB_UNIT_NAME: render_web_unit(options),
    }
    for unit in UNITS:
        files[unit_dir / f"{unit}@{env}.service.d" / DROP_IN] = render_drop_in(
            unit, env, paths, options.prefix
        )
    commands = [
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", f"{MONITOR}@{env}.service", f"{WEB}@{env}.service"],
    ]
    env_file = instance.directory / ".env"
    if not env_file.is_file():
        # Nothing to tell from the defaults; the unit would not start without the file.
        return InstallPlan(
            files=files,
            commands=commands,
            warnings=[
                f"{env_file} does not exist yet: copy deploy/prod/.env.example there, set its "
                "values, and run install-service again (the drop-ins list what the .env "
                "makes the units write)"
            ],
        )
    warnings = [f"{p}; the drop-ins leave it out until it is fixed" for p in instance.problems]
    database = sqlite_file(instance.settings.database_url)
    if database is not None and _absolute(database, instance.directory).parent == (
        instance.directory
    ):
        warnings.append(
            f"the SQLite review database is in {instance.directory} itself, so both units may "
            f"write everything there (.env included): set DATABASE_URL=sqlite:///"
            f"{instance.directory}/data/wa-monitor.db"
        )
    for wp in paths:
        if not wp.path.is_dir() and not created_by_unit(wp, paths):
            warnings.append(
                f"{wp.path} ({wp.why}) does not exist: create it before starting (install -d "
                f"-o {options.user} -g {options.group} -m 0750 {shlex.quote(str(wp.path))}); "
                "the service cannot create it under ProtectSystem=strict"
            )
    return InstallPlan(files=files, commands=commands, warnings=warnings)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    temp.chmod(0o644)
    temp.replace(path)


def install(plan: InstallPlan, *, run_commands: bool) -> list[str]:
    """Write the unit files atomically; run systemctl when asked. Returns what it did."""
    done: list[str] = []
    for path, text in plan.files.items():
        _write(path, text)
        done.append(f"wrote {path}")
    if run_commands:
        if shutil.which("systemctl") is None:
            raise WaMonitorError("systemctl not found: run the commands on a systemd host")
        for command in plan.commands:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise WaMonitorError(
                    f"`{' '.join(command)}` failed: {result.stderr.strip() or result.returncode}"
                )
            done.append("ran " + " ".join(command))
    return done
