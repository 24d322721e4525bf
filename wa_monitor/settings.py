"""Settings from the environment (optionally a .env file), listed in one table."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from wa_monitor.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None
    help: str


# The one list of settings: `wa-monitor settings` prints it, the README copies it.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "sqlite:///wa-monitor.db",
        "Review database, SQLAlchemy-style URL (postgresql://… or sqlite:///path). "
        "NEON_DATABASE_URL is accepted too; DATABASE_URL wins.",
    ),
    Setting("WHATSAPP_DB_PATH", None, "The bridge's messages.db (required for scanning)."),
    Setting(
        "WHATSAPP_STORE_PATH",
        None,
        "The bridge's whatsapp.db (LID map, contact names); default: whatsapp.db beside "
        "messages.db when it exists.",
    ),
    Setting("SCAN_INTERVAL", "15", "Longest sleep between scans, in seconds."),
    Setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Setting("LOG_FILE", None, "Also write the log to this file (rotated)."),
    Setting("LOG_MAX_BYTES", "10485760", "Rotate the log file at this size in bytes."),
    Setting("LOG_BACKUPS", "5", "Rotated log files to keep."),
    Setting("LOG_FORMAT", "text", "text (the classic format) or json (one object per line)."),
    Setting("BRIDGE_URL", "http://localhost:8080/api", "The bridge's HTTP API, for feedback."),
    Setting("SECRET_KEY", None, "Signs dashboard sessions; required by `serve` in production."),
    # operations
    Setting("WA_MONITOR_ENV", None, "prod or dev: which environment this installation is."),
    Setting(
        "PROD_ENV_FILE",
        "/opt/wa-monitor/prod/.env",
        "Dev only: prod's env file; dev refuses to run against prod's DATABASE_URL.",
    ),
    Setting(
        "ALLOW_SHARED_DATABASE",
        "false",
        "Dev only: true lets dev write into the same review database as prod (not advised).",
    ),
    Setting("WA_MONITOR_INSTANCE", None, "Heartbeat name of this monitor; default ENV@hostname."),
    Setting("METRICS_PORT", None, "Serve Prometheus metrics of `run` on this port (0/unset: off)."),
    Setting("METRICS_ADDR", "127.0.0.1", "Address the metrics server of `run` listens on."),
    Setting("HEARTBEAT_INTERVAL", "15", "Seconds between heartbeats of `run` in the database."),
    Setting("HEARTBEAT_STALE_AFTER", "120", "A heartbeat older than this (seconds) is unhealthy."),
    Setting(
        "STALE_AFTER",
        "7200",
        "Warn when a monitored group's newest message is older than this (seconds), "
        "during working hours.",
    ),
    Setting(
        "BRIDGE_STALE_AFTER",
        "3600",
        "Unhealthy when messages.db has not changed for this long (seconds), during working hours.",
    ),
    Setting(
        "WORKING_HOURS",
        "Mon-Sat 07:00-19:00",
        "When staleness counts, in the projects' time zone: e.g. `Mon-Fri 07:00-18:00`, "
        "`always` or `never`.",
    ),
    Setting("LOG_ROTATE", "size", "size (at LOG_MAX_BYTES) or daily (at midnight)."),
    Setting(
        "TRUSTED_PROXIES",
        None,
        "Reverse proxies in front of `serve`, comma-separated addresses or networks "
        "(e.g. 127.0.0.1,10.0.0.0/8): only their X-Forwarded-For and X-Forwarded-Proto are "
        "believed. Unset: none, the connecting address is the client's (behind a proxy, "
        "set it, or every sign-in counts against the proxy's address).",
    ),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)")


def mask_url(text: str) -> str:
    """Replace the password of every URL in `text` with ***."""
    return _URL_PASSWORD.sub(r"\g<head>***", text)


@dataclass(frozen=True)
class Settings:
    database_url: str
    whatsapp_db_path: Path | None
    whatsapp_store_path: Path | None
    scan_interval: float
    log_level: str
    log_file: Path | None
    log_max_bytes: int
    log_backups: int
    log_format: str
    bridge_url: str
    secret_key: str | None
    environ: Mapping[str, str]
    # operations
    env_name: str | None = None
    prod_env_file: Path | None = None
    allow_shared_database: bool = False
    instance: str = ""
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    heartbeat_interval: float = 15.0
    heartbeat_stale_after: float = 120.0
    stale_after: float = 7200.0
    bridge_stale_after: float = 3600.0
    working_hours: str = "Mon-Sat 07:00-19:00"
    log_rotate: str = "size"
    trusted_proxies: tuple[str, ...] = ()

    @property
    def masked_database_url(self) -> str:
        return mask_url(self.database_url)

    def require_bridge(self) -> Path:
        if self.whatsapp_db_path is None:
            raise ConfigError(
                [
                    "WHATSAPP_DB_PATH is not set; point it at the bridge's store/messages.db "
                    "(in the environment or the --env-file)"
                ]
            )
        return self.whatsapp_db_path


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a .env file; ConfigError when it cannot be read."""
    if not path.is_file():
        raise ConfigError([f"{path}: env file not found"])
    try:
        values = dotenv_values(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the env file: {exc}"]) from None
    return {k: v for k, v in values.items() if v is not None}


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = None
) -> Settings:
    """Settings from the process environment, with an env file's values underneath it."""
    env: dict[str, str] = {}
    if env_file is not None:
        env.update(read_env_file(env_file))
    # An empty variable counts as unset: it does not blank a value of the env file.
    env.update((k, v) for k, v in (os.environ if environ is None else environ).items() if v)
    return settings_from(env)


def settings_from(env: Mapping[str, str]) -> Settings:
    problems: list[str] = []

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or value == "":
            return _DEFAULTS.get(name)
        return value

    def number(name: str, minimum: float) -> float:
        raw = get(name) or "0"
        try:
            value = float(raw)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            problems.append(f"{name}={raw!r} must be a number ≥ {minimum:g}")
            return float(_DEFAULTS[name] or minimum)
        return value

    database_url = env.get("DATABASE_URL") or env.get("NEON_DATABASE_URL") or ""
    database_url = database_url or (_DEFAULTS["DATABASE_URL"] or "")
    messages = get("WHATSAPP_DB_PATH")
    messages_path = Path(messages) if messages else None
    store = get("WHATSAPP_STORE_PATH")
    store_path = Path(store) if store else None
    if store_path is None and messages_path is not None:
        beside = messages_path.with_name("whatsapp.db")
        store_path = beside if beside.exists() else None
    level = (get("LOG_LEVEL") or "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        problems.append(f"LOG_LEVEL={level!r} must be DEBUG, INFO, WARNING or ERROR")
        level = "INFO"
    log_format = (get("LOG_FORMAT") or "text").lower()
    if log_format not in {"text", "json"}:
        problems.append(f"LOG_FORMAT={log_format!r} must be text or json")
        log_format = "text"
    log_file = get("LOG_FILE")
    settings = Settings(
        database_url=database_url,
        whatsapp_db_path=messages_path,
        whatsapp_store_path=store_path,
        scan_interval=number("SCAN_INTERVAL", 0.05),
        log_level=level,
        log_file=Path(log_file) if log_file else None,
        log_max_bytes=int(number("LOG_MAX_BYTES", 1024)),
        log_backups=int(number("LOG_BACKUPS", 0)),
        log_format=log_format,
        bridge_url=(get("BRIDGE_URL") or "").rstrip("/"),
        secret_key=get("SECRET_KEY"),
        environ=dict(env),
        **_operations(get, number, problems),
    )
    if problems:
        raise ConfigError(problems)
    return settings


def _operations(
    get: Callable[[str], str | None],
    number: Callable[[str, float], float],
    problems: list[str],
) -> dict[str, Any]:
    """The operations settings: environment, guard, health, metrics, rotation."""
    import socket

    env_name = (get("WA_MONITOR_ENV") or "").strip().lower() or None
    if env_name is not None and not re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", env_name):
        problems.append(f"WA_MONITOR_ENV={env_name!r} must be a short name such as prod or dev")
        env_name = None
    shared = (get("ALLOW_SHARED_DATABASE") or "false").strip().lower()
    if shared not in {"true", "false", "1", "0", "yes", "no"}:
        problems.append(f"ALLOW_SHARED_DATABASE={shared!r} must be true or false")
    port_text = get("METRICS_PORT")
    port: int | None = None
    if port_text:
        if not port_text.isdigit() or int(port_text) > 65535:
            problems.append(f"METRICS_PORT={port_text!r} must be a port number (0 = off)")
        else:
            port = int(port_text) or None
    rotate = (get("LOG_ROTATE") or "size").strip().lower()
    if rotate not in {"size", "daily"}:
        problems.append(f"LOG_ROTATE={rotate!r} must be size or daily")
        rotate = "size"
    hours = get("WORKING_HOURS") or "always"
    from wa_monitor.health import WorkingHours

    try:
        WorkingHours.parse(hours)
    except ValueError as exc:
        problems.append(f"WORKING_HOURS={hours!r}: {exc}")
        hours = "always"
    prod_env = get("PROD_ENV_FILE")
    return {
        "env_name": env_name,
        "prod_env_file": Path(prod_env) if prod_env else None,
        "allow_shared_database": shared in {"true", "1", "yes"},
        "instance": get("WA_MONITOR_INSTANCE") or f"{env_name or 'default'}@{socket.gethostname()}",
        "metrics_port": port,
        "metrics_addr": get("METRICS_ADDR") or "127.0.0.1",
        "heartbeat_interval": number("HEARTBEAT_INTERVAL", 0.05),
        "heartbeat_stale_after": number("HEARTBEAT_STALE_AFTER", 1),
        "stale_after": number("STALE_AFTER", 1),
        "bridge_stale_after": number("BRIDGE_STALE_AFTER", 1),
        "working_hours": hours,
        "log_rotate": rotate,
        "trusted_proxies": _trusted_proxies(get("TRUSTED_PROXIES") or "", problems),
    }


def _trusted_proxies(text: str, problems: list[str]) -> tuple[str, ...]:
    """The proxies' networks, normalised (an address is its /32 or /128)."""
    networks: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item == "*":
            problems.append(
                "TRUSTED_PROXIES=* would let any client choose the address its sign-ins "
                "count against; list the proxies' addresses or networks (e.g. 10.0.0.0/8)"
            )
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            problems.append(
                f"TRUSTED_PROXIES: {item!r} is not an IP address or network "
                "(e.g. 127.0.0.1, ::1 or 10.0.0.0/8)"
            )
    return tuple(dict.fromkeys(networks))
