"""Prod and dev side by side: one systemd unit, an instance per environment.

The guard that keeps dev out of prod's review data is in `database`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from wa_monitor.core.errors import WaMonitorError

DEFAULT_PREFIX = Path("/opt/wa-monitor")
DEFAULT_BRIDGE_STORE = Path("/opt/velo-test-monitor/services/whatsapp-bridge/store")
UNIT_NAME = "wa-monitor@.service"


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
