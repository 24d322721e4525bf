"""`wa-monitor drops`: each project's list of valid drop numbers, and the day's reconciliation.

Registered on the `wa-monitor` group in cli/main.py; the commands get the shared `App`
(settings, projects file) as the click context object.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from wa_monitor.cli.console import err, handle_errors, out
from wa_monitor.core.config import Project, ProjectsConfig
from wa_monitor.core.drop_lists import DropList, read_drop_list
from wa_monitor.core.drop_lists import Progress as ReadProgress
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.times import shown
from wa_monitor.monitor.projects_edit import os_actor
from wa_monitor.store import drop_lists

if TYPE_CHECKING:
    from wa_monitor.cli.context import App


def project_of(config: ProjectsConfig, name: str) -> Project:
    """The projects file's project called `name`, else a ConfigError naming the known ones."""
    project = config.by_name(name)
    if project is None:
        known = ", ".join(p.name for p in config.projects) or "none"
        raise ConfigError([f"no project named {name!r} in {config.path} (its projects: {known})"])
    return project


@contextmanager
def _bar(path: Path, show: bool) -> Iterator[ReadProgress | None]:
    """A progress bar over the file's bytes (rows for a workbook) while it is read."""
    if not show:
        yield None
        return
    with Progress(
        f"reading {escape(path.name)}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("read", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def read_list(
    path: Path, project: Project, column: str | None, sheet: str | None, progress: bool | None
) -> DropList:
    show = err.is_terminal if progress is None else progress
    with _bar(path, show) as report:
        return read_drop_list(path, project.pattern, column=column, sheet=sheet, progress=report)


def _print_left_out(found: DropList) -> None:
    if found.rejected_count:
        err.print(f"[yellow]skipped:[/] {escape(found.rejected_text())}", soft_wrap=True)
    if found.duplicates:
        out.print(f"{found.duplicates} repeated number(s) counted once")


def _actor() -> str:
    return f"cli:{os_actor()}"


@click.group("drops")
def drops() -> None:
    """Each project's list of valid drop numbers (from the client's spreadsheet).

    With a list, a posted number that is not on it is recorded as invalid: kept and
    shown, never counted as a drop (and answered in the group when the project sets
    auto_reply_invalid: true).
    """


_FILE = click.argument("file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE")
_COLUMN = click.option(
    "--column",
    metavar="HEADER",
    help='The drop number column\'s header, e.g. "Drop Number" (case and spaces ignored; '
    "default: the first header like drop, drop number, dr).",
)
_SHEET = click.option("--sheet", metavar="NAME", help="The XLSX sheet (default: the first).")
_PROGRESS = click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a TTY)."
)


@drops.command("import-list")
@click.option("--project", "project_name", required=True, metavar="NAME", help="The project.")
@_FILE
@_COLUMN
@_SHEET
@_PROGRESS
@click.pass_obj
@handle_errors
def import_list(
    app: App,
    project_name: str,
    file: Path,
    column: str | None,
    sheet: str | None,
    progress: bool | None,
) -> None:
    """Replace a project's list with the drop numbers of FILE (CSV or XLSX).

    The whole list is replaced in one transaction, and the project's drops are judged
    again: prints how many numbers were added and removed, and the cells skipped.
    """
    project = project_of(app.config(), project_name)
    found = read_list(file, project, column, sheet, progress)
    with app.review_store() as store:
        result = drop_lists.replace(
            store, project.name, found.numbers, actor=_actor(), filename=file.name
        )
    where = f"column {found.column!r}" if found.column else "a file without headers"
    out.print(
        f"{escape(project.name)}: {result.total} drop numbers from {escape(file.name)} "
        f"({escape(where)}): {result.added} added, {result.removed} removed"
    )
    if result.changed:
        out.print(f"{result.changed} drop(s) of {escape(project.name)} changed validity")
    _print_left_out(found)


@drops.command("list-info")
@click.pass_obj
@handle_errors
def list_info(app: App) -> None:
    """Each project's list: its size and its latest import."""
    config = app.config()
    with app.review_store(purpose="read") as store:
        infos = {i.project: i for i in drop_lists.info(store)}
    table = Table(title="Drop lists")
    for heading in ("Project", "Numbers", "Imported", "By", "File"):
        table.add_column(heading, justify="right" if heading == "Numbers" else "left")
    configured = [p.name for p in config.projects]
    names = configured + sorted(set(infos) - set(configured))  # a list of a removed project
    zone = config.zone
    for name in names:
        info = infos.get(name)
        if info is None or info.total == 0:
            table.add_row(escape(name), "-", "no list: every number is valid", "", "")
            continue
        when = shown(info.imported_at, zone)
        table.add_row(
            escape(name),
            str(info.total),
            when,
            escape(info.imported_by or ""),
            escape(info.filename or ""),
        )
    out.print(table)


@drops.command("reconcile")
@click.option("--project", "project_name", required=True, metavar="NAME", help="The project.")
@_FILE
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="The day the client's list is of (default: today, in the projects' timezone).",
)
@_COLUMN
@_SHEET
@_PROGRESS
@click.pass_obj
@handle_errors
def reconcile(
    app: App,
    project_name: str,
    file: Path,
    day: datetime | None,
    column: str | None,
    sheet: str | None,
    progress: bool | None,
) -> None:
    """Compare the client's list of a day (FILE) with what the group posted.

    Shows side by side the numbers on the list that were never posted, and the drops
    posted that day that are not on the list. Nothing is changed.
    """
    config = app.config()
    project = project_of(config, project_name)
    found = read_list(file, project, column, sheet, progress)
    when: date = day.date() if day else datetime.now(UTC).astimezone(config.zone).date()
    with app.review_store(purpose="read") as store:
        result = drop_lists.reconcile(store, project.name, found.numbers, when, config.zone)
    table = Table(title=f"{project.name} on {when.isoformat()}: {len(found.numbers)} listed")
    table.add_column(f"On the list, never posted ({len(result.not_posted)})")
    table.add_column(f"Posted that day, not on the list ({len(result.not_listed)})")
    for left, right in zip_longest(result.not_posted, result.not_listed, fillvalue=""):
        table.add_row(left, right)
    out.print(table)
    if not result.not_posted and not result.not_listed:
        out.print("the list and the group agree")
    _print_left_out(found)


COMMANDS: tuple[click.Command, ...] = (drops,)
