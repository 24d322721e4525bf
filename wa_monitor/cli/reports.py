"""`wa-monitor report`: the projects file's reports, delivered by hand, and their record.

Registered on the `wa-monitor` group in cli/main.py; the commands get the shared `App`
(settings, projects file) as the click context object.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from wa_monitor.cli.console import err, handle_errors, out
from wa_monitor.core import queue
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.report_config import ReportSpec
from wa_monitor.monitor.projects_edit import os_actor
from wa_monitor.reports import delivery
from wa_monitor.reports.destinations import Outbound
from wa_monitor.store import report_deliveries
from wa_monitor.web import queries as q
from wa_monitor.web.reports_api import sending_for

if TYPE_CHECKING:
    from wa_monitor.cli.context import App


@click.group("report")
def report() -> None:
    """The projects file's `reports:`, each delivered once per day to each destination."""


def _picked(config: ProjectsConfig, name: str | None, project: str | None) -> list[ReportSpec]:
    """The reports asked for (all, one by name, those of a project), else a ConfigError."""
    if not config.reports:
        raise ConfigError(
            [
                f"{config.path}: no reports are configured; add them under `reports:`, e.g. "
                "`reports: [{name: daily-sheet, what: daily-drops, format: xlsx, "
                "to: [{folder: /srv/reports}]}]`"
            ]
        )
    known = ", ".join(r.name for r in config.reports)
    reports = list(config.reports)
    if name is not None:
        reports = [r for r in reports if r.name == name]
        if not reports:
            raise ConfigError([f"no report named {name!r} in {config.path} (its reports: {known})"])
    if project is not None:
        if config.by_name(project) is None:
            names = ", ".join(p.name for p in config.projects) or "none"
            raise ConfigError([f"no project named {project!r} in {config.path} ({names})"])
        reports = [r for r in reports if r.project == project]
        if not reports:
            raise ConfigError(
                [f"no report of project {project!r} in {config.path} (its reports: {known})"]
            )
    return reports


@report.command("send")
@click.option("--report", "name", metavar="NAME", help="Only this report (default: every one).")
@click.option(
    "--project", metavar="NAME", help="Only the reports of this project (`project: NAME`)."
)
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="The day the reports are of (in the projects' timezone); not after today.",
)
@click.option("--force", is_flag=True, help="Deliver again where it was already delivered.")
@click.option(
    "--dry-run", is_flag=True, help="Build the reports and check their destinations; send nothing."
)
@click.pass_obj
@handle_errors
def send(
    app: App, name: str | None, project: str | None, day: datetime, force: bool, dry_run: bool
) -> None:
    """Deliver the reports of a day to their destinations, once each.

    Prints one line per report and destination: delivered, already delivered (when and
    by whom; --force sends it again), or failed and why. A failed delivery is tried
    again by the next send. Exits 1 when any delivery failed.
    """
    config = app.config()
    reports = _picked(config, name, project)
    when = day.date()
    today = datetime.now(UTC).astimezone(config.zone).date()
    if when > today:
        raise click.BadParameter(
            f"{when} is in the future (today is {today} in {config.timezone})",
            param_hint="--date",
        )
    hours = WorkingHours.parse(app.settings.working_hours or "always")
    view = q.QueueView(queue.clocks_for(config.projects, hours))
    with app.review_store() as store:
        outbound = Outbound.from_settings(app.settings)
        sending = sending_for(store, config, view, f"cli:{os_actor()}", outbound)
        outcomes = delivery.send(sending, reports, when, force=force, dry_run=dry_run)
    for outcome in outcomes:
        console = out if outcome.ok else err
        style = "green" if outcome.status == delivery.DELIVERED else "red" if not outcome.ok else ""
        status = f"[{style}]{outcome.status}[/]" if style else outcome.status
        console.print(
            f"{escape(outcome.report)} {outcome.period} → {escape(str(outcome.destination))}: "
            f"{status} ({escape(outcome.message)})",
            markup=True,
            soft_wrap=True,
        )
    failed = sum(1 for o in outcomes if not o.ok)
    if failed:
        err.print(f"{failed} of {len(outcomes)} deliveries failed; run the send again to retry")
        raise SystemExit(1)


@report.command("list")
@click.option("--report", "name", metavar="NAME", help="Only this report's deliveries.")
@click.option("--limit", default=30, show_default=True, help="How many deliveries to show.")
@click.pass_obj
@handle_errors
def list_reports(app: App, name: str | None, limit: int) -> None:
    """The configured reports, and the latest deliveries with their status and errors."""
    config = app.config()
    table = Table(title=f"{config.path}: {len(config.reports)} report(s)")
    for column in ("Report", "What", "Project", "Format", "When", "To"):
        table.add_column(column)
    for r in config.reports:
        to = ", ".join(str(d) for d in r.to)
        table.add_row(r.name, r.what, r.project or "all", r.format, str(r.when or ""), to)
    out.print(table)
    with app.review_store(purpose="read") as store:
        rows = report_deliveries.recent(store, report=name, limit=limit)
    from wa_monitor.core.times import shown  # times in the business zone, as everywhere

    sent = Table(title="Latest deliveries")
    columns = ("Report", "Period", "Destination", "Status", "Attempts", "Delivered", "By")
    for column in (*columns, "Last error"):
        sent.add_column(column)
    for d in rows:
        sent.add_row(
            d.report,
            d.period,
            d.destination,
            d.status,
            str(d.attempts),
            shown(d.delivered_at, config.zone),
            d.requested_by or "",
            d.last_error or "",
        )
    out.print(sent)


COMMANDS: tuple[click.Command, ...] = (report,)
