"""The monitor's loop tells its hooks what failed while polling the source, then retries."""

from __future__ import annotations

import threading

from tests.helpers import config_from
from wa_monitor.core.errors import BridgeStoreError, WaMonitorError
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sources.memory import InMemorySource
from wa_monitor.store.review_store import ReviewStore


class Unopenable(InMemorySource):
    """A source that is not there yet: every open fails."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop
        self.attempts = 0

    def open(self) -> None:
        self.attempts += 1
        if self.attempts == 10:  # the hook was not told: end the loop, so the test fails
            self.stop.set()
        raise BridgeStoreError(f"not there yet (attempt {self.attempts})")


def test_a_source_that_cannot_be_opened_is_told_to_on_error_and_retried() -> None:
    stop = threading.Event()
    source = Unopenable(stop)
    errors: list[WaMonitorError] = []

    def failed(exc: WaMonitorError) -> None:
        errors.append(exc)
        if len(errors) == 3:
            stop.set()

    # The review database is never reached: no scan runs while the source cannot be opened.
    store: ReviewStore = None  # type: ignore[assignment]
    monitor = Monitor(config_from(), source, store, on_error=failed)
    monitor.run(stop, interval=0.0, poll=0.0)

    assert [str(e) for e in errors] == [f"not there yet (attempt {n})" for n in (1, 2, 3)]
    assert source.attempts == 3
