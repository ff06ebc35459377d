"""The device's opt-in Prometheus endpoint (`[metrics] listen`): what a site's monitoring
scrapes from each gate and bar. Counters are fed where the daemon decides (edge.runtime);
the figures that live in the store or the sync engine are read when scraped."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from edge.device import Device
from sync.engine import SyncEngine

log = logging.getLogger("festgate.metrics")

# A verdict is a SQLite commit plus a lookup: milliseconds; past a second the queue is backing up.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCRAPE_WAIT_S = 2.0  # how long a scrape waits for the daemon's loop to count pending events


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the scraped figures come from: the daemon's loop, and functions read on it."""

    loop: asyncio.AbstractEventLoop
    pending: Callable[[], Coroutine[Any, Any, int]]  # the journal's unacknowledged events
    since_sync_s: Callable[[], float]  # seconds since central last answered (+Inf: never)
    clock_offset_s: Callable[[], float]  # central's clock minus this device's (NaN: unknown)


class DeviceMetrics:
    """The device's metrics, in a registry of their own (one daemon, one endpoint)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.scans = Counter(
            "festgate_scans", "Scans decided, by verdict code", ["verdict"], registry=reg
        )
        self.latency = Histogram(
            "festgate_decision_seconds",
            "From a scan reaching the daemon to its verdict, journaled",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.readers = Gauge(
            "festgate_reader_up",
            "1 while a reader's device is open and answering; 0 missing, failed or disabled",
            ["reader"],
            registry=reg,
        )
        self.pending = Gauge(
            "festgate_pending_events", "Events journaled that central has not acknowledged",
            registry=reg,
        )  # fmt: skip
        self.since_sync = Gauge(
            "festgate_seconds_since_last_sync", "Since central last answered (+Inf: never)",
            registry=reg,
        )  # fmt: skip
        self.clock_offset = Gauge(
            "festgate_clock_offset_seconds",
            "Central's clock minus this device's at the last exchange (NaN: not yet known)",
            registry=reg,
        )
        self.pending.set(math.nan)
        self.since_sync.set(math.inf)
        self.clock_offset.set(math.nan)

    def decided(self, verdict: str, seconds: float) -> None:
        """Count one verdict and how long it took."""
        self.scans.labels(verdict=verdict).inc()
        self.latency.observe(seconds)

    def reader(self, name: str, up: bool) -> None:
        """Mark a reader's device open and answering (True), or not (False)."""
        self.readers.labels(reader=name).set(1 if up else 0)

    def read_from(self, sources: Sources) -> None:
        """Read pending events, last sync and clock offset from `sources` at each scrape."""

        def pending() -> float:
            future = asyncio.run_coroutine_threadsafe(sources.pending(), sources.loop)
            try:
                return float(future.result(SCRAPE_WAIT_S))
            except Exception:  # a busy or closing daemon: unknown, not a failed scrape
                future.cancel()
                return math.nan

        self.pending.set_function(pending)
        self.since_sync.set_function(sources.since_sync_s)
        self.clock_offset.set_function(sources.clock_offset_s)

    def serve(self, listen: str) -> Callable[[], None] | None:
        """Serve /metrics on `listen` (host:port) in a thread; returns what stops it, or None
        (logged) when the address cannot be bound: the gate scans on without metrics."""
        host, _, port = listen.rpartition(":")
        try:
            server, thread = start_http_server(
                int(port), addr=host.strip("[]"), registry=self.registry
            )
        except OSError as exc:
            log.error(
                "metrics endpoint not started: %s", exc,
                extra={"event": "metrics.unavailable", "listen": listen},
            )  # fmt: skip
            return None
        log.info("metrics on http://%s/metrics", listen, extra={"event": "metrics.started"})

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop


def for_daemon(
    listen: str, device: Device, engine: SyncEngine | None, disabled: Iterable[str]
) -> tuple[DeviceMetrics, Callable[[], None]]:
    """The daemon's metrics, reading `device` and `engine` (None: not enrolled), served on
    `listen`; returns them and what stops the endpoint. Parts left out count as readers down."""
    metrics = DeviceMetrics()
    for name in disabled:
        metrics.reader(name, False)

    def since_sync() -> float:
        last = engine.status.last_success_ms if engine is not None else None
        return math.inf if last is None else max(0.0, (device.clock() - last) / 1000)

    def clock_offset() -> float:
        offset = engine.status.clock_offset_ms if engine is not None else None
        return math.nan if offset is None else offset / 1000

    loop = asyncio.get_running_loop()
    metrics.read_from(Sources(loop, device.journal.pending_count, since_sync, clock_offset))
    return metrics, metrics.serve(listen) or (lambda: None)
