"""`wa-monitor doctor`: the troubleshooting section of the architecture document, run.

"Service won't start" (config syntax, environment variables, database connection,
SQLite file, what the units may write), "Not detecting drops" (bridge running, messages
in the store, group JIDs), "Drops not appearing" (database, schema), "No photos" (the
media store, the photo queue and its failures): each becomes a check with a fix.

Each gateway in use (the GATEWAY setting's, and each enabled project's `gateway:`) gets
its own: the bridge's store and process; WAHA's and Evolution API's settings, API and
session, the webhook gateways' last call received, with the webhook URL and the events to
configure when nothing arrives.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx

from wa_monitor.core.config import Project, ProjectsConfig, load_config
from wa_monitor.core.errors import BridgeStoreError, ConfigError, WaMonitorError
from wa_monitor.core.gateways import BRIDGE, BRIDGE_WEBHOOK, EVOLUTION, INBOX_GATEWAYS, WAHA
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.settings import Settings, load_settings
from wa_monitor.monitor.health import (
    Check,
    Report,
    check_photos,
    describe_age,
    group_staleness,
    readiness,
)
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
from wa_monitor.web.health_panel_queries import (
    BRIDGE_DEAD_STATES,
    GATEWAY_LABELS,
    WORKING_STATES,
    bridge_connection,
    inbox_newest,
    last_webhooks,
    projects_by_gateway,
    session_states,
)

# Settings that must be in the environment (or the env file) for `run`.
REQUIRED_ENV = ("DATABASE_URL", "WHATSAPP_DB_PATH")


def check_settings(
    load: Callable[[], Settings],
    env_file: Path | None,
    uses_bridge: Callable[[Settings], bool] = lambda _settings: True,
) -> tuple[list[Check], Settings | None]:
    """The settings parse, and those `run` needs are set (WHATSAPP_DB_PATH: when a
    project reads the bridge's store)."""
    where = f"the env file {env_file}" if env_file else "the environment (or --env-file)"
    try:
        settings = load()
    except ConfigError as exc:
        return [
            Check("settings", "fail", "; ".join(exc.problems), f"fix the values in {where}")
        ], None
    checks = [Check("settings", "pass", f"settings read from {where}")]
    env = settings.environ
    required = REQUIRED_ENV if uses_bridge(settings) else ("DATABASE_URL",)
    missing = [
        n
        for n in required
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
        checks.append(Check("environment variables", "pass", f"{' and '.join(required)} set"))
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


def check_groups(
    bridge: BridgeStore, config: ProjectsConfig, projects: Sequence[Project] | None = None
) -> list[Check]:
    """Each enabled project's group (of `projects`: those reading the bridge store) is in the
    store (closest group names when not)."""
    groups = bridge.groups()
    by_jid = {g.jid: g for g in groups}
    checks: list[Check] = []
    for project in config.enabled if projects is None else projects:
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


# -- the gateways ---------------------------------------------------------------------------

# What each webhook gateway must send, configured on the gateway's side.
WAHA_EVENTS = "message, message.edited, message.revoked, session.status"
EVOLUTION_EVENTS = "MESSAGES_UPSERT, MESSAGES_UPDATE, MESSAGES_DELETE, CONNECTION_UPDATE"
WEBHOOK_PATHS = {
    WAHA: "/webhooks/waha",
    EVOLUTION: "/webhooks/evolution",
    BRIDGE_WEBHOOK: "/webhooks/bridge",
}
# The checks `readiness` makes of the bridge's store: not ours to judge when no project
# reads one.
BRIDGE_CHECKS = ("bridge store", "bridge activity")
PROBE_TIMEOUT = 3.0


def gateways_in_use(settings: Settings, config: ProjectsConfig | None) -> dict[str, list[Project]]:
    """The enabled projects of each gateway in use; GATEWAY's is always in use."""
    return projects_by_gateway(list(config.enabled) if config else [], settings.gateway)


def webhook_url(settings: Settings, gateway: str) -> str:
    """Where `gateway` must post: the dashboard's address (`serve`) and the route's path."""
    path = WEBHOOK_PATHS[gateway]
    return (
        f"https://<the dashboard's address>{path} (from this host: "
        f"http://127.0.0.1:{settings.web_port}{path})"
    )


def webhook_setup(settings: Settings, gateway: str) -> str:
    """What to configure on `gateway` so that its messages reach the inbox."""
    url = webhook_url(settings, gateway)
    if gateway == WAHA:
        return (
            f"in WAHA, give the session {settings.waha_session!r} a webhook to {url} with the "
            f"events {WAHA_EVENTS}, and the header X-Api-Key: <WAHA_API_KEY> (customHeaders) "
            "or the HMAC key WAHA_HMAC_KEY (hmac.key)"
        )
    if gateway == EVOLUTION:
        instance = settings.evolution_instance or "<EVOLUTION_INSTANCE>"
        return (
            f"set the instance's webhook (POST /webhook/set/{instance}) to {url}, enabled, "
            f"with the events {EVOLUTION_EVENTS} and webhookByEvents off (else Evolution "
            "adds the event's name to the URL); the instance's groupsIgnore must be off"
        )
    return (
        f"start the Go bridge fork with its webhook URL set to {url} and its webhook secret "
        "set to WEBHOOK_TOKEN's value (sent as Authorization: Bearer)"
    )


def _get(url: str, headers: Mapping[str, str], timeout: float) -> tuple[int, object]:
    """GET `url`: the status and the JSON answer (None when it is not JSON)."""
    answer = httpx.get(url, headers=dict(headers), timeout=timeout)
    try:
        body: object = answer.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    return answer.status_code, body


def _unreachable(name: str, url: str, exc: httpx.HTTPError, fix: str) -> Check:
    return Check(name, "fail", f"{url} does not answer ({type(exc).__name__}: {exc})", fix)


def check_waha(
    settings: Settings, *, probe: bool = True, timeout: float = PROBE_TIMEOUT
) -> list[Check]:
    """WAHA's settings, its API and the session's state as WAHA tells it."""
    checks: list[Check] = []
    if settings.waha_api_key or settings.waha_hmac_key:
        how = " and ".join(
            what
            for what, on in (
                ("X-Api-Key required", settings.waha_api_key),
                ("HMAC signature verified", settings.waha_hmac_key),
            )
            if on
        )
        checks.append(Check("WAHA webhook credentials", "pass", f"on /webhooks/waha: {how}"))
    else:
        checks.append(
            Check(
                "WAHA webhook credentials",
                "fail",
                "neither WAHA_API_KEY nor WAHA_HMAC_KEY is set: /webhooks/waha refuses every "
                "call (503)",
                "set WAHA_API_KEY to WAHA's API key (WAHA sends it as X-Api-Key: add it to the "
                "webhook's customHeaders) and/or WAHA_HMAC_KEY to the webhook's hmac key",
            )
        )
    url = settings.waha_url
    if url is None:
        checks.append(
            Check(
                "WAHA API",
                "fail",
                "WAHA_URL is not set: no feedback, LID lookups or photos",
                "set WAHA_URL to WAHA's base URL (e.g. http://127.0.0.1:3000)",
            )
        )
        return checks
    if not probe:
        return checks
    session = settings.waha_session
    target = f"{url}/api/sessions/{session}"
    headers = {"X-Api-Key": settings.waha_api_key} if settings.waha_api_key else {}
    try:
        code, body = _get(target, headers, timeout)
    except httpx.HTTPError as exc:
        checks.append(
            _unreachable("WAHA API", url, exc, "start WAHA (`docker ps`), or correct WAHA_URL")
        )
        return checks
    if code in (401, 403):
        checks.append(
            Check(
                "WAHA API",
                "fail",
                f"WAHA refused the API key (HTTP {code})",
                "set WAHA_API_KEY to the key WAHA was started with (its WAHA_API_KEY)",
            )
        )
    elif code == 404:
        checks.append(
            Check(
                "WAHA API",
                "fail",
                f"WAHA has no session {session!r}",
                "create and start it in WAHA's dashboard, or set WAHA_SESSION to its name",
            )
        )
    elif code != 200 or not isinstance(body, dict):
        checks.append(
            Check(
                "WAHA API",
                "fail",
                f"GET /api/sessions/{session} answered HTTP {code}, not a session",
                "is WAHA_URL WAHA's base URL (no /api at its end)?",
            )
        )
    else:
        checks.append(Check("WAHA API", "pass", f"{url} answers"))
        checks.append(_waha_session(session, str(body.get("status") or "unknown")))
    return checks


def _waha_session(session: str, status: str) -> Check:
    name = "WAHA session"
    if status == "WORKING":
        return Check(name, "pass", f"{session!r} is WORKING")
    fixes = {
        "SCAN_QR_CODE": f"scan the QR code in WAHA's dashboard (POST /api/{session}/auth/qr) "
        "with the WhatsApp of the groups' number",
        "STOPPED": f"start it: POST /api/sessions/{session}/start",
        "FAILED": f"restart it (POST /api/sessions/{session}/restart); pair it again if it fails "
        "again",
        "STARTING": "wait a minute and run doctor again",
    }
    return Check(
        name,
        "warn" if status == "STARTING" else "fail",
        f"{session!r} is {status}: no messages arrive until it is WORKING",
        fixes.get(status, "look at the session in WAHA's dashboard"),
    )


def check_evolution(
    settings: Settings, *, probe: bool = True, timeout: float = PROBE_TIMEOUT
) -> list[Check]:
    """Evolution API's settings, its API, the instance's connection and groupsIgnore."""
    missing = [
        name
        for name, value in (
            ("EVOLUTION_URL", settings.evolution_url),
            ("EVOLUTION_INSTANCE", settings.evolution_instance),
            ("EVOLUTION_API_KEY", settings.evolution_api_key),
        )
        if not value
    ]
    if missing:
        why = (
            "; /webhooks/evolution refuses every call (503) without EVOLUTION_API_KEY"
            if "EVOLUTION_API_KEY" in missing
            else ""
        )
        return [
            Check(
                "Evolution API settings",
                "fail",
                f"not set: {', '.join(missing)}{why}",
                "set EVOLUTION_URL (e.g. http://127.0.0.1:8080), EVOLUTION_INSTANCE (the "
                "instance's name) and EVOLUTION_API_KEY (the instance's apikey, which its "
                "webhook calls carry)",
            )
        ]
    assert settings.evolution_url and settings.evolution_instance and settings.evolution_api_key
    checks = [Check("Evolution API settings", "pass", "EVOLUTION_URL, _INSTANCE, _API_KEY set")]
    if not probe:
        return checks
    url, instance = settings.evolution_url, settings.evolution_instance
    headers = {"apikey": settings.evolution_api_key}
    try:
        code, body = _get(f"{url}/instance/connectionState/{instance}", headers, timeout)
    except httpx.HTTPError as exc:
        checks.append(
            _unreachable("Evolution API", url, exc, "start Evolution API, or correct EVOLUTION_URL")
        )
        return checks
    state = body.get("instance") if isinstance(body, dict) else None
    if code in (401, 403):
        checks.append(
            Check(
                "Evolution API",
                "fail",
                f"Evolution API refused the apikey (HTTP {code})",
                "set EVOLUTION_API_KEY to the instance's apikey (or the global one)",
            )
        )
        return checks
    if code == 404:
        checks.append(
            Check(
                "Evolution API",
                "fail",
                f"Evolution API has no instance {instance!r}",
                "create it (POST /instance/create), or set EVOLUTION_INSTANCE to its name",
            )
        )
        return checks
    if code != 200 or not isinstance(state, dict):
        checks.append(
            Check(
                "Evolution API",
                "fail",
                f"GET /instance/connectionState/{instance} answered HTTP {code}, not a state",
                "is EVOLUTION_URL Evolution API's base URL?",
            )
        )
        return checks
    checks.append(Check("Evolution API", "pass", f"{url} answers"))
    connection = str(state.get("state") or "unknown")
    if connection == "open":
        checks.append(Check("Evolution connection", "pass", f"{instance!r} is open"))
    else:
        checks.append(
            Check(
                "Evolution connection",
                "warn" if connection == "connecting" else "fail",
                f"{instance!r} is {connection}: no messages arrive until it is open",
                f"connect it: GET /instance/connect/{instance} gives the QR code to scan with "
                "the WhatsApp of the groups' number",
            )
        )
    try:
        code, found = _get(f"{url}/settings/find/{instance}", headers, timeout)
    except httpx.HTTPError:
        return checks
    if code == 200 and isinstance(found, dict) and "groupsIgnore" in found:
        if found["groupsIgnore"]:
            checks.append(
                Check(
                    "Evolution groupsIgnore",
                    "fail",
                    f"{instance!r} ignores groups: no group message reaches the webhook",
                    f'turn it off: POST /settings/set/{instance} with "groupsIgnore": false',
                )
            )
        else:
            checks.append(Check("Evolution groupsIgnore", "pass", "off: group messages are sent"))
    return checks


def check_webhook_token(settings: Settings) -> Check:
    """The Go bridge fork's webhook calls can be told from anyone's."""
    if settings.webhook_token:
        return Check(
            "bridge webhook token", "pass", "WEBHOOK_TOKEN set: /webhooks/bridge checks it"
        )
    return Check(
        "bridge webhook token",
        "fail",
        "WEBHOOK_TOKEN is not set: /webhooks/bridge refuses every call (503)",
        "set WEBHOOK_TOKEN to a long random value (`openssl rand -hex 32`) and the same value "
        "as the Go bridge fork's webhook secret",
    )


def check_bridge_token(
    bridge_url: str, token: str | None, timeout: float = PROBE_TIMEOUT
) -> Check | None:
    """Does the bridge's API take our requests (BRIDGE_TOKEN)? None when it does not answer.

    Posts an empty request to /send: every bridge refuses it (400) without sending anything,
    after checking the token.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = httpx.post(f"{bridge_url}/send", json={}, headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return None
    if answer.status_code in (401, 403):
        if token is None:
            return Check(
                "bridge token",
                "fail",
                f"the bridge's API wants a token (HTTP {answer.status_code}): feedback is refused",
                "set BRIDGE_TOKEN to the bridge's token (`wa-monitor bridge`'s BRIDGE_TOKEN, "
                "the fork's API token)",
            )
        return Check(
            "bridge token",
            "fail",
            f"the bridge's API refuses BRIDGE_TOKEN (HTTP {answer.status_code})",
            "set BRIDGE_TOKEN to the token the bridge was started with",
        )
    sent = "BRIDGE_TOKEN accepted" if token else "no token needed"
    return Check("bridge token", "pass", f"the bridge's API takes requests ({sent})")


def inbox_checks(
    settings: Settings,
    store: ReviewStore,
    in_use: Mapping[str, Sequence[Project]],
    zone: tzinfo,
    *,
    now: datetime,
    setup_hints: bool = True,
) -> list[Check]:
    """Per webhook gateway in use: its last call, its session's state, each group's newest."""
    hours = WorkingHours.parse(settings.working_hours)
    working = hours.contains(now, zone)
    gateways = [g for g in INBOX_GATEWAYS if g in in_use]
    if not gateways:
        return []
    try:
        last = last_webhooks(store) if setup_hints else {}
        sessions = session_states(store)
        jids = [p.group_jid for g in gateways for p in in_use[g]]
        newest = inbox_newest(store, jids)
    except WaMonitorError as exc:
        return [Check("gateway inbox", "fail", str(exc), "run `wa-monitor db upgrade`")]
    checks: list[Check] = []
    for gateway in gateways:
        label = GATEWAY_LABELS[gateway]
        projects = in_use[gateway]
        times = [
            found.sent_at
            for p in projects
            if (found := newest.get(p.group_jid)) is not None and found.gateway == gateway
        ]
        checks.append(
            Check(
                f"source {label}",
                "pass",
                f"{len(projects)} group(s) through the inbox; newest message "
                f"{describe_age((now - max(times)).total_seconds())} ago"
                if times
                else f"{len(projects)} group(s) through the inbox; no message of them yet",
            )
        )
        if setup_hints:
            when = last.get(gateway)
            if when is None:
                checks.append(
                    Check(
                        f"{label}: last webhook",
                        "fail" if projects else "warn",
                        "no webhook call received yet",
                        webhook_setup(settings, gateway),
                    )
                )
            else:
                checks.append(
                    Check(
                        f"{label}: last webhook",
                        "pass",
                        f"received {describe_age((now - when).total_seconds())} ago",
                    )
                )
        wanted = {WAHA: settings.waha_session, EVOLUTION: settings.evolution_instance}.get(gateway)
        for state in sessions:
            if state.gateway != gateway or (wanted and state.session != wanted):
                continue
            age = describe_age((now - state.changed_at).total_seconds())
            working_states = WORKING_STATES.get(gateway, ())
            if state.status in working_states:
                checks.append(
                    Check(
                        f"{label}: session {state.session}",
                        "pass",
                        f"{state.status} (reported {age} ago)",
                    )
                )
            else:
                checks.append(
                    Check(
                        f"{label}: session {state.session}",
                        "warn",
                        f"{state.status} since {age} ago, as the gateway reported it: "
                        "messages do not arrive",
                        f"bring the session back to {' or '.join(working_states) or 'working'} "
                        f"(pair it again if WhatsApp logged it out)",
                    )
                )
        for project in projects:
            name = f"{label}: group of {project.name}"
            found = newest.get(project.group_jid)
            if found is None:
                checks.append(
                    Check(
                        name,
                        "warn",
                        f"{project.group_jid}: no message in the inbox yet",
                        "check the JID (`wa-monitor groups` lists the groups that arrived) and "
                        "that the gateway's number is in the group"
                        + (
                            "; Evolution's groupsIgnore must be off" if gateway == EVOLUTION else ""
                        ),
                    )
                )
                continue
            if found.gateway != gateway:
                checks.append(
                    Check(
                        name,
                        "warn",
                        f"{project.group_jid}: its messages arrive from {found.gateway}, "
                        f"the project reads {gateway}",
                        f"set `gateway: {found.gateway}` on {project.name} in the projects file, "
                        "or stop the other gateway's webhook",
                    )
                )
                continue
            silent = (now - found.sent_at).total_seconds()
            detail = f"{project.group_jid}: newest message {describe_age(silent)} ago"
            if silent > settings.stale_after and working:
                checks.append(
                    Check(
                        name,
                        "warn",
                        detail + f" (limit {describe_age(settings.stale_after)} during working "
                        "hours)",
                        f"is {label} connected and its number still in the group?",
                    )
                )
            else:
                checks.append(Check(name, "pass", detail))
    return checks


def bridge_folder(settings: Settings) -> Path | None:
    """The bridge's store folder: BRIDGE_STORE, else WHATSAPP_DB_PATH's folder."""
    if settings.bridge_store is not None:
        return settings.bridge_store
    return settings.whatsapp_db_path.parent if settings.whatsapp_db_path is not None else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process: it exists
    return True


def check_bridge_connection(settings: Settings, *, now: datetime | None = None) -> Check | None:
    """`wa-monitor bridge`'s connection as its status file tells it (None: another bridge,
    which writes none)."""
    found = bridge_connection(bridge_folder(settings))
    if found is None:
        return None
    now = now or datetime.now(UTC)
    since = f" since {describe_age((now - found.since).total_seconds())} ago" if found.since else ""
    detail = f"{found.state}{since} ({found.path})"
    if found.detail:
        detail += f": {found.detail}"
    if found.state in BRIDGE_DEAD_STATES:
        return Check(
            "bridge connection",
            "fail",
            detail,
            found.detail or "start it again: `systemctl restart wa-monitor-bridge@INSTANCE`",
        )
    if found.pid and not _alive(found.pid):
        return Check(
            "bridge connection",
            "fail",
            f"the bridge (pid {found.pid}) is not running; its last state: {detail}",
            "start it: `systemctl start wa-monitor-bridge@INSTANCE` (or `wa-monitor bridge run`)",
        )
    if found.state == "connected":
        return Check("bridge connection", "pass", detail)
    fix = "wait a minute; if it stays so, look at `journalctl -u wa-monitor-bridge@INSTANCE`"
    if found.state == "pairing":
        fix = "pair it: `wa-monitor bridge pair` (QR code) or `--phone NUMBER` (a code)"
        if found.pairing_failures:
            fix += (
                f"; {found.pairing_failures} failed attempt(s): WhatsApp locks pairing for a "
                "while after 5"
            )
    return Check("bridge connection", "warn", detail, fix)


def check_gateway_apis(
    settings: Settings, in_use: Mapping[str, Sequence[Project]], probe: bool
) -> list[Check]:
    """The settings and APIs of WAHA, Evolution API and the Go fork, as far as in use."""
    checks: list[Check] = []
    if WAHA in in_use:
        checks.extend(check_waha(settings, probe=probe))
    if EVOLUTION in in_use:
        checks.extend(check_evolution(settings, probe=probe))
    if BRIDGE_WEBHOOK in in_use:
        checks.append(check_webhook_token(settings))
    return checks


def run_doctor(
    config_path: Path,
    *,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
    probe_bridge_process: bool = True,
    probe_gateways: bool = True,
    unit_dir: Path = DEFAULT_UNIT_DIR,
) -> Report:
    """Every check, in the order an operator would do them by hand."""
    checks: list[Check] = []
    config_check, config = check_config(config_path)
    setting_checks, settings = check_settings(
        lambda: load_settings(environ, env_file),
        env_file,
        lambda settings: BRIDGE in gateways_in_use(settings, config),
    )
    checks.extend(setting_checks)
    checks.append(config_check)
    if settings is None:
        return Report(tuple(checks))
    in_use = gateways_in_use(settings, config)
    uses_bridge = BRIDGE in in_use
    checks.append(
        Check(
            "gateways",
            "pass",
            "; ".join(
                f"{GATEWAY_LABELS[g]}: "
                + (", ".join(p.name for p in projects) or f"no project (GATEWAY={g})")
                for g, projects in sorted(in_use.items())
            ),
        )
    )
    zone = config.zone if config is not None else ZoneInfo("UTC")
    now = now or datetime.now(UTC)
    try:
        store: ReviewStore | None = open_review_store(settings, purpose="read", check_schema=False)
    except WaMonitorError as exc:
        checks.append(Check("database", "fail", str(exc), "fix DATABASE_URL"))
        store = None
    photos: Check | None = None
    inbox: list[Check] = []
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
            inbox = inbox_checks(settings, store, in_use, zone, now=now)
    finally:
        if store is not None:
            store.dispose()
    checks.extend(c for c in ready.report.checks if uses_bridge or c.name not in BRIDGE_CHECKS)
    checks.append(check_media(settings))
    if photos is not None:
        checks.append(photos)
    checks.extend(check_gateway_apis(settings, in_use, probe_gateways))
    checks.extend(inbox)
    bridge_path = settings.whatsapp_db_path
    if uses_bridge and ready.bridge_readable and bridge_path is not None and config is not None:
        hours = WorkingHours.parse(settings.working_hours)
        bridge = BridgeStore(bridge_path, settings.whatsapp_store_path)
        try:
            checks.extend(check_groups(bridge, config, in_use[BRIDGE]))
            names = {p.group_jid: p.name for p in in_use[BRIDGE]}
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
    connection = check_bridge_connection(settings, now=now) if uses_bridge else None
    if connection is not None:
        checks.append(connection)
    if probe_bridge_process and (uses_bridge or BRIDGE_WEBHOOK in in_use):
        process = check_bridge_process(settings.bridge_url)
        checks.append(process)
        token = check_bridge_token(settings.bridge_url, settings.bridge_token)
        if process.ok and token is not None:
            checks.append(token)
    checks.append(check_log_file(settings))
    # The units run in the env file's folder (PREFIX/INSTANCE): relative paths are read there.
    base = env_file.absolute().parent if env_file is not None else None
    checks.extend(check_write_access(settings, config, config_path, unit_dir=unit_dir, base=base))
    return Report(tuple(checks))
