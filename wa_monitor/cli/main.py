"""The `wa-monitor` command."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from wa_monitor import __version__
from wa_monitor.cli.bridge import bridge as bridge_command
from wa_monitor.cli.console import err, handle_errors, out
from wa_monitor.cli.context import CONFIG_HELP, ENV_FILE_HELP, App, AppGroup, pass_app
from wa_monitor.cli.drops import COMMANDS as DROPS_COMMANDS
from wa_monitor.cli.ops import COMMANDS as OPS_COMMANDS
from wa_monitor.cli.reports import COMMANDS as REPORT_COMMANDS
from wa_monitor.cli.web import COMMANDS as WEB_COMMANDS
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.early_signals import release_early_signals
from wa_monitor.core.logs import setup_logging
from wa_monitor.core.settings import SETTINGS
from wa_monitor.monitor.scan import Monitor, ScanSummary
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.review_store import ReviewStore

log = logging.getLogger("wa_monitor")


@click.group(cls=AppGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    help=CONFIG_HELP,
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help=ENV_FILE_HELP,
)
@click.version_option(__version__, prog_name="wa-monitor")
@click.pass_context
def main(ctx: click.Context, config_option: str | None, env_file: Path | None) -> None:
    """WA Monitor: drop numbers from WhatsApp project groups into the QA review database."""
    if ctx.invoked_subcommand != "run":
        release_early_signals()  # only `run` makes a SIGTERM during start-up a clean stop
    ctx.obj = App(config_option, env_file)


# -- configuration ----------------------------------------------------------------------


@main.command("check-config")
@pass_app
@handle_errors
def check_config(app: App) -> None:
    """Validate the projects file and list the enabled projects."""
    config = app.config()
    table = Table(title=f"{config.path}: {len(config.enabled)} enabled project(s)")
    for column in ("Project", "Group JID", "Pattern", "Since", "Description"):
        table.add_column(column)
    for p in config.enabled:
        since = p.since.isoformat() if p.since else ""
        table.add_row(p.name, p.group_jid, p.pattern.source, since, p.description)
    out.print(table)
    disabled = [p.name for p in config.projects if not p.enabled]
    if disabled:
        out.print(f"disabled (validated, not monitored): {', '.join(disabled)}")
    out.print(f"time zone: {config.timezone}")


@main.command("settings")
@pass_app
@handle_errors
def show_settings(app: App) -> None:
    """List every setting with its default and current value (secrets masked)."""
    env = app.settings.environ
    table = Table(title="Settings (environment, or --env-file)")
    for column in ("Name", "Default", "Current", "Meaning"):
        table.add_column(column)
    for s in SETTINGS:
        table.add_row(s.name, s.default or "", s.shown(env), s.help)
    out.print(table)


# -- database ---------------------------------------------------------------------------


@main.group("db")
def db() -> None:
    """The review database schema."""


@db.command("upgrade")
@pass_app
@handle_errors
def db_upgrade(app: App) -> None:
    """Create the review database schema, or upgrade it to this version's."""
    store = app.review_store(check_schema=False)
    try:
        before, after = store.upgrade()
    finally:
        store.dispose()
    if before == after:
        out.print(f"{store.masked_url}: schema already at revision {after}")
    else:
        out.print(f"{store.masked_url}: schema upgraded from {before or 'nothing'} to {after}")


@db.command("current")
@pass_app
@handle_errors
def db_current(app: App) -> None:
    """Show the schema revision of the review database."""
    store = app.review_store(check_schema=False)
    try:
        out.print(f"{store.masked_url}: revision {store.schema_revision() or 'none'}")
        store.check_schema()
    finally:
        store.dispose()


# -- scanning ---------------------------------------------------------------------------


@contextmanager
def monitor_for(app: App) -> Iterator[Monitor[BridgeStore]]:
    config = app.config()
    bridge = app.bridge()
    store = app.review_store(pre_ping=False)
    try:
        yield Monitor(config, bridge, store)
    finally:
        bridge.close()
        store.dispose()


@main.command("scan")
@click.option("--once", is_flag=True, help="One pass over all enabled projects (the only mode).")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a TTY).")
@pass_app
@handle_errors
def scan(app: App, once: bool, progress: bool | None) -> None:
    """Scan the bridge store once: record new drops and resubmissions, print a summary."""
    setup_logging(app.settings, stream=False, zone=app.zone())
    show_bar = err.is_terminal if progress is None else progress
    with monitor_for(app) as monitor:
        if show_bar:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("scanning messages.db (rowids)", total=None)
                summary = monitor.scan(
                    progress=lambda done, total: bar.update(task, completed=done, total=total)
                )
        else:
            summary = monitor.scan()
        print_summary(monitor.config, summary)


def print_summary(config: ProjectsConfig, summary: ScanSummary) -> None:
    table = Table(title="Scan summary")
    for column in ("Project", "Messages read", "New drops", "Resubmissions"):
        table.add_column(column, justify="left" if column == "Project" else "right")
    for p in config.enabled:
        table.add_row(
            p.name,
            str(summary.messages_by_group.get(p.group_jid, 0)),
            str(summary.new.get(p.name, 0)),
            str(summary.resubmitted.get(p.name, 0)),
        )
    table.add_row(
        "Total",
        str(summary.messages),
        str(sum(summary.new.values())),
        str(sum(summary.resubmitted.values())),
        style="bold",
    )
    out.print(table)
    if summary.rescanned:
        out.print(f"re-created store noticed: rescanned {len(summary.rescanned)} group(s)")


def install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("🛑 %s received: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def log_startup(config: ProjectsConfig, interval: float) -> None:
    log.info("🎯 MONITORING %d PROJECTS:", len(config.enabled))
    for p in config.enabled:
        log.info("   • %s: %s", p.name, p.group_jid)
    log.info("✅ Drop monitor started (scan interval: %gs)", interval)


@main.command("run")
@pass_app
@handle_errors
def run(app: App) -> None:
    """The service: scan as messages arrive (at least every SCAN_INTERVAL); stop on SIGTERM."""
    from wa_monitor.monitor.service import run_service

    # Reloads the projects file on change and SIGHUP, writes the heartbeat, serves
    # METRICS_PORT, notifies systemd (READY, WATCHDOG); see wa_monitor/monitor/service.py.
    # The projects file (and the logs' business zone) is read by the service, once a
    # signal during start-up ends it cleanly.
    setup_logging(app.settings)
    run_service(app.settings, app.config_path)


# -- the bridge store -------------------------------------------------------------------


@main.command("groups")
@pass_app
@handle_errors
def groups(app: App) -> None:
    """List each source's groups (the bridge store's, the webhook gateways' inbox) and the
    project monitoring each one."""
    from wa_monitor.cli.ops import print_groups

    print_groups(app)


# -- simulation -------------------------------------------------------------------------

# Up to this many messages, `simulate` writes the photo files too (about 20 ms a photo).
SIMULATE_PHOTOS_UP_TO = 20_000


@main.command("simulate")
@click.option(
    "--messages-db",
    type=click.Path(path_type=Path),
    help="The bridge-format messages.db to append to (default: WHATSAPP_DB_PATH).",
)
@click.option(
    "--whatsapp-db",
    type=click.Path(path_type=Path),
    help="The whatsapp.db for contacts and LIDs (default: whatsapp.db beside messages.db).",
)
@click.option("--messages", "count", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--groups",
    "n_groups",
    type=click.IntRange(min=0),
    default=0,
    help="Simulate this many groups instead of the document's four.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--variants", is_flag=True, help="Include 6/7-digit, spaced and lower-case drops.")
@click.option("--live", is_flag=True, help="Write one event at a time, like the bridge.")
@click.option(
    "--every",
    type=click.FloatRange(min=0.0),
    default=1.0,
    show_default=True,
    help="Seconds between live events.",
)
@click.option(
    "--photos/--no-photos",
    default=None,
    help="Write a real file behind every photo, video and document row (drawn photos of "
    f"the QA steps, barcodes on steps 8 and 9). Default: on up to {SIMULATE_PHOTOS_UP_TO} "
    "messages (and live), off for bigger stores (rows only).",
)
@click.option(
    "--media-origin",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where those files go, as the phones hold them (default: media-origin beside the "
    "store folder, outside it); the simulated bridge's /api/download copies them from here.",
)
@pass_app
@handle_errors
def simulate(
    app: App,
    messages_db: Path | None,
    whatsapp_db: Path | None,
    count: int,
    n_groups: int,
    seed: int,
    variants: bool,
    live: bool,
    every: float,
    photos: bool | None,
    media_origin: Path | None,
) -> None:
    """Append realistic traffic to a bridge-format store: chatter, drops, photos, resubmissions."""
    from wa_monitor.sim import (
        ALL_DROP_FORMATS,
        DEFAULT_DROP_FORMATS,
        DEMO_GROUPS,
        LiveSimulator,
        MediaMaker,
        StoreWriter,
        bench_groups,
        generate_store,
    )

    target = messages_db or app.settings.require_bridge()
    contacts = whatsapp_db or target.with_name("whatsapp.db")
    groups = bench_groups(n_groups, seed=seed) if n_groups else list(DEMO_GROUPS)
    formats = ALL_DROP_FORMATS if variants else DEFAULT_DROP_FORMATS
    if photos is None:
        photos = live or count <= SIMULATE_PHOTOS_UP_TO
    origin = (media_origin or target.absolute().parent.parent / "media-origin") if photos else None
    if not live:
        with Progress(
            "media files",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=origin is None or not err.is_terminal,
        ) as progress:
            # About one message in ten is a media row (generate_store's media_rate).
            task = progress.add_task("photos", total=max(1, round(count * 0.10)))
            truth = generate_store(
                target,
                contacts,
                groups=groups,
                n_messages=count,
                seed=seed,
                drop_formats=formats,
                media_origin=origin,
                on_media=lambda done: progress.update(task, completed=done),
            )
        posts = sum(d.posts for d in truth.drops.values())
        out.print(
            f"{target}: appended {count} messages to {len(groups)} groups "
            f"({len(truth.drops)} drops in {posts} posts)"
        )
        if origin is not None:
            out.print(f"{len(truth.photos)} media files in {origin}")
        return
    stop = threading.Event()
    install_stop_handlers(stop)
    written = 0
    with StoreWriter(target, contacts) as writer:
        media = MediaMaker(origin, seed=seed, zone=writer.zone) if origin is not None else None
        simulator = LiveSimulator(writer, groups, seed=seed, drop_formats=formats, media=media)
        while written < count and not stop.is_set():
            event = simulator.step()
            written += 1
            drops = f" {', '.join(event.drop_numbers)}" if event.drop_numbers else ""
            out.print(f"{event.group.name}: {event.kind}{drops}")
            stop.wait(every)


@main.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("wa-monitor-demo"),
    show_default=True,
    help="Where the demo keeps its bridge store, config and review database.",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--every",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between simulated bridge events.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Dashboard port on 127.0.0.1.",
)
@click.option("--no-dashboard", is_flag=True, help="Only the simulated bridge and the monitor.")
@click.option(
    "--gateway",
    type=click.Choice(["bridge", "waha", "evolution", "bridge-webhook"]),
    default="bridge",
    show_default=True,
    help="How the simulated groups' messages reach the monitor: the bridge's store, or the "
    "webhooks of WAHA, Evolution API or the Go bridge fork posted to the dashboard.",
)
@click.pass_context
@handle_errors
def demo(
    ctx: click.Context,
    directory: Path,
    seed: int,
    every: float,
    duration: float | None,
    port: int,
    no_dashboard: bool,
    gateway: str,
) -> None:
    """Zero set-up: a simulated bridge with four project groups, the monitor, the dashboard."""
    from zoneinfo import ZoneInfo

    from wa_monitor.core.settings import settings_from
    from wa_monitor.ops.demo import (
        DEMO_TIMEZONE,
        SOURCE_NAMES,
        Dashboard,
        DemoPaths,
        check_gateway,
        run_demo,
    )

    check_gateway(gateway, not no_dashboard)

    setup_logging(settings_from({"LOG_LEVEL": "INFO"}), zone=ZoneInfo(DEMO_TIMEZONE))
    stop = threading.Event()
    install_stop_handlers(stop)

    def announce(paths: DemoPaths, dashboard: Dashboard | None) -> None:
        out.print(f"[bold]WA Monitor demo[/] in {paths.root}/ (Ctrl-C to stop)", markup=True)
        if dashboard is not None:
            out.print(f"  dashboard        [bold]{dashboard.url}[/]", markup=True)
            out.print(f"  demo login       {dashboard.username} / {dashboard.password}")
        if gateway == "bridge":
            out.print(f"  source           bridge store {paths.messages_db}")
        else:
            route = dashboard.url.removesuffix("/wa-monitor") if dashboard is not None else ""
            out.print(
                f"  source           {SOURCE_NAMES[gateway]} → {route}/webhooks/"
                f"{'bridge' if gateway == 'bridge-webhook' else gateway} (the phones' "
                f"messages simulated in {paths.messages_db})"
            )
        out.print(f"  projects file    {paths.config}")
        out.print(f"  review database  {paths.database_url}")
        out.print(f"  other commands:  wa-monitor --env-file {paths.env_file} status (or groups…)")

    demo_paths = run_demo(
        directory,
        seed=seed,
        every=every,
        duration=duration,
        stop=stop,
        announce=announce,
        dashboard_port=None if no_dashboard else port,
        gateway=gateway,
    )
    store = ReviewStore(demo_paths.database_url)
    try:
        reviews = store.reviews()
    finally:
        store.dispose()
    resubmitted = sum(1 for r in reviews if r["resubmitted"])
    out.print(
        f"demo stopped: {len(reviews)} reviews ({resubmitted} resubmitted) in {store.url}, "
        f"from the {SOURCE_NAMES[gateway]}"
    )


# The dashboard's commands (serve, users, tokens) live with the web package; the
# operations commands (status, doctor, compare, replay, projects, install-service)
# in ops_commands; the drop lists (drops import-list, list-info, reconcile) in drops.py.
for _command in (*WEB_COMMANDS, *OPS_COMMANDS, *DROPS_COMMANDS, *REPORT_COMMANDS):
    main.add_command(_command)
main.add_command(bridge_command)  # `wa-monitor bridge` (cli/bridge.py)


def entrypoint() -> None:
    main(prog_name="wa-monitor")
