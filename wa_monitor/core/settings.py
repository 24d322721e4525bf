"""Settings from the environment (optionally a .env file), declared in one table.

Each field of `Settings` is declared by `setting(NAME, default, help, parser)`: its
variable, its default (as the text it would be written as), what it means and how its
text is read. `SETTINGS`, which `wa-monitor settings` prints and the README copies, is
read off those declarations, so adding a setting is adding one field here.
"""

# setting() returns a dataclasses.field(), which RUF009 cannot tell from a shared default.
# ruff: noqa: RUF009

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, cast

from dotenv import dotenv_values

from wa_monitor.core.errors import ConfigError
from wa_monitor.core.gateways import GATEWAYS
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.masking import mask_url

__all__ = ["SETTINGS", "Setting", "Settings", "load_settings", "mask_url", "settings_from"]

T = TypeVar("T")
# How a setting's text (its default when unset or empty; None when it has none) becomes
# its value: (variable name, text) -> value, raising Invalid with the operator's messages.
Parser = Callable[[str, str | None], Any]


class Invalid(ValueError):
    """A setting's text cannot be read; each message names the variable and what to write."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Setting:
    """One variable of the environment: its name, default, meaning and reader."""

    name: str
    default: str | None
    help: str
    parse: Parser = field(default=lambda _name, text: text, repr=False, compare=False)
    aliases: tuple[str, ...] = ()
    secret: bool = False

    def text(self, env: Mapping[str, str]) -> str | None:
        """The variable's text in `env` (an empty one is unset), else the default."""
        for name in (self.name, *self.aliases):
            if env.get(name):
                return env[name]
        return self.default

    def shown(self, env: Mapping[str, str]) -> str:
        """The current text as `wa-monitor settings` shows it: secrets and passwords masked."""
        current = env.get(self.name, "")
        if self.secret and current:
            return "***"
        return mask_url(current)


def setting(
    name: str,
    default: str | None,
    help: str,
    parse: Callable[[str, str | None], T] | None = None,
    *,
    aliases: tuple[str, ...] = (),
    secret: bool = False,
) -> T:
    """A field of `Settings`, read from the variable `name` by `parse` (default: as text)."""
    declared = Setting(name, default, help, aliases=aliases, secret=secret)
    if parse is not None:
        declared = Setting(name, default, help, parse, aliases, secret)
    # Typed as the value, like dataclasses.field(), so that mypy checks the annotation
    # against the parser's result.
    return cast(T, field(metadata={"setting": declared}, repr=not secret))


# -- readers ------------------------------------------------------------------------------


def text(_name: str, value: str | None) -> str:
    return value or ""


def optional_text(_name: str, value: str | None) -> str | None:
    return value or None


def optional_path(_name: str, value: str | None) -> Path | None:
    return Path(value) if value else None


def path(_name: str, value: str | None) -> Path:
    return Path(value or ".")


def number(minimum: float, maximum: float = 1e9) -> Callable[[str, str | None], float]:
    """A number from `minimum` to `maximum`: seconds past 1e9 (31 years), inf or nan
    would make a sleep raise or spin."""

    def parse(name: str, value: str | None) -> float:
        raw = value or "0"
        try:
            result = float(raw)
        except ValueError:
            result = math.nan
        if not minimum <= result <= maximum:  # nan compares false: refused too
            raise Invalid(f"{name}={raw!r} must be a number from {minimum:g} to {maximum:g}")
        return result

    return parse


def whole_number(minimum: int) -> Callable[[str, str | None], int]:
    """A number at least `minimum`, its fraction dropped."""
    read = number(minimum, 1e15)
    return lambda name, value: int(read(name, value))


def one_of(*choices: str, strip: bool = False) -> Callable[[str, str | None], str]:
    """One of `choices`, in any case."""

    def parse(name: str, value: str | None) -> str:
        chosen = (value or choices[0]).lower()
        chosen = chosen.strip() if strip else chosen
        if chosen not in choices:
            raise Invalid(f"{name}={chosen!r} must be {' or '.join(choices)}")
        return chosen

    return parse


def boolean(name: str, value: str | None) -> bool:
    chosen = (value or "false").strip().lower()
    if chosen not in {"true", "false", "1", "0", "yes", "no"}:
        raise Invalid(f"{name}={chosen!r} must be true or false")
    return chosen in {"true", "1", "yes"}


def _log_level(name: str, value: str | None) -> str:
    level = (value or "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise Invalid(f"{name}={level!r} must be DEBUG, INFO, WARNING or ERROR")
    return level


# An instance's name: a systemd instance (wa-monitor@NAME) and a folder (PREFIX/NAME).
INSTANCE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


def instance_name_problem(value: str) -> str | None:
    """Why `value` cannot name an instance; None when it can."""
    if INSTANCE_NAME.fullmatch(value):
        return None
    return (
        f"{value!r} is not an instance name: use lower-case letters, digits and '-' "
        "(at most 32, e.g. prod, dev or acme-fibre)"
    )


def _environment_name(name: str, value: str | None) -> str | None:
    env_name = (value or "").strip().lower() or None
    if env_name is not None and (problem := instance_name_problem(env_name)):
        raise Invalid(f"{name}: {problem}")
    return env_name


def _patterns(_name: str, value: str | None) -> tuple[str, ...]:
    """Comma-separated paths or glob patterns."""
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _web_port(name: str, value: str | None) -> int:
    port = _port(name, value or "8000")
    if port is None:
        raise Invalid(f"{name}=0: the dashboard needs a port (1-65535)")
    return port


def _port(name: str, value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or int(value) > 65535:
        raise Invalid(f"{name}={value!r} must be a port number (0 = off)")
    return int(value) or None


def _working_hours(name: str, value: str | None) -> str:
    hours = value or "always"
    try:
        WorkingHours.parse(hours)
    except ValueError as exc:
        raise Invalid(f"{name}={hours!r}: {exc}") from None
    return hours


def _trusted_proxies(name: str, value: str | None) -> tuple[str, ...]:
    """The proxies' networks, normalised (an address is its /32 or /128)."""
    networks: list[str] = []
    problems: list[str] = []
    for item in (part.strip() for part in (value or "").split(",")):
        if not item:
            continue
        if item == "*":
            problems.append(
                f"{name}=* would let any client choose the address its sign-ins "
                "count against; list the proxies' addresses or networks (e.g. 10.0.0.0/8)"
            )
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            problems.append(
                f"{name}: {item!r} is not an IP address or network "
                "(e.g. 127.0.0.1, ::1 or 10.0.0.0/8)"
            )
    if problems:
        raise Invalid(*problems)
    return tuple(dict.fromkeys(networks))


# -- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The settings in force: one field per variable, in the order `wa-monitor settings` lists.

    To add a setting, add a field here: `setting(NAME, default, help, parser)`, where
    the parser is one of the readers above (or a new one raising Invalid). Nothing else
    changes: `SETTINGS`, `settings_from` and `wa-monitor settings` follow.
    """

    database_url: str = setting(
        "DATABASE_URL",
        "sqlite:///wa-monitor.db",
        "Review database, SQLAlchemy-style URL (postgresql://… or sqlite:///path). "
        "NEON_DATABASE_URL is accepted too; DATABASE_URL wins.",
        text,
        aliases=("NEON_DATABASE_URL",),
    )
    whatsapp_db_path: Path | None = setting(
        "WHATSAPP_DB_PATH", None, "The bridge's messages.db (required for scanning).", optional_path
    )
    whatsapp_store_path: Path | None = setting(
        "WHATSAPP_STORE_PATH",
        None,
        "The bridge's whatsapp.db (LID map, contact names); default: whatsapp.db beside "
        "messages.db when it exists.",
        optional_path,
    )
    config_path: Path = setting(
        "WA_MONITOR_CONFIG",
        "config/projects.yaml",
        "The projects file, relative to the working directory; --config wins.",
        path,
    )
    scan_interval: float = setting(
        "SCAN_INTERVAL", "15", "Longest sleep between scans, in seconds.", number(0.05)
    )
    log_level: str = setting("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.", _log_level)
    log_file: Path | None = setting(
        "LOG_FILE", None, "Also write the log to this file (rotated).", optional_path
    )
    log_max_bytes: int = setting(
        "LOG_MAX_BYTES",
        "10485760",
        "Rotate the log file at this size in bytes.",
        whole_number(1024),
    )
    log_backups: int = setting("LOG_BACKUPS", "5", "Rotated log files to keep.", whole_number(0))
    log_format: str = setting(
        "LOG_FORMAT",
        "text",
        "text (the classic format) or json (one object per line).",
        one_of("text", "json"),
    )
    bridge_url: str = setting(
        "BRIDGE_URL",
        "http://localhost:8080/api",
        "The bridge's HTTP API, for feedback.",
        lambda _name, value: (value or "").rstrip("/"),
    )
    gateway: str = setting(
        "GATEWAY",
        "bridge",
        "Where the groups' messages come from and feedback goes, unless a project's "
        "`gateway:` says otherwise: bridge (the bridge's messages.db, upstream or "
        "`wa-monitor bridge`), waha, evolution, or bridge-webhook (the maintained Go "
        "bridge fork's webhook).",
        one_of(*GATEWAYS, strip=True),
    )
    bridge_token: str | None = setting(
        "BRIDGE_TOKEN",
        None,
        "Bearer token of the bridge's HTTP API (`wa-monitor bridge`, the maintained fork); "
        "`wa-monitor bridge` requires one. Unset: requests carry none (the upstream bridge).",
        optional_text,
        secret=True,
    )
    bridge_store: Path | None = setting(
        "BRIDGE_STORE",
        None,
        "`wa-monitor bridge`: the folder of its messages.db, whatsapp.db and downloaded "
        "media (default: WHATSAPP_DB_PATH's folder).",
        optional_path,
    )
    bridge_listen: str = setting(
        "BRIDGE_LISTEN",
        "127.0.0.1:8080",
        "`wa-monitor bridge`: the address:port its HTTP API listens on.",
        text,
    )
    waha_url: str | None = setting(
        "WAHA_URL",
        None,
        "WAHA's base URL (e.g. http://127.0.0.1:3000), for feedback, LIDs and media.",
        lambda _name, value: (value or "").rstrip("/") or None,
    )
    waha_api_key: str | None = setting(
        "WAHA_API_KEY",
        None,
        "WAHA's API key: sent as X-Api-Key, and required on its webhook calls.",
        optional_text,
        secret=True,
    )
    waha_session: str = setting("WAHA_SESSION", "default", "The WAHA session to use.", text)
    waha_hmac_key: str | None = setting(
        "WAHA_HMAC_KEY",
        None,
        "The HMAC key configured on WAHA's webhook: every call's X-Webhook-Hmac is verified.",
        optional_text,
        secret=True,
    )
    evolution_url: str | None = setting(
        "EVOLUTION_URL",
        None,
        "Evolution API's base URL (e.g. http://127.0.0.1:8080), for feedback and media.",
        lambda _name, value: (value or "").rstrip("/") or None,
    )
    evolution_api_key: str | None = setting(
        "EVOLUTION_API_KEY",
        None,
        "Evolution API's apikey: sent with every request, and required on its webhook calls.",
        optional_text,
        secret=True,
    )
    evolution_instance: str | None = setting(
        "EVOLUTION_INSTANCE", None, "The Evolution API instance to use.", optional_text
    )
    webhook_token: str | None = setting(
        "WEBHOOK_TOKEN",
        None,
        "Token the Go bridge fork's webhook calls must carry: the fork sends no header, so "
        "put it in its WEBHOOK_URL as `?token=` (a Bearer header is taken too).",
        optional_text,
        secret=True,
    )
    webhook_window: float = setting(
        "WEBHOOK_WINDOW",
        "86400",
        "A signed webhook call whose signed time is further than this from now (seconds) is "
        "refused as a replay. Keep it longer than the gateway goes on retrying (WAHA: "
        "retries.attempts × delaySeconds) and than an outage of `serve` may last: a retry "
        "refused is a message lost. Within it a replay is harmless (each message is stored "
        "once).",
        number(60, 7 * 86400),
    )
    secret_key: str | None = setting(
        "SECRET_KEY",
        None,
        "Signs dashboard sessions; required by `serve` in production.",
        optional_text,
        secret=True,
    )
    # operations
    env_name: str | None = setting(
        "WA_MONITOR_ENV",
        None,
        "This installation's instance: prod, dev, a company's name (lower-case letters, "
        "digits and '-'); the systemd units set it from their instance name.",
        _environment_name,
    )
    instance_env_files: tuple[str, ...] = setting(
        "INSTANCE_ENV_FILES",
        "/opt/wa-monitor/*/.env",
        "The instances' env files on this host, comma-separated (globs allowed): no "
        "instance writes into a database another one's file names. PROD_ENV_FILE (prod's "
        "file) is read when this is unset.",
        _patterns,
        aliases=("PROD_ENV_FILE",),
    )
    allow_shared_database: bool = setting(
        "ALLOW_SHARED_DATABASE",
        "false",
        "true lets this instance write into a review database another instance uses (not advised).",
        boolean,
    )
    instance: str = setting(
        "WA_MONITOR_INSTANCE", None, "Heartbeat name of this monitor; default ENV@hostname.", text
    )
    metrics_port: int | None = setting(
        "METRICS_PORT",
        None,
        "Serve Prometheus metrics of `run` on this port (0/unset: off).",
        _port,
    )
    metrics_addr: str = setting(
        "METRICS_ADDR", "127.0.0.1", "Address the metrics server of `run` listens on.", text
    )
    heartbeat_interval: float = setting(
        "HEARTBEAT_INTERVAL",
        "15",
        "Seconds between heartbeats of `run` in the database.",
        number(0.05),
    )
    heartbeat_stale_after: float = setting(
        "HEARTBEAT_STALE_AFTER",
        "120",
        "A heartbeat older than this (seconds) is unhealthy.",
        number(1),
    )
    stale_after: float = setting(
        "STALE_AFTER",
        "7200",
        "Warn when a monitored group's newest message is older than this (seconds), "
        "during working hours.",
        number(1),
    )
    bridge_stale_after: float = setting(
        "BRIDGE_STALE_AFTER",
        "3600",
        "Unhealthy when messages.db has not changed for this long (seconds), during working hours.",
        number(1),
    )
    working_hours: str = setting(
        "WORKING_HOURS",
        "Mon-Sat 07:00-19:00",
        "When staleness counts, in the projects' time zone: e.g. `Mon-Fri 07:00-18:00`, "
        "`always` or `never`.",
        _working_hours,
    )
    log_rotate: str = setting(
        "LOG_ROTATE",
        "size",
        "size (at LOG_MAX_BYTES) or daily (at midnight).",
        one_of("size", "daily", strip=True),
    )
    trusted_proxies: tuple[str, ...] = setting(
        "TRUSTED_PROXIES",
        None,
        "Reverse proxies in front of `serve`, comma-separated addresses or networks "
        "(e.g. 127.0.0.1,10.0.0.0/8): only their X-Forwarded-For and X-Forwarded-Proto are "
        "believed. Unset: none, the connecting address is the client's (behind a proxy, "
        "set it, or every sign-in counts against the proxy's address).",
        _trusted_proxies,
    )
    web_host: str = setting(
        "WEB_HOST",
        "127.0.0.1",
        "Address `serve` listens on (--host wins); behind a reverse proxy keep 127.0.0.1.",
        text,
    )
    web_port: int = setting(
        "WEB_PORT",
        "8000",
        "Port `serve` listens on (--port wins); one per instance (prod 8000, dev 8001, …).",
        _web_port,
    )
    # media
    media_dir: Path | None = setting(
        "MEDIA_DIR",
        None,
        "Folder of the media store (photos, content-addressed by SHA-256); default: `media` "
        "beside the review database when it is SQLite; required with PostgreSQL unless "
        "MEDIA_URL is set.",
        optional_path,
    )
    media_url: str | None = setting(
        "MEDIA_URL",
        None,
        "S3-compatible media store instead of MEDIA_DIR, as s3://bucket/prefix; endpoint and "
        "credentials from the usual AWS variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, …).",
        optional_text,
    )
    media_workers: int = setting(
        "MEDIA_WORKERS",
        "2",
        "Photos `run` downloads from the bridge at the same time (the bridge decrypts one "
        "file per request; more than a few only queues there).",
        whole_number(1),
    )
    media_max_bytes: int = setting(
        "MEDIA_MAX_BYTES",
        "1073741824",
        "Largest video or document `run` fetches into the media store, in bytes (default "
        "1 GiB); a larger file is marked failed with its size. Photos are bounded far "
        "lower (40 MB) by the image checks.",
        whole_number(1024),
    )
    # reports and alerts by e-mail
    smtp_host: str | None = setting(
        "SMTP_HOST",
        None,
        "Mail server for the projects file's `email:` reports and alerts (unset: no e-mail).",
        optional_text,
    )
    smtp_port: int | None = setting(
        "SMTP_PORT", None, "Its port; default 587 (starttls), 465 (ssl) or 25 (none).", _port
    )
    smtp_security: str = setting(
        "SMTP_SECURITY",
        "starttls",
        "starttls, ssl (TLS from the first byte) or none (a local relay only).",
        one_of("starttls", "ssl", "none", strip=True),
    )
    smtp_user: str | None = setting(
        "SMTP_USER",
        None,
        "Sign in to the mail server as this user (unset: no sign-in).",
        optional_text,
    )
    smtp_password: str | None = setting(
        "SMTP_PASSWORD", None, "SMTP_USER's password.", optional_text, secret=True
    )
    smtp_from: str | None = setting(
        "SMTP_FROM",
        None,
        "The sender address of reports and alerts; default SMTP_USER, else wa-monitor@hostname.",
        optional_text,
    )
    # The variables these were read from (the .env file's under the environment's); kept
    # out of the repr, which would show the secrets among them.
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

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


# The fields declared by setting(), in order.
_FIELDS: tuple[tuple[str, Setting], ...] = tuple(
    (f.name, f.metadata["setting"]) for f in fields(Settings) if "setting" in f.metadata
)
# The one list of settings: `wa-monitor settings` prints it, the README copies it.
SETTINGS: tuple[Setting, ...] = tuple(s for _, s in _FIELDS)


def _media_beside(database_url: str) -> Path | None:
    """`media` beside a SQLite review database's file; None for any other database."""
    if not database_url.startswith("sqlite:///"):
        return None
    database = database_url.removeprefix("sqlite:///").split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return Path(database).parent / "media"


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
    """Every setting read from `env`; ConfigError listing every value that cannot be read."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for attribute, declared in _FIELDS:
        try:
            values[attribute] = declared.parse(declared.name, declared.text(env))
        except Invalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    # The two defaults that depend on other settings.
    messages, store = values["whatsapp_db_path"], values["whatsapp_store_path"]
    if store is None and messages is not None:
        beside = messages.with_name("whatsapp.db")
        values["whatsapp_store_path"] = beside if beside.exists() else None
    if values["media_dir"] is None and values["media_url"] is None:
        values["media_dir"] = _media_beside(values["database_url"])
    values["instance"] = (
        values["instance"] or f"{values['env_name'] or 'default'}@{socket.gethostname()}"
    )
    return Settings(**values, environ=dict(env))
