"""Prometheus metrics: the monitor's own (on METRICS_PORT) and the database's (dashboard)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wa_monitor.core.errors import WaMonitorError
from wa_monitor.monitor.scan import ScanSummary
from wa_monitor.store.heartbeats import outbox_depth, read_heartbeats
from wa_monitor.store.review_store import ReviewStore

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


class DatabaseCollector(Collector):
    """Metrics read from the review database at scrape time: for the dashboard's /metrics.

    The dashboard does not run the monitor, so it reports what the monitors wrote in
    their heartbeats, plus the outbox depth.
    """

    def __init__(self, store: ReviewStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_database_up", "1 when the review database answers.")
        try:
            beats = read_heartbeats(self.store)
            depth = outbox_depth(self.store)
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
            for group in status.get("groups") or []:
                if group.get("newest_at"):
                    newest = datetime.fromisoformat(group["newest_at"])
                    age.add_metric(
                        [instance, group["project"], group["jid"]],
                        (now - newest).total_seconds(),
                    )
        yield from (beat_age, last_scan, messages, drops, errors, skipped, untimed, age)


def database_registry(store: ReviewStore) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(store))
    return registry
