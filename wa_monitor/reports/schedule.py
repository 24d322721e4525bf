"""The scheduler: each report with a `when:` delivered once per period when it falls due,
failed deliveries retried with backoff, and the alerts judged, on one timer.

It keeps no state of its own: report_deliveries says what went (its unique claim decides
between two schedulers), alert_states what each alert last said. So a restart, or a
second dashboard, sends nothing twice; a period missed while the process was down is
delivered when it comes back (the latest due period only).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import WaMonitorError
from wa_monitor.core.report_config import Destination, Period, ReportSpec
from wa_monitor.core.settings import Settings
from wa_monitor.reports import alerts, delivery
from wa_monitor.reports.destinations import Outbound
from wa_monitor.store import report_deliveries as records
from wa_monitor.store.review_store import ReviewStore

log = logging.getLogger("wa_monitor.reports")

# Waits after a failed delivery's 1st, 2nd, … attempt; the last one repeats.
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
)
INTERVAL = 30.0  # seconds between passes


@dataclass(frozen=True)
class Due:
    """A report's period that falls due, and the destinations still to serve."""

    spec: ReportSpec
    period: Period
    due_at: datetime
    to: tuple[Destination, ...]


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    outcomes: tuple[delivery.Outcome, ...] = ()
    told: tuple[alerts.Told, ...] = ()
    findings: tuple[alerts.Finding, ...] = field(default=(), repr=False)


def wait_after(attempts: int, backoff: Sequence[timedelta] = BACKOFF) -> timedelta:
    """How long a delivery that failed `attempts` times waits before the next."""
    return backoff[min(max(attempts, 1), len(backoff)) - 1]


def due(
    store: ReviewStore,
    config: ProjectsConfig,
    now: datetime,
    backoff: Sequence[timedelta] = BACKOFF,
) -> list[Due]:
    """Each scheduled report's latest due period, with the destinations that take it now:
    never tried, failed and past its backoff, or left pending by a stopped process."""
    found: list[Due] = []
    for spec in config.reports:
        if spec.when is None:
            continue
        period, due_at = spec.when.latest_due(now, config.zone)
        ready: list[Destination] = []
        for destination in spec.to:
            record = records.get(store, spec.name, period.name, destination.key)
            if record is None:
                ready.append(destination)
            elif record.status == records.FAILED:
                tried = record.claimed_at or due_at
                if now - tried >= wait_after(record.attempts, backoff):
                    ready.append(destination)
            elif record.status == records.PENDING:
                claimed = record.claimed_at
                if claimed is None or now - claimed > records.STALE_AFTER:
                    ready.append(destination)
        if ready:
            found.append(Due(spec, period, due_at, tuple(ready)))
    return found


class Scheduler:
    """Delivers due reports and tells alerts, a pass every `interval` seconds.

    `config` answers the projects file in force (it may be reloaded); `sending` builds
    what a delivery reads its rows through (the web layer's view of the database).
    """

    def __init__(
        self,
        store: ReviewStore,
        settings: Settings,
        config: Callable[[], ProjectsConfig],
        sending: Callable[[ProjectsConfig, str], delivery.Sending],
        *,
        outbound: Outbound | None = None,
        backoff: Sequence[timedelta] = BACKOFF,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self.config = config
        self.sending = sending
        self.outbound = outbound or Outbound.from_settings(settings)
        self.backoff = tuple(backoff)
        self.clock = clock
        self.by = f"scheduler:{settings.instance}"

    def tick(self, now: datetime | None = None) -> Pass:
        """One pass: the due reports, then the alerts (which see this pass's failures)."""
        now = now or self.clock()
        config = self.config()
        outcomes: list[delivery.Outcome] = []
        if any(r.when is not None for r in config.reports):
            sending = replace(self.sending(config, self.by), outbound=self.outbound)
            for item in due(self.store, config, now, self.backoff):
                late = now - item.due_at
                if late > timedelta(minutes=5):
                    log.info(
                        "report %s %s: due at %s, delivered late (the service was down)",
                        item.spec.name,
                        item.period,
                        item.due_at.isoformat(timespec="minutes"),
                    )
                outcomes += delivery.send_period(
                    sending, item.spec, item.period, only=item.to, now=now
                )
        rules = config.alerts
        if rules is None or not rules.to:
            return Pass(tuple(outcomes))
        findings = alerts.judge(rules, alerts.read(self.store, self.settings, config, now=now))
        told = alerts.tell(
            self.store,
            rules,
            findings,
            outbound=self.outbound,
            zone=config.zone,
            instance=self.settings.instance,
            now=now,
        )
        return Pass(tuple(outcomes), tuple(told), tuple(findings))

    def run(self, stop: threading.Event, interval: float = INTERVAL) -> None:
        """A pass at once, then one every `interval` until `stop` is set; a failing pass is
        logged, the next one runs."""
        log.info("📬 Report scheduler started (every %gs)", interval)
        while True:
            started = time.monotonic()
            try:
                self.tick()
            except WaMonitorError as exc:
                log.error("report scheduler: %s; trying again in %gs", exc, interval)
            except Exception:
                log.exception("report scheduler: unexpected error; trying again in %gs", interval)
            if stop.wait(max(0.0, interval - (time.monotonic() - started))):
                return
