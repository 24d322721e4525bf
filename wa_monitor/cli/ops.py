"""Operations commands: status, doctor, compare, replay, projects, install-service.

Registered on the `wa-monitor` group at the end of cli.py. They get the shared `App`
(settings, projects file) as the click context object.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from wa_monitor.cli.console import err, handle_errors, out
from wa_monitor.core import times
from wa_monitor.core.errors import (
    ConfigError,
    ForeignSchemaError,
    SharedDatabaseError,
    WaMonitorError,
)
from wa_monitor.monitor.health import Report

if TYPE_CHECKING:
    from wa_monitor.cli.context import App

_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, zone: tzinfo, now: datetime | None = None) -> datetime:
    """`24h`, `7d`, `30m`, `2w` ago, or an ISO date / date-time (local to `zone`)."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.fullmatch(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            [f"{text!r} is not a time: write 24h, 7d, 2025-11-09 or 2025-11-09T08:00"]
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def print_report(report: Report, *, title: str) -> None:
    marks = {"pass": "[green]PASS[/]", "warn": "[yellow]WARN[/]", "fail": "[bold red]FAIL[/]"}
    out.print(f"[bold]{escape(title)}[/]")
    for check in report.checks:
        line = f"{marks[check.status]}  {escape(check.name)}: {escape(check.detail)}"
        if check.fix and check.status != "pass":
            line += f"\n      [dim]fix:[/] {escape(check.fix)}"
        out.print(line, soft_wrap=True)
    failed = sum(1 for c in report.checks if c.status == "fail")
    warned = len(report.warnings)
    verdict = "[green]healthy[/]" if report.healthy else "[bold red]unhealthy[/]"
    out.print(f"{verdict}: {failed} failed, {warned} warning(s), {len(report.checks)} checks")


def _zone(app: App) -> tzinfo:
    return app.zone()


# -- status and doctor --------------------------------------------------------------------


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--instance", help="Whose heartbeat to judge (default: this one's, else freshest).")
@click.pass_obj
@handle_errors
def status(app: App, as_json: bool, instance: str | None) -> None:
    """Is the monitor healthy? Exits 1 when not (heartbeat, database, each source: the
    bridge store, the webhook gateways' inbox and sessions)."""
    from datetime import UTC, datetime

    from wa_monitor.core.gateways import BRIDGE
    from wa_monitor.monitor.health import Check, check_photos, live_groups, readiness
    from wa_monitor.ops.doctor import (
        BRIDGE_CHECKS,
        check_bridge_connection,
        gateways_in_use,
        inbox_checks,
    )

    settings = app.settings
    zone = _zone(app)
    try:
        config = app.config()
    except WaMonitorError:
        config = None
    in_use = gateways_in_use(settings, config)
    uses_bridge = BRIDGE in in_use
    now = datetime.now(UTC)
    store = app.review_store(purpose="read", check_schema=False)
    inbox: list[Check] = []
    try:
        try:
            store.check_schema()
        except ForeignSchemaError:
            raise  # not a state the monitor can be in: say what it is, exit 2
        except WaMonitorError:
            pass  # unreachable or behind: reported as checks below
        ready = readiness(settings, store, zone, instance=instance or settings.instance, now=now)
        photos = None
        if all(c.ok for c in ready.report.checks if c.name in ("database", "schema")):
            photos = check_photos(store, ready.beat)
            inbox = inbox_checks(settings, store, in_use, zone, now=now, setup_hints=False)
    finally:
        store.dispose()
    checks = [c for c in ready.report.checks if uses_bridge or c.name not in BRIDGE_CHECKS]
    if photos is not None:
        checks.append(photos[0])
    beat = ready.beat
    if uses_bridge:
        connection = check_bridge_connection(settings, now=now)
        if connection is not None:
            checks.append(connection)
    if uses_bridge and ready.bridge_readable and config is not None:
        names = {p.group_jid: p.name for p in in_use[BRIDGE]}
        checks.extend(live_groups(settings, names, zone))
    checks.extend(inbox)
    report = Report(tuple(checks))
    if as_json:
        data = report.as_dict()
        if photos is not None and photos[1] is not None:
            data["photos"] = photos[1].as_dict()
        if beat is not None:
            data["heartbeat"] = {
                "instance": beat["instance"],
                "beat_at": beat["beat_at"].isoformat(),
                "counters": beat.get("counters"),
                "status": beat.get("status"),
            }
        out.print_json(json.dumps(data, default=str))
    else:
        print_report(report, title=f"WA Monitor status ({settings.env_name or 'no env set'})")
        if beat is not None:
            out.print(f"last heartbeat: {times.shown(beat['beat_at'], zone, seconds=True)}")
        if beat is not None and beat.get("counters"):
            c = beat["counters"]
            out.print(
                f"since start: {c.get('scans', 0)} scans, {c.get('messages', 0)} messages, "
                f"{sum((c.get('new') or {}).values())} new drops, "
                f"{sum((c.get('resubmitted') or {}).values())} resubmissions, "
                f"{sum((c.get('errors') or {}).values())} errors"
            )
            skipped = c.get("rows_skipped") or {}
            if skipped or c.get("rows_unreadable_time"):
                reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
                out.print(
                    f"odd bridge rows: {sum(skipped.values())} skipped"
                    f"{f' ({reasons})' if reasons else ''}, "
                    f"{c.get('rows_unreadable_time', 0)} with an unreadable timestamp "
                    "(recorded at the time first read); see the log's ⚠️ row lines"
                )
    sys.exit(0 if report.healthy else 1)


@click.command("doctor")
@click.option(
    "--skip-bridge-process", is_flag=True, help="Do not probe the bridge's HTTP port (BRIDGE_URL)."
)
@click.option(
    "--skip-gateway-apis",
    is_flag=True,
    help="Do not call WAHA's or Evolution API's API (WAHA_URL, EVOLUTION_URL).",
)
@click.option(
    "--unit-dir",
    default="/etc/systemd/system",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where install-service put the units (their write access is checked).",
)
@click.pass_obj
@handle_errors
def doctor(app: App, skip_bridge_process: bool, skip_gateway_apis: bool, unit_dir: Path) -> None:
    """Run the troubleshooting checks; one PASS/FAIL line each, with the fix."""
    from wa_monitor.core.config import resolve_config_path
    from wa_monitor.core.settings import load_settings
    from wa_monitor.ops.doctor import run_doctor

    try:
        environ = load_settings(env_file=app.env_file).environ
    except WaMonitorError:
        environ = {}
    path = resolve_config_path(app.config_option, environ)
    report = run_doctor(
        path,
        env_file=app.env_file,
        probe_bridge_process=not skip_bridge_process,
        probe_gateways=not skip_gateway_apis,
        unit_dir=unit_dir,
    )
    print_report(report, title="WA Monitor doctor")
    sys.exit(0 if report.healthy else 1)


# -- compare and replay -------------------------------------------------------------------


@click.command("compare")
@click.option("--a", "a_env", required=True, type=click.Path(path_type=Path), help="Env file A.")
@click.option("--b", "b_env", required=True, type=click.Path(path_type=Path), help="Env file B.")
@click.option("--since", help="Only messages from then on: 24h, 7d, 2025-11-09, ISO time.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option("--only-differences", is_flag=True, help="List only the submissions that differ.")
@handle_errors
def compare_command(
    a_env: Path, b_env: Path, since: str | None, as_json: bool, only_differences: bool
) -> None:
    """Compare what two environments (prod, dev) recorded for the groups both monitor.

    Exits 1 when they differ.
    """
    from wa_monitor.ops.compare import compare, load_side

    a = load_side(a_env.parent.name or "A", a_env)
    b = load_side(b_env.parent.name or "B", b_env)
    if a.label == b.label:
        a, b = load_side("A", a_env), load_side("B", b_env)
    start = parse_when(since, a.config.zone) if since else None
    result = compare(a, b, start)
    if as_json:
        out.print_json(json.dumps(result.as_dict(), default=str))
        sys.exit(1 if result.differences else 0)
    zone = a.config.zone
    out.print(
        f"A = {a.label} ({a_env}, {a.settings.masked_database_url})\n"
        f"B = {b.label} ({b_env}, {b.settings.masked_database_url})"
        + (f"\nsince {times.shown(start, zone)}" if start else "")
    )
    if result.same_database:
        out.print("[yellow]note:[/] A and B use the same review database; they cannot differ")
    for label, jids in ((a.label, result.only_a_groups), (b.label, result.only_b_groups)):
        if jids:
            out.print(f"monitored only by {label}: {', '.join(jids)}")
    if not result.shared:
        out.print("no group is monitored by both")
    for jid, (name_a, name_b) in result.shared.items():
        lines = result.lines.get(jid, [])
        names = name_a if name_a == name_b else f"{name_a} / {name_b}"
        table = Table(title=f"{names} ({jid})")
        for column in ("Drop", "Message", "Time", a.label, b.label, "Verdict"):
            table.add_column(column)
        shown = 0
        for line in lines:
            if line.verdict == "same" and only_differences:
                continue
            shown += 1
            seen = line.a or line.b
            assert seen is not None
            verdict = {
                "same": "same",
                "only_a": f"only in {a.label}",
                "only_b": f"only in {b.label}",
                "differs": "differs: " + "; ".join(line.differences),
            }[line.verdict]
            table.add_row(
                line.key[2],
                line.key[1],
                times.shown(seen.message_time, zone),
                line.a.kind if line.a else "—",
                line.b.kind if line.b else "—",
                verdict,
            )
        same = sum(1 for x in lines if x.verdict == "same")
        if shown:
            out.print(table)
        out.print(
            f"{names}: {len(lines)} submission(s), {same} identical, {len(lines) - same} differ"
        )
    out.print(
        f"total: {result.count('same')} identical, {result.count('only_a')} only in {a.label}, "
        f"{result.count('only_b')} only in {b.label}, {result.count('differs')} differ"
    )
    sys.exit(1 if result.differences else 0)


@click.command("replay")
@click.option("--since", required=True, help="From: 24h, 7d, 2025-11-09, ISO time (local zone).")
@click.option("--until", help="Up to (exclusive), same forms as --since.")
@click.option("--project", "projects", multiple=True, help="Only this project (repeatable).")
@click.option("--dry-run", is_flag=True, help="Report what would be recorded; write nothing.")
@click.option(
    "--record",
    is_flag=True,
    help="Record what the report lists, as the monitor would (audited; a rerun adds nothing).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
@handle_errors
def replay_command(
    app: App,
    since: str,
    until: str | None,
    projects: tuple[str, ...],
    dry_run: bool,
    record: bool,
    as_json: bool,
) -> None:
    """Run the current detection over past messages; report, or record, what it finds.

    A scan starts after its cursor, so drops a changed pattern now finds in older
    messages are recorded only by `replay --record`.
    """
    from wa_monitor.monitor.projects_edit import os_actor
    from wa_monitor.ops.replay import record as record_posts
    from wa_monitor.ops.replay import replay

    if dry_run == record:
        raise ConfigError(
            [
                "give --dry-run to see what the current detection finds in past messages, "
                "or --record to record it (a scan starts after its cursor: it never "
                "records these)"
            ]
        )
    config = app.config()
    unknown = [p for p in projects if config.by_name(p) is None]
    if unknown:
        raise ConfigError([f"no project named {', '.join(map(repr, unknown))} in {config.path}"])
    zone = config.zone
    start = parse_when(since, zone)
    end = parse_when(until, zone) if until else None
    bridge = app.bridge()
    store = app.review_store()
    recorded = None
    try:
        result = replay(config, bridge, store, start, end, projects=list(projects) or None)
        if record:
            recorded = record_posts(config, store, result, actor=os_actor())
    finally:
        bridge.close()
        store.dispose()
    if as_json:
        data = result.as_dict()
        if recorded is not None:
            data["recorded"] = {
                "new": recorded.count("new"),
                "resubmission": recorded.count("resubmission"),
                "audited": recorded.audited,
            }
        out.print_json(json.dumps(data, default=str))
        return
    window = times.shown(start, zone) + (f" to {times.shown(end, zone)}" if end else " to now")
    what = "recorded" if record else "dry run, nothing written"
    table = Table(title=f"Replay ({what}): messages {window} ({zone})")
    columns = ("Project", "Messages in store", "Drop posts", "Already recorded", "Would add new")
    for column in (*columns, "Would add resubmission", "Recorded, not detected now"):
        table.add_column(column, justify="left" if column == "Project" else "right")
    for project, row in result.per_project().items():
        table.add_row(
            project,
            str(row["messages"]),
            str(row["detected"]),
            str(row["already"]),
            str(row["new"]),
            str(row["resubmission"]),
            str(row["not_detected"]),
        )
    out.print(table)
    verb = "recorded" if recorded is not None else "would record"
    events = recorded.events if recorded is not None else result.would_record
    for event in sorted(events, key=lambda e: (e.post.time, e.post.drop_number)):
        p = event.post
        out.print(
            f"{verb} {event.kind}: {p.drop_number} in {p.project} "
            f"({times.shown(p.time, zone)}, message {p.message_id}, {p.sender_name})"
        )
    for missing in result.not_detected:
        out.print(
            f"recorded but not detected now: {missing['drop_number']} in {missing['project']} "
            f"({times.shown(missing['message_time'], zone)}, message {missing['message_id']})"
        )
    if recorded is not None:
        out.print(
            f"recorded {recorded.count('new')} new, {recorded.count('resubmission')} "
            "resubmission(s) as the monitor would; "
            + (
                "audited in the review database; the monitor links their photos at its next round"
                if recorded.audited
                else "nothing was left to record"
            )
        )
    elif result.would_record:
        out.print(
            "a scan starts after its cursor and will not record these; record them with "
            "the same options and --record instead of --dry-run"
        )
    elif not result.not_detected:
        out.print("the current code agrees with what is recorded")


# -- projects -----------------------------------------------------------------------------


@click.group("projects")
def projects() -> None:
    """List, add, disable and enable projects without a restart (the service reloads)."""


def _audit_store(app: App) -> Any:
    """The database the edit is audited in, if it can be; dev is refused prod's (exit 2)."""
    try:
        store = app.review_store()
    except SharedDatabaseError:
        raise  # a misconfigured environment, not a database that is down: change nothing
    except WaMonitorError as exc:
        err.print(f"[yellow]warning:[/] not audited in the database: {escape(str(exc))}")
        return None
    return store


def _report_edit(result: Any, what: str) -> None:
    if not result.diff:
        out.print(f"{result.path}: nothing to change ({what})")
        return
    out.print(f"{result.path}: {what}")
    if result.audited:
        out.print("recorded in the audit log; the running service applies it at its next scan")
    else:
        out.print(
            f"[yellow]not audited[/] ({escape(result.audit_problem)}); the service records the "
            "change when it reloads the file"
        )


@projects.command("list")
@click.pass_obj
@handle_errors
def projects_list(app: App) -> None:
    """The projects of the projects file, enabled or not."""
    config = app.config()
    table = Table(title=f"{config.path}")
    for column in ("Project", "Enabled", "Group JID", "Description"):
        table.add_column(column)
    for p in config.projects:
        table.add_row(p.name, "yes" if p.enabled else "no", p.group_jid, p.description)
    out.print(table)


def _field_options(command: Any) -> Any:
    """`projects add`'s options: one per field of the projects file that adding asks for."""
    from wa_monitor.core.config import PROJECT_FIELDS

    for spec in reversed([f for f in PROJECT_FIELDS if f.added]):
        if spec.kind == "flag":
            flags = f"{spec.option}/--{spec.negative}" if spec.negative else spec.option
            command = click.option(flags, default=spec.default, help=spec.help)(command)
        elif spec.kind == "jid":
            # Either the JID or the group's name, so neither option is required by click.
            command = click.option("--group-name", help="Or the group's name in the bridge store.")(
                command
            )
            command = click.option(spec.option, help=spec.help)(command)
        else:
            required = spec.added == "required"
            command = click.option(spec.option, required=required, help=spec.help)(command)
    return command


@projects.command("add")
@_field_options
@click.pass_obj
@handle_errors
def projects_add(app: App, /, group_name: str | None, **fields: Any) -> None:
    """Add a project; the running service starts monitoring it at its next scan."""
    from wa_monitor.monitor.projects_edit import add_project, os_actor, resolve_group

    name: str = fields.pop("name")
    group_jid: str | None = fields.pop("group_jid")
    description: str = fields.pop("description") or ""
    if bool(group_jid) == bool(group_name):
        raise ConfigError(["give exactly one of --group-jid and --group-name"])
    if group_name:
        bridge = app.bridge()
        try:
            group = resolve_group(bridge, group_name)
        finally:
            bridge.close()
        group_jid = group.jid
        description = description or group.name or name
        out.print(f"group {group_name!r} is {group.jid} ({group.messages} messages)")
    assert group_jid is not None
    store = _audit_store(app)
    try:
        result = add_project(
            app.config_path,
            name=name,
            group_jid=group_jid,
            description=description or name,
            actor=os_actor(),
            source="cli",
            store=store,
            **{key: value for key, value in fields.items() if value is not None},
        )
    finally:
        if store is not None:
            store.dispose()
    _report_edit(result, f"added project {name!r} ({group_jid})")


def _toggle(app: App, name: str, enabled: bool) -> None:
    from wa_monitor.monitor.projects_edit import os_actor, set_enabled

    store = _audit_store(app)
    try:
        result = set_enabled(
            app.config_path, name, enabled, actor=os_actor(), source="cli", store=store
        )
    finally:
        if store is not None:
            store.dispose()
    _report_edit(result, f"{'enabled' if enabled else 'disabled'} project {name!r}")


@projects.command("disable")
@click.argument("name")
@click.pass_obj
@handle_errors
def projects_disable(app: App, name: str) -> None:
    """Stop monitoring a project (kept in the file, `enabled: false`)."""
    _toggle(app, name, False)


@projects.command("enable")
@click.argument("name")
@click.pass_obj
@handle_errors
def projects_enable(app: App, name: str) -> None:
    """Monitor a disabled project again."""
    _toggle(app, name, True)


@projects.command("history")
@click.option("--limit", default=20, show_default=True)
@click.pass_obj
@handle_errors
def projects_history(app: App, limit: int) -> None:
    """The audit log of changes to the projects file: when, who, what."""
    from wa_monitor.monitor.projects_edit import audit_rows

    store = app.review_store()
    try:
        rows = audit_rows(store, app.config_path, limit)
    finally:
        store.dispose()
    zone = app.zone()
    for row in rows:
        when = times.shown(row["at"], zone, seconds=True)
        out.print(f"[bold]{when} {escape(row['actor'])} ({escape(row['source'])})[/]")
        out.print(escape(row["diff"] or ""), end="")
    if not rows:
        out.print("no recorded changes")


# -- install-service ----------------------------------------------------------------------


@click.command("install-service")
@click.option(
    "--env",
    "env",
    required=True,
    help="The instance: prod, dev, a company's name (lower-case letters, digits, '-').",
)
@click.option("--dry-run", is_flag=True, help="Print the units and the commands; change nothing.")
@click.option("--prefix", default="/opt/wa-monitor", show_default=True, type=click.Path())
@click.option("--user", default="wa-monitor", show_default=True, help="The service user.")
@click.option("--executable", help="The wa-monitor program (default: the one running).")
@click.option(
    "--bridge-store",
    default="/opt/velo-test-monitor/services/whatsapp-bridge/store",
    show_default=True,
    help="The bridge's store directory (read-only for the service).",
)
@click.option("--unit-dir", default="/etc/systemd/system", show_default=True, type=click.Path())
@click.option("--no-start", is_flag=True, help="Write the units only; do not run systemctl.")
@handle_errors
def install_service(
    env: str,
    dry_run: bool,
    prefix: str,
    user: str,
    executable: str | None,
    bridge_store: str,
    unit_dir: str,
    no_start: bool,
) -> None:
    """Install the monitor's and the dashboard's units and start both for instance ENV.

    Writes wa-monitor@.service and wa-monitor-web@.service, and for ENV a drop-in each
    granting write access to what PREFIX/ENV/.env and its projects file need.
    """
    import shutil

    from wa_monitor.ops.environments import UnitOptions, check_instance, install, install_plan

    check_instance(env)
    running = Path(sys.argv[0])
    this = str(running.absolute()) if running.name == "wa-monitor" and running.exists() else None
    program = executable or this or shutil.which("wa-monitor") or f"{prefix}/venv/bin/wa-monitor"
    options = UnitOptions(
        prefix=Path(prefix),
        user=user,
        group=user,
        executable=str(Path(program).absolute()),
        bridge_store=Path(bridge_store),
    )
    plan = install_plan(env, Path(unit_dir), options)
    for warning in plan.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    if dry_run:
        for path, text in plan.files.items():
            out.print(f"# {path}", markup=False)
            out.print(text, markup=False, end="")
        out.print("# then:", markup=False)
        for command in plan.commands:
            out.print("#   " + " ".join(command), markup=False)
        return
    for line in install(plan, run_commands=not no_start):
        out.print(line)
    out.print(
        f"check it: systemctl status wa-monitor@{env} wa-monitor-web@{env}; "
        f"wa-monitor --env-file {Path(prefix) / env / '.env'} doctor"
    )


# -- groups -------------------------------------------------------------------------------


def _inbox_groups(app: App, needed: bool) -> list[Any] | None:
    """The inbox's groups; None when there is no inbox to read and no project needs one."""
    from wa_monitor.core.errors import ReviewDatabaseError
    from wa_monitor.web.health_panel_queries import inbox_groups

    try:
        store = app.review_store(purpose="read", check_schema=needed)
    except WaMonitorError:
        if needed:
            raise
        return None
    try:
        return inbox_groups(store)
    except ReviewDatabaseError:
        if needed:
            raise
        return None
    finally:
        store.dispose()


def print_groups(app: App) -> None:
    """`wa-monitor groups`: each source's groups, its gateway, and who monitors each."""
    from wa_monitor.core.config import ProjectsConfig
    from wa_monitor.core.gateways import BRIDGE, INBOX_GATEWAYS, gateway_of
    from wa_monitor.sources.bridge import GroupInfo
    from wa_monitor.web.health_panel_queries import GATEWAY_LABELS, projects_by_gateway

    settings = app.settings
    config: ProjectsConfig | None
    try:
        config = app.config()
    except WaMonitorError:
        config = None
    zone = _zone(app)
    projects = config.projects if config is not None else ()
    in_use = projects_by_gateway([p for p in projects if p.enabled], settings.gateway)
    by_jid = {p.group_jid: p for p in projects}

    def shown(when: datetime | None) -> str:
        return when.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if when else ""

    def monitored(gateway: str, jid: str) -> str:
        project = by_jid.get(jid)
        if project is None:
            return "not monitored: add it with `wa-monitor projects add`"
        name = project.name + ("" if project.enabled else " (disabled)")
        its = gateway_of(project.gateway, settings.gateway)
        if its != gateway:
            return f"{name} reads it from {GATEWAY_LABELS[its]}, not here"
        return f"monitored by {name}"

    rows: list[tuple[str, str, str, str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    names: dict[str, str] = {}
    bridge_groups: list[GroupInfo] = []
    titles: list[str] = []
    if settings.whatsapp_db_path is not None or in_use.get(BRIDGE):
        try:
            bridge = app.bridge()
        except WaMonitorError:
            if in_use.get(BRIDGE):
                raise
            err.print(
                f"[yellow]warning:[/] the bridge store {settings.whatsapp_db_path} cannot be "
                "read; no project uses it (listing the inbox only)",
                soft_wrap=True,
            )
        else:
            try:
                bridge_groups = bridge.groups()
            finally:
                bridge.close()
            titles.append(str(bridge.messages_db))
    for g in bridge_groups:
        names[g.jid] = g.name or ""
        seen.add((BRIDGE, g.jid))
        rows.append(
            (
                GATEWAY_LABELS[BRIDGE],
                g.jid,
                g.name or "",
                str(g.messages),
                shown(g.last_message),
                monitored(BRIDGE, g.jid),
            )
        )
    needed = any(in_use.get(gateway) for gateway in INBOX_GATEWAYS)
    inbox = _inbox_groups(app, needed)
    if inbox is not None:
        titles.append("the webhook gateways' inbox")
        for i in inbox:
            seen.add((i.gateway, i.chat_jid))
            rows.append(
                (
                    GATEWAY_LABELS.get(i.gateway, i.gateway),
                    i.chat_jid,
                    names.get(i.chat_jid, ""),
                    str(i.messages),
                    shown(i.last_sent_at),
                    monitored(i.gateway, i.chat_jid),
                )
            )
    table = Table(title="Groups in " + (" and ".join(titles) or "no source"))
    for column in ("Gateway", "Group JID", "Name", "Messages", "Last message", "Project"):
        table.add_column(column, justify="right" if column == "Messages" else "left")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)
    if not rows:
        out.print("no group chats in any source yet: is the gateway paired and in the groups?")
    for gateway, its in sorted(in_use.items()):
        for project in its:
            if (gateway, project.group_jid) in seen:
                continue
            where = "the bridge store" if gateway == BRIDGE else f"the inbox from {gateway}"
            out.print(
                f"{escape(project.name)} ({gateway}): {project.group_jid} has no message in "
                f"{where} yet; check the JID and that the gateway's number is in the group"
                + (
                    "" if gateway == BRIDGE else ", and the gateway's webhook (`wa-monitor doctor`)"
                ),
                soft_wrap=True,
            )


COMMANDS: tuple[click.Command, ...] = (
    status,
    doctor,
    compare_command,
    replay_command,
    projects,
    install_service,
)
