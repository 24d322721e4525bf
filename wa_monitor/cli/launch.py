"""The first code `wa-monitor` runs: SIGTERM, SIGINT and SIGHUP are heard from here on.

The signals are caught before the command is imported (see `wa_monitor.core.early_signals`),
so one sent while click, SQLAlchemy and FastAPI load is kept instead of ending the process.
"""

from __future__ import annotations

from wa_monitor.core.early_signals import catch_early_signals


def main() -> None:
    """The `wa-monitor` command."""
    catch_early_signals()
    from wa_monitor.cli.main import entrypoint

    entrypoint()
