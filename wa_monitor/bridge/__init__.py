"""`wa-monitor bridge`: a WhatsApp bridge in Python (neonize), writing the bridge's store.

neonize is imported here, once and quietly: its import runs `uname -a` through pipes it
never closes nor waits for, and the ResourceWarnings that leaves (errors under the test
suite's warning filter) say nothing about this program, so those two children are
reaped here. The shared library neonize bundles loads at this import: only the
`wa-monitor bridge` commands import this package, and only inside the command.
"""

from __future__ import annotations

import subprocess
import warnings


def _import_neonize() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        import neonize.proto.Neonize_pb2  # type: ignore[import-untyped, unused-ignore]  # noqa: F401

        _reap_uname()  # inside the filter: the pipes are closed (and warned of) right here


def _reap_uname() -> None:
    """subprocess keeps a Popen dropped while running in a private list, to reap it (and
    close its pipe, with a warning) at some later call: done now instead."""
    active: list[subprocess.Popen[bytes]] = getattr(subprocess, "_active", None) or []
    for child in [p for p in active if getattr(p, "args", None) == "uname -a"]:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            continue
        active.remove(child)


_import_neonize()
