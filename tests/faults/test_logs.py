"""Fault 7: the log file cannot be written (read-only directory, disk full)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults.bridgeio import post
from tests.faults.conftest import make_site
from tests.faults.support import PROJECT_NAMES, figure, wait_until

VELO = list(PROJECT_NAMES)[1]

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _read_only_log(tmp_path: Path) -> tuple[Path, str]:
    if os.geteuid() == 0:
        # root writes through file modes: use a directory nobody can create (sysfs).
        return Path("/sys/wa-monitor-logs/monitor.log"), "a directory under /sys"
    directory = tmp_path / "logs"
    directory.mkdir()
    directory.chmod(0o555)
    return directory / "monitor.log", "a directory of mode 0555"


@postgresql_only
@pytest.mark.parametrize("fault", ["read-only directory", "disk full"])
def test_service_keeps_monitoring_when_it_cannot_log(
    tmp_path: Path, db_url: str, fault: str
) -> None:
    if fault == "disk full":
        log_file, where = Path("/dev/full"), "/dev/full (every write fails with ENOSPC)"
    else:
        log_file, where = _read_only_log(tmp_path)
    site = make_site(tmp_path, db_url, None, None)
    post(site.messages_db, site.whatsapp_db, VELO, "DR40000001")
    store = site.store()
    process = site.start(LOG_FILE=str(log_file), LOG_MAX_BYTES="2048")
    try:
        wait_until(lambda: len(store.reviews()) == 1, 60, "the first drop", process=process)
        for n in range(2, 30):
            post(site.messages_db, site.whatsapp_db, VELO, f"DR400000{n:02d}")
        wait_until(lambda: len(store.reviews()) == 29, 60, "every drop", process=process)
        assert process.stop() == 0
        out = process.log()
    finally:
        process.ensure_dead()
        store.dispose()
    reports = [
        line
        for line in out.splitlines()
        if "cannot open the log file" in line or "cannot write the log file" in line
    ]
    figure(
        f"fault 7 {fault}: LOG_FILE in {where}: 29 drops recorded, exit 0, "
        f"{len(reports)} report(s) on stderr: {reports[0].split(' - ')[-1][:110]!r}"
        if reports
        else f"fault 7 {fault}: LOG_FILE in {where}: NOT REPORTED"
    )
    assert len(reports) == 1, reports
    assert "Traceback" not in out
    assert "Found drop: DR40000029" in out  # stderr still carries the log
