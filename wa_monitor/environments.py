"""Prod and dev side by side: the guard that keeps dev out of prod's data, and the units."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

from wa_monitor.errors import ConfigError, WaMonitorError
from wa_monitor.settings import Settings, mask_url, read_env_file
from wa_monitor.store import ReviewStore, engine_url

log = logging.getLogger("wa_monitor")

DEFAULT_PREFIX = Path("/opt/wa-monitor")
DEFAULT_BRIDGE_STORE = Path("/opt/velo-test-monitor/services/whatsapp-bridge/store")
UNIT_NAME = "wa-monitor@.service"


class SharedDatabaseError(WaMonitorError):
    """A non-prod environment is pointed at prod's review database."""

    exit_code = 2


def database_identity(url: str) -> tuple[Any, ...]:
    """What makes two DATABASE_URLs the same database (and PostgreSQL schema)."""
    parsed: URL = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            database = str(Path(database).expanduser().resolve())
        return ("sqlite", database)
    host = (parsed.host or "localhost").lower()
    if host in {"localhost", "::1"}:
        host = "127.0.0.1"
    options = str(parsed.query.get("options", ""))
    return ("postgresql", host, parsed.port or 5432, parsed.database or "", options)


def same_database(a: str, b: str) -> bool:
    try:
        return database_identity(a) == database_identity(b)
    except WaMonitorError:
        return a == b


def _url_of(env: Mapping[str, str]) -> str | None:
    return env.get("DATABASE_URL") or env.get("NEON_DATABASE_URL") or None


def guard(settings: Settings, store: ReviewStore | None = None) -> None:
    """Refuse a non-prod environment writing into prod's review data, unless allowed.

    Two signs of prod's database: prod's env file names the same DATABASE_URL, or a
    prod monitor's heartbeat is in it.
    """
    env = settings.env_name
    if env is None or env == "prod":
        return
    problems: list[str] = []
    prod_file = settings.prod_env_file
    if prod_file is not None and prod_file.is_file():
        try:
            prod_url = _url_of(read_env_file(prod_file))
        except ConfigError:
            prod_url = None
        if prod_url and same_database(prod_url, settings.database_url):
            problems.append(
                f"{env}'s DATABASE_URL {mask_url(settings.database_url)} is prod's "
                f"(see {prod_file})"
            )
    if store is not None and not problems:
        from wa_monitor.heartbeats import read_heartbeats

        try:
            beats = read_heartbeats(store)
        except WaMonitorError:
            beats = []
        for beat in beats:
            status = beat.get("status") or {}
            if status.get("env") == "prod":
                problems.append(
                    f"{env}'s DATABASE_URL {mask_url(settings.database_url)} holds the "
                    f"heartbeat of prod's monitor {beat['instance']}"
                )
                break
    if not problems:
        return
    if settings.allow_shared_database:
        log.warning(
            "⚠️ %s; ALLOW_SHARED_DATABASE=true, so %s writes into prod's review data",
            problems[0],
            env,
        )
        return
    raise SharedDatabaseError(
        f"refusing to run: {problems[0]}. {env} must not write into prod's review data: "
        f"give {env} its own database (e.g. postgresql://…/wa_monitor_{env}, then "
        f"`wa-monitor --env-file /opt/wa-monitor/{env}/.env db upgrade`), or set "
        "ALLOW_SHARED_DATABASE=true if you really mean it"
    )


# -- systemd units ------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitOptions:
    prefix: Path = DEFAULT_PREFIX
    user: str = "wa-monitor"
    group: str = "wa-monitor"
    executable: str = "/opt/wa-monitor/venv/bin/wa-monitor"
    bridge_store: Path = DEFAULT_BRIDGE_STORE
    watchdog_sec: int = 120


UNIT_TEMPLATE = """\
# WA Monitor drop monitor, one instance per environment: wa-monitor@prod, wa-monitor@dev.
# Rendered by `wa-monitor install-service`; the instance name (%i) picks the directory.
[Unit]
Description=WA Monitor drop monitor (%i)
Documentation=https://github.com/wa-monitor/wa-monitor/blob/main/docs/operations.md
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
User={user}
Group={group}
WorkingDirectory={prefix}/%i
Environment=WA_MONITOR_ENV=%i
Environment=WA_MONITOR_CONFIG={prefix}/%i/config/projects.yaml
Environment=PYTHONUNBUFFERED=1
EnvironmentFile={prefix}/%i/.env
ExecStart={executable} run
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=10
# The monitor pings the watchdog while it scans; a hung monitor is restarted.
WatchdogSec={watchdog_sec}
TimeoutStopSec=30

# Hardening: the whole file system is read-only except the environment's logs.
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


def render_unit(options: UnitOptions | None = None) -> str:
    o = options or UnitOptions()
    return UNIT_TEMPLATE.format(
        prefix=str(o.prefix).rstrip("/"),
        user=o.user,
        group=o.group,
        executable=o.executable,
        bridge_store=o.bridge_store,
        watchdog_sec=o.watchdog_sec,
    )


@dataclass(frozen=True)
class InstallPlan:
    unit_path: Path
    unit_text: str
    commands: list[list[str]]


def install_plan(env: str, unit_dir: Path, options: UnitOptions) -> InstallPlan:
    unit = f"wa-monitor@{env}.service"
    return InstallPlan(
        unit_path=unit_dir / UNIT_NAME,
        unit_text=render_unit(options),
        commands=[
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", unit],
        ],
    )


def install(plan: InstallPlan, *, run_commands: bool) -> list[str]:
    """Write the unit file atomically; run systemctl when asked. Returns what it did."""
    done: list[str] = []
    plan.unit_path.parent.mkdir(parents=True, exist_ok=True)
    temp = plan.unit_path.with_name(f".{plan.unit_path.name}.tmp")
    temp.write_text(plan.unit_text, encoding="utf-8")
    temp.chmod(0o644)
    temp.replace(plan.unit_path)
    done.append(f"wrote {plan.unit_path}")
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
