"""The dashboard follows the projects file as `wa-monitor run` does.

`wa-monitor projects add` (or an editor, or a deploy) changes the file while `serve`
runs; the dashboard must send feedback to a new project's group without a restart. The
file is watched by the service's own ConfigWatcher (same settling, same validation, same
one log line for a bad edit), so a bad edit keeps the last good config here too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import ConfigError
from wa_monitor.monitor.service import ConfigWatcher

log = logging.getLogger("wa_monitor.web")


class ProjectsFollower:
    """Checks the projects file every `interval` seconds and hands a new valid config to
    `apply`."""

    def __init__(
        self,
        path: Path,
        config: ProjectsConfig,
        apply: Callable[[ProjectsConfig], None],
        *,
        interval: float = 0.5,
    ) -> None:
        self.path = path
        self.apply = apply
        self.interval = interval
        self._watcher = ConfigWatcher(path, config)
        self._lock = threading.Lock()

    def check(self) -> bool:
        """Apply the file if it changed into a valid config; True when one was applied."""
        with self._lock:
            before = self._watcher.config
            try:
                changed = self._watcher.poll()
            except ConfigError:
                return False  # the watcher said why; the last good config stays
        if changed is None:
            return False
        config = changed[0]
        self.apply(config)
        old = {p.name for p in before.enabled}
        new = {p.name for p in config.enabled}
        log.info(
            "🔁 projects file %s reloaded by the dashboard: %d project(s)%s%s",
            self.path,
            len(config.enabled),
            f", added {', '.join(sorted(new - old))}" if new - old else "",
            f", stopped {', '.join(sorted(old - new))}" if old - new else "",
        )
        return True

    def run(self, stop: threading.Event) -> None:
        """Check until `stop` is set; a failing check is logged, never ends the loop."""
        while not stop.wait(self.interval):
            try:
                self.check()
            except Exception:
                log.exception("checking the projects file %s failed", self.path)
