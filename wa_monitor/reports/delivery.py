"""Sending reports: each (report, period, destination) delivered once, each outcome recorded.

`send` delivers the reports of a day (by hand, the front end's sync); the scheduler
calls `send_period` with a report's due period and the destinations still to serve.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

from wa_monitor.core.errors import WaMonitorError
from wa_monitor.core.report_config import Destination, Period, ReportSpec
from wa_monitor.reports import destinations
from wa_monitor.reports.build import Built, ReportInputs, build
from wa_monitor.reports.destinations import Outbound
from wa_monitor.store import report_deliveries as records
from wa_monitor.store.review_store import ReviewStore

log = logging.getLogger("wa_monitor.reports")

DELIVERED = "delivered"
ALREADY = "already delivered"
IN_PROGRESS = "being delivered"
FAILED = "failed"
WOULD_DELIVER = "would be delivered"  # a dry run's


@dataclass(frozen=True)
class Outcome:
    """What became of one report at one destination."""

    report: str
    period: str
    destination: Destination
    status: str  # DELIVERED | ALREADY | IN_PROGRESS | FAILED | WOULD_DELIVER
    message: str  # the file, when it went (before), or why it failed
    attempts: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def line(self) -> str:
        """One line for an operator: `daily-sheet 2026-01-15 → folder /srv/x: delivered …`."""
        return f"{self.report} {self.period} → {self.destination}: {self.status} ({self.message})"

    def as_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "period": self.period,
            "destination": str(self.destination),
            "status": self.status,
            "message": self.message,
            "attempts": self.attempts,
            "file": self.details.get("file"),
        }


@dataclass(frozen=True)
class Sending:
    """What a send needs besides the reports: where rows come from, who asked, the zone."""

    store: ReviewStore
    inputs: ReportInputs
    zone: tzinfo
    labels: Mapping[str, str]
    requested_by: str
    outbound: Outbound = field(default_factory=Outbound)


def send(
    sending: Sending,
    reports: Sequence[ReportSpec],
    day: date,
    *,
    force: bool = False,
    dry_run: bool = False,
    counts: Sequence[tuple[str | None, int]] | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """Deliver each report for `day` to each of its destinations, once.

    `force` delivers again what was delivered; `dry_run` builds each report and checks
    its destinations without sending or recording anything. A report is built only when
    some destination takes it, at most once per call.
    """
    outcomes: list[Outcome] = []
    for spec in reports:
        period = spec.period_of(day)
        of_day = counts if period.first == period.last else None
        outcomes += send_period(
            sending, spec, period, force=force, dry_run=dry_run, counts=of_day, now=now
        )
    return outcomes


def send_period(
    sending: Sending,
    spec: ReportSpec,
    period: Period,
    *,
    only: Sequence[Destination] | None = None,
    force: bool = False,
    dry_run: bool = False,
    counts: Sequence[tuple[str | None, int]] | None = None,
    now: datetime | None = None,
) -> list[Outcome]:
    """Deliver one report's `period` to its destinations (`only`: these of them), once."""
    outcomes: list[Outcome] = []
    built: Built | None = None
    for destination in spec.to if only is None else only:
        try:
            outcome, built = _one(
                sending, spec, destination, period, built, force, dry_run, counts, now
            )
        except WaMonitorError as exc:  # the review database, while claiming or recording
            outcome = Outcome(spec.name, period.name, destination, FAILED, str(exc))
            log.error("report %s: %s", spec.name, outcome.line())
        outcomes.append(outcome)
    return outcomes


def _one(
    sending: Sending,
    spec: ReportSpec,
    destination: Destination,
    day: Period,
    built: Built | None,
    force: bool,
    dry_run: bool,
    counts: Sequence[tuple[str | None, int]] | None,
    now: datetime | None,
) -> tuple[Outcome, Built | None]:
    period = day.name
    if dry_run:
        built = built or _build(sending, spec, day, counts)
        problem = destinations.check(destination, sending.outbound)
        before = records.get(sending.store, spec.name, period, destination.key)
        if problem:
            return Outcome(spec.name, period, destination, FAILED, problem), built
        if before is not None and before.status == records.DELIVERED and not force:
            return _seen(sending, spec, period, destination, before, ALREADY), built
        message = f"{built.file_name}, {built.rows} row(s), {len(built.content):,} bytes"
        return Outcome(spec.name, period, destination, WOULD_DELIVER, message), built
    claim = records.claim(
        sending.store,
        spec.name,
        period,
        destination.key,
        requested_by=sending.requested_by,
        force=force,
        now=now,
    )
    found = claim.delivery
    if not claim.mine:
        status = ALREADY if found.status == records.DELIVERED else IN_PROGRESS
        return _seen(sending, spec, period, destination, found, status), built
    try:
        built = built or _build(sending, spec, day, counts)
        details = {
            **built.details(),
            **destinations.deliver(destination, built, sending.outbound),
        }
    except WaMonitorError as exc:
        done = records.failed(sending.store, claim, str(exc))
        log.warning("report %s %s → %s failed: %s", spec.name, period, destination, exc)
        return Outcome(spec.name, period, destination, FAILED, str(exc), done.attempts), built
    except BaseException as exc:
        # Not left pending until it goes stale: the next request may try at once.
        records.failed(sending.store, claim, f"interrupted: {type(exc).__name__}: {exc}")
        raise
    done = records.delivered(sending.store, claim, details, now=now)
    message = f"{built.file_name}, {built.rows} row(s)"
    log.info(
        "report %s %s → %s delivered: %s (attempt %d, by %s)",
        spec.name,
        period,
        destination,
        message,
        done.attempts,
        sending.requested_by,
    )
    return Outcome(
        spec.name, period, destination, DELIVERED, message, done.attempts, details
    ), built


def _build(
    sending: Sending,
    spec: ReportSpec,
    day: Period,
    counts: Sequence[tuple[str | None, int]] | None,
) -> Built:
    return build(spec, day, sending.inputs, zone=sending.zone, labels=sending.labels, counts=counts)


def _seen(
    sending: Sending,
    spec: ReportSpec,
    period: str,
    destination: Destination,
    found: records.Delivery,
    status: str,
) -> Outcome:
    who = f" by {found.requested_by}" if found.requested_by else ""
    if status == ALREADY and found.delivered_at is not None:
        when = found.delivered_at.astimezone(sending.zone).isoformat(timespec="seconds")
        message = f"{found.details.get('file', 'sent')} at {when}{who}; force sends it again"
    elif status == ALREADY:
        message = f"{found.details.get('file', 'sent')}{who}; force sends it again"
    else:
        message = f"another request{who} is sending it now"
    return Outcome(spec.name, period, destination, status, message, found.attempts, found.details)
