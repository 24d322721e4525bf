"""`wa-monitor bridge`: the WhatsApp bridge in Python (run, pair, status).

Registered on the `wa-monitor` group in cli/main.py. neonize (and the shared library it
loads) is imported only inside `run` and `pair`, so `wa-monitor --help` stays light.
"""

from __future__ import annotations

import json
import sys

import click

from wa_monitor.cli.console import handle_errors, out
from wa_monitor.cli.context import App, pass_app


@click.group("bridge")
def bridge() -> None:
    """The WhatsApp bridge in Python: writes messages.db, serves /api/send and /api/download."""


@bridge.command("run")
@pass_app
@handle_errors
def run(app: App) -> None:
    """Connect to WhatsApp and serve the API on BRIDGE_LISTEN (needs BRIDGE_TOKEN, a pairing)."""
    from wa_monitor.bridge.run import Runner
    from wa_monitor.core.logs import setup_logging

    setup_logging(app.settings)
    sys.exit(Runner(app.settings).start())


@bridge.command("pair")
@click.option(
    "--phone",
    metavar="NUMBER",
    help="Pair with a pairing code for this phone number (international, digits only) "
    "instead of a QR code.",
)
@pass_app
@handle_errors
def pair(app: App, phone: str | None) -> None:
    """Link this bridge to a WhatsApp number: a QR code to scan, or a pairing code."""
    from wa_monitor.bridge.run import Runner, print_qr
    from wa_monitor.core.errors import ConfigError
    from wa_monitor.core.logs import setup_logging

    number = None
    if phone is not None:
        number = phone.strip().lstrip("+").replace(" ", "")
        if not number.isdigit() or not 7 <= len(number) <= 15:
            raise ConfigError(
                [
                    f"--phone {phone!r}: give the number in international form, digits only "
                    "(e.g. 27821234567)"
                ]
            )
    setup_logging(app.settings)
    status = Runner(app.settings, pairing=True, phone=number, show_qr=print_qr).start()
    out.print("paired: start the bridge with `wa-monitor bridge run`")
    sys.exit(status)


@bridge.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status file as JSON.")
@pass_app
@handle_errors
def status(app: App, as_json: bool) -> None:
    """The bridge's connection state from its status file; exits 1 unless connected."""
    from wa_monitor.bridge.run import store_folder
    from wa_monitor.bridge.session import STATUS_FILE, read_status

    folder = store_folder(app.settings)
    found = read_status(folder)
    if found is None:
        out.print(f"{folder / STATUS_FILE}: no status yet (the bridge has not run here)")
        sys.exit(1)
    if as_json:
        out.print_json(json.dumps(found.as_json()))
    else:
        detail = f" — {found.detail}" if found.detail else ""
        account = f" as {found.account}" if found.account else ""
        out.print(
            f"bridge {found.state}{account} since {found.since} (PID {found.pid}, "
            f"updated {found.updated_at}){detail}",
            markup=False,
        )
        if found.pairing_failures:
            out.print(f"failed pairing attempts: {found.pairing_failures}", markup=False)
    sys.exit(0 if found.state == "connected" else 1)


COMMANDS: tuple[click.Command, ...] = (bridge,)
