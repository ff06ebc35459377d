"""Central's metrics in Prometheus' text format (prometheus-client).

Counted where they happen, in the process that serves the request: pushes by status, events
by kind, push latency, long-poll waiters, feed notifications, database pool use. Read from
the database at each scrape (three cheap grouped counts): open conflicts by kind, the feed
head per festival, devices online per festival.

With several workers (`serve --workers N`), the process-local figures use
prometheus-client's multiprocess mode: every worker writes them to files in
``PROMETHEUS_MULTIPROC_DIR`` (made by `serve`, fresh at each start) and a scrape, answered
by any worker, sums them (gauges: ``livesum``, the sum over live workers).
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from psycopg_pool import AsyncConnectionPool
from starlette.types import Scope

from central.conflicts import ConflictKind
from central.devices import ONLINE_WITHIN_S
from central.pg import process_alive
from sync.protocol import Event, Paths

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
PUSH_PATH = Paths.EVENTS

PUSHES = Counter("festgate_pushes", "event pushes answered, by HTTP status", ["status"])
EVENTS = Counter("festgate_events", "events received in pushes, by kind", ["kind"])
PUSH_SECONDS = Histogram(
    "festgate_push_seconds",
    "time to answer a push, from its first byte to its answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LONGPOLL_WAITERS = Gauge(
    "festgate_longpoll_waiters", "change requests waiting for a change", multiprocess_mode="livesum"
)
FEED_NOTIFIES = Counter(
    "festgate_feed_notifications", "change-feed notifications received (LISTEN), all workers"
)
POOL = Gauge(
    "festgate_db_pool_connections",
    "database pool: connections open (size), idle (available), requests waiting for one",
    ["state"],
    multiprocess_mode="livesum",
)


def count_events(events: Iterable[Event]) -> None:
    """Count a push's events by kind."""
    for kind, n in Tally(e.kind for e in events).items():
        EVENTS.labels(kind=str(kind)).inc(n)


def request_done(scope: Scope, status: int, seconds: float) -> None:
    """After each request: a push's status and latency; this worker's pool figures."""
    if scope["path"] == PUSH_PATH and scope["method"] == "POST":
        PUSHES.labels(status=str(status)).inc()
        PUSH_SECONDS.observe(seconds)
    state = getattr(scope.get("app"), "state", None)
    central = getattr(state, "central", None)
    if central is not None:
        pool_figures(central.pool)


def pool_figures(pool: AsyncConnectionPool) -> None:
    """Record this worker's pool use (a scrape sums every worker's)."""
    stats = pool.get_stats()
    POOL.labels(state="size").set(stats.get("pool_size", 0))
    POOL.labels(state="available").set(stats.get("pool_available", 0))
    POOL.labels(state="waiting").set(stats.get("requests_waiting", 0))


_FROM_DATABASE = """
SELECT 'conflict', kind, count(*) FROM conflict WHERE resolved_at IS NULL GROUP BY kind
UNION ALL
SELECT 'head', f.slug, h.head FROM feed_head h JOIN festival f ON f.id = h.festival_id
UNION ALL
SELECT 'online', f.slug, count(*) FILTER (
           WHERE d.revoked_at IS NULL AND d.last_seen_at > now() - %(online)s * interval '1 s')
FROM festival f JOIN device d ON d.festival_id = f.id GROUP BY f.slug
"""


class _Families(Collector):
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterable[Any]:
        return self.families


async def _database_families(pool: AsyncConnectionPool) -> list[GaugeMetricFamily]:
    conflicts = GaugeMetricFamily(
        "festgate_conflicts_open", "open conflicts, by kind", labels=["kind"]
    )
    heads = GaugeMetricFamily(
        "festgate_feed_head", "change-feed head (newest seq), by festival", labels=["festival"]
    )
    online = GaugeMetricFamily(
        "festgate_devices_online",
        f"devices seen within {ONLINE_WITHIN_S} s and not revoked, by festival",
        labels=["festival"],
    )
    open_by_kind = {kind.value: 0 for kind in ConflictKind}  # a kind with none is 0, not absent
    async with pool.connection() as conn:
        cur = await conn.execute(_FROM_DATABASE, {"online": ONLINE_WITHIN_S})
        for what, name, value in await cur.fetchall():
            if what == "conflict":
                open_by_kind[name] = int(value)
            else:
                (heads if what == "head" else online).add_metric([name], int(value))
    for kind, n in open_by_kind.items():
        conflicts.add_metric([kind], n)
    return [conflicts, heads, online]


def _forget_dead_workers(folder: Path) -> None:
    """Drop the live gauges of workers that died (uvicorn replaced them): a crashed worker's
    long-poll waiters and pool are gone, and must not be summed for ever."""
    for file in folder.glob("gauge_live*_*.db"):
        pid = int(file.stem.rpartition("_")[2])
        if not process_alive(pid):
            mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


async def scrape(pool: AsyncConnectionPool) -> bytes:
    """The text a scrape answers: every worker's counted figures and the database's."""
    pool_figures(pool)
    registry = CollectorRegistry()
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        _forget_dead_workers(Path(folder))
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    own = CollectorRegistry()
    own.register(_Families(await _database_families(pool)))
    return generate_latest(registry) + generate_latest(own)
