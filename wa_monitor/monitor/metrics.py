"""Prometheus metrics: the monitor's own (on METRICS_PORT) and the database's (dashboard)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, tzinfo

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wa_monitor.core.errors import WaMonitorError
from wa_monitor.core.queue import Clocks
from wa_monitor.monitor.scan import ScanSummary
from wa_monitor.store.heartbeats import outbox_depth, read_heartbeats
from wa_monitor.store.media_queue import STATUSES, Backlog, backlog
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import qa_photo_reviews

log = logging.getLogger("wa_monitor")

PREFIX = "wa_monitor"


class MonitorMetrics:
    """The metrics the running monitor updates, in a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            f"{PREFIX}_messages_scanned",
            "Messages of monitored groups read from the bridge store.",
            ["project"],
            registry=r,
        )
        self.drops = Counter(
            f"{PREFIX}_drops",
            "Drop posts recorded, by project and kind (new or resubmitted).",
            ["project", "kind"],
            registry=r,
        )
        self.rows_skipped = Counter(
            f"{PREFIX}_rows_skipped",
            "Rows of monitored groups skipped because they could not be used, by reason.",
            ["reason"],
            registry=r,
        )
        self.unreadable_times = Counter(
            f"{PREFIX}_rows_unreadable_time",
            "Messages naming a drop whose timestamp could not be read (recorded with the "
            "time they were first read).",
            registry=r,
        )
        self.scan_duration = Histogram(
            f"{PREFIX}_scan_duration_seconds",
            "Duration of a scan of the bridge store.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.errors = Counter(
            f"{PREFIX}_errors",
            "Errors by kind (bridge, database, config, ...).",
            ["kind"],
            registry=r,
        )
        self.last_scan = Gauge(
            f"{PREFIX}_last_scan_timestamp_seconds",
            "Unix time the last scan finished.",
            registry=r,
        )
        self.newest_message_age = Gauge(
            f"{PREFIX}_newest_message_age_seconds",
            "Age of the newest message of each monitored group.",
            ["project", "group_jid"],
            registry=r,
        )
        self.bridge_age = Gauge(
            f"{PREFIX}_bridge_store_age_seconds",
            "Seconds since messages.db last changed.",
            registry=r,
        )
        self.outbox = Gauge(
            f"{PREFIX}_feedback_outbox_pending",
            "Feedback messages waiting in the outbox.",
            registry=r,
        )
        self.reloads = Counter(
            f"{PREFIX}_config_reloads",
            "Projects file reloads by result (applied, rejected).",
            ["result"],
            registry=r,
        )
        self.healthy = Gauge(
            f"{PREFIX}_healthy", "1 when the monitor considers itself healthy.", registry=r
        )
        self.stale_groups = Gauge(
            f"{PREFIX}_stale_groups",
            "Monitored groups silent longer than STALE_AFTER in working hours.",
            registry=r,
        )
        self.media_photos = Gauge(
            f"{PREFIX}_media_photos",
            "Media rows of the monitored groups by fetch status (pending, available, failed, "
            "unavailable).",
            ["status"],
            registry=r,
        )
        self.media_oldest_pending = Gauge(
            f"{PREFIX}_media_oldest_pending_seconds",
            "How long ago the oldest photo still waiting to be fetched was posted (0: none).",
            registry=r,
        )
        self.media_fetches = Counter(
            f"{PREFIX}_media_fetches",
            "Photo fetches by outcome: fetched, reused (already stored), retry, failed, "
            "unavailable.",
            ["outcome"],
            registry=r,
        )

    def observe_media(self, queue: Backlog | None) -> None:
        """The fetch queue's counts, as `media_queue.backlog` read them."""
        if queue is None:
            return
        for status in STATUSES:
            self.media_photos.labels(status).set(queue.count(status))
        self.media_oldest_pending.set(queue.oldest_pending_age() or 0)

    def observe_fetches(self, outcomes: Mapping[str, int]) -> None:
        for outcome, count in outcomes.items():
            if count > 0:
                self.media_fetches.labels(outcome).inc(count)

    def observe_scan(
        self, summary: ScanSummary, duration: float, names: Mapping[str, str], at: datetime
    ) -> None:
        for jid, count in summary.messages_by_group.items():
            self.messages.labels(names.get(jid, jid)).inc(count)
        for project, count in summary.new.items():
            self.drops.labels(project, "new").inc(count)
        for project, count in summary.resubmitted.items():
            self.drops.labels(project, "resubmitted").inc(count)
        for reason, count in summary.skipped.items():
            self.rows_skipped.labels(reason).inc(count)
        if summary.unreadable_times:
            self.unreadable_times.inc(summary.unreadable_times)
        self.scan_duration.observe(duration)
        self.last_scan.set(at.timestamp())


# The review queue's clocks and the business zone, read at each scrape (a reloaded
# projects file counts from the next one).
QueueClocks = Callable[[], tuple[Clocks, tzinfo]]


def _no_clocks() -> tuple[Clocks, tzinfo]:
    return Clocks(), UTC


def review_queue(
    store: ReviewStore, clocks: Clocks, zone: tzinfo, now: datetime | None = None
) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """Drops waiting per (project, state), and overdue per project with a target.

    Two grouped queries (ix_qa_photo_reviews_state and ix_qa_photo_reviews_queue); drops
    of no project are counted under "".
    """
    r = qa_photo_reviews
    project = sa.func.coalesce(r.c.project, "")
    cutoffs = clocks.cutoffs(now or datetime.now(UTC), zone)
    waiting: dict[tuple[str, str], int] = {}
    overdue: dict[str, int] = {}
    with store.read() as conn:
        for name, state, count in conn.execute(
            sa.select(project, r.c.review_state, sa.func.count())
            .where(r.c.queue_rank <= 1)
            .group_by(project, r.c.review_state)
        ).all():
            waiting[(str(name), str(state))] = int(count)
        for name, cutoff in cutoffs.items():
            overdue[name] = int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        r.c.queue_rank == 0, r.c.project == name, r.c.waiting_since < cutoff
                    )
                ).scalar_one()
            )
    return waiting, overdue


class DatabaseCollector(Collector):
    """Metrics read from the review database at scrape time: for the dashboard's /metrics.

    The dashboard does not run the monitor, so it reports what the monitors wrote in
    their heartbeats, plus the outbox depth and the review queue (`clocks` say each
    project's working hours and target; without them nothing is overdue).
    """

    def __init__(self, store: ReviewStore, clocks: QueueClocks | None = None) -> None:
        self.store = store
        self.clocks = clocks or _no_clocks

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_database_up", "1 when the review database answers.")
        try:
            beats = read_heartbeats(self.store)
            depth = outbox_depth(self.store)
            media = backlog(self.store)
            waiting, overdue = review_queue(self.store, *self.clocks())
        except WaMonitorError as exc:
            log.warning("⚠️ metrics: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        outbox = GaugeMetricFamily(
            f"{PREFIX}_feedback_outbox_pending", "Feedback messages waiting in the outbox."
        )
        outbox.add_metric([], depth)
        yield outbox
        photos = GaugeMetricFamily(
            f"{PREFIX}_media_photos",
            "Media rows of the monitored groups by fetch status.",
            labels=["status"],
        )
        for state in STATUSES:
            photos.add_metric([state], media.count(state))
        yield photos
        oldest = GaugeMetricFamily(
            f"{PREFIX}_media_oldest_pending_seconds",
            "How long ago the oldest photo still waiting to be fetched was posted (0: none).",
        )
        oldest.add_metric([], media.oldest_pending_age() or 0)
        yield oldest
        yield from _queue_families(waiting, overdue)
        fetches = CounterMetricFamily(
            f"{PREFIX}_media_fetches",
            "Photo fetches of each monitor since it started, by outcome.",
            labels=["monitor", "outcome"],
        )
        now = datetime.now(UTC)
        beat_age = GaugeMetricFamily(
            f"{PREFIX}_heartbeat_age_seconds",
            "Seconds since each monitor's heartbeat.",
            labels=["monitor"],
        )
        last_scan = GaugeMetricFamily(
            f"{PREFIX}_last_scan_timestamp_seconds",
            "Unix time each monitor's last scan finished.",
            labels=["monitor"],
        )
        messages = CounterMetricFamily(
            f"{PREFIX}_messages_scanned",
            "Messages read by each monitor since it started.",
            labels=["monitor"],
        )
        drops = CounterMetricFamily(
            f"{PREFIX}_drops",
            "Drop posts recorded by each monitor since it started.",
            labels=["monitor", "project", "kind"],
        )
        errors = CounterMetricFamily(
            f"{PREFIX}_errors",
            "Errors of each monitor since it started.",
            labels=["monitor", "kind"],
        )
        skipped = CounterMetricFamily(
            f"{PREFIX}_rows_skipped",
            "Rows of monitored groups each monitor skipped since it started, by reason.",
            labels=["monitor", "reason"],
        )
        untimed = CounterMetricFamily(
            f"{PREFIX}_rows_unreadable_time",
            "Messages naming a drop with an unreadable timestamp, by monitor since it started.",
            labels=["monitor"],
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_newest_message_age_seconds",
            "Age of the newest message of each monitored group, as each monitor saw it.",
            labels=["monitor", "project", "group_jid"],
        )
        for beat in beats:
            instance = str(beat["instance"])
            counters = beat.get("counters") or {}
            status = beat.get("status") or {}
            beat_age.add_metric([instance], (now - beat["beat_at"]).total_seconds())
            if status.get("last_scan_at"):
                when = datetime.fromisoformat(status["last_scan_at"])
                last_scan.add_metric([instance], when.timestamp())
            messages.add_metric([instance], float(counters.get("messages", 0)))
            for kind in ("new", "resubmitted"):
                for project, count in (counters.get(kind) or {}).items():
                    drops.add_metric([instance, project, kind], float(count))
            for kind, count in (counters.get("errors") or {}).items():
                errors.add_metric([instance, kind], float(count))
            for reason, count in (counters.get("rows_skipped") or {}).items():
                skipped.add_metric([instance, reason], float(count))
            untimed.add_metric([instance], float(counters.get("rows_unreadable_time", 0)))
            for outcome, count in (counters.get("media_fetches") or {}).items():
                fetches.add_metric([instance, outcome], float(count))
            for group in status.get("groups") or []:
                if group.get("newest_at"):
                    newest = datetime.fromisoformat(group["newest_at"])
                    age.add_metric(
                        [instance, group["project"], group["jid"]],
                        (now - newest).total_seconds(),
                    )
        yield from (beat_age, last_scan, messages, drops, errors, skipped, untimed, age, fetches)


def _queue_families(
    waiting: Mapping[tuple[str, str], int], overdue: Mapping[str, int]
) -> Iterator[Metric]:
    reviews = GaugeMetricFamily(
        f"{PREFIX}_reviews_waiting",
        "Drops waiting, by project and review state (new, resubmitted, in_review: for a "
        "reviewer; needs_correction: for the installer).",
        labels=["project", "state"],
    )
    for (project, state), count in sorted(waiting.items()):
        reviews.add_metric([project, state], count)
    yield reviews
    late = GaugeMetricFamily(
        f"{PREFIX}_reviews_overdue",
        "Drops waiting for a reviewer longer than their project's review_target, in the "
        "project's working hours (projects with a target).",
        labels=["project"],
    )
    for project, count in sorted(overdue.items()):
        late.add_metric([project], count)
    yield late


def database_registry(store: ReviewStore, clocks: QueueClocks | None = None) -> CollectorRegistry:
    """The dashboard's /metrics; `clocks` gives the review queue's clocks and zone."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(store, clocks))
    return registry
