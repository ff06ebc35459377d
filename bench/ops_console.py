"""`python -m bench ops-console`: the ops console's page times, push-to-screen, ingest beside it.

Setup, not measured: a festival of ``--tickets`` opaque-code tickets and ``--wristbands``
wristbands (the bulk import paths), ``--devices`` enrolled devices (half gates, half bars)
whose ``--events`` events, spread over the last ``--hours`` hours, go through
``central.ingest.ingest_batch`` (gates admit and release tickets, some at two gates:
duplicate entries; bars sell a product by basket), then ``VACUUM ANALYZE``; an admin ops
user with a console password. (The wristbands' opening top-ups are dated before the first
sale, as a festival books them.) Central then runs as its own
process (uvicorn on loopback, configured by ``central.http_server``, over embedded
PostgreSQL or ``FESTGATE_BENCH_DSN``).

Measured over real HTTP with a logged-in session cookie:

- ``pages``: each page's time to its complete response, ``--requests`` requests one after
  the other after one warm-up; p50/p95 ms and the status codes seen.
- ``push_to_screen``: ``--watchers`` browsers (each its own session) on Now's live stream;
  a gate pushes one entry of a fresh ticket (``POST /v1/sync/events``), measured from the
  push until every watcher has received a panel whose occupancy shows it; ``--pushes``
  times, p50/p99 ms of the slowest watcher.
- ``ingest``: ``--load-devices`` devices push ``--phase-events`` events each phase over
  HTTP in batches of the sync engine's size, all at once, with no watcher and with the
  watchers connected, alternating ``--rounds`` times (none, watchers, watchers, none, ...:
  drift on a shared machine falls on both); ``ratio`` = events/s with / without.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

from bench.ingest import DEVICE_BATCH, _database, _event
from bench.initial_sync import central_process
from bench.stats import percentile
from central import server_gc, users
from central.auth import DevicePrincipal, OpsRole
from central.enrol import create_enrol_code, enrol
from central.imports import import_tickets, import_wristbands
from central.ingest import ingest_batch
from central.sample import SampleFestival, create_sample_festival
from config.vocab import Role
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, Paths, PushRequest

USER = "bench-admin"
PASSWORD = "bench console password"  # noqa: S105 (a bench user on a throwaway database)
_IMPORT = 100_000  # rows per import transaction
_SETUP_CONNS = 4  # devices ingesting at once during setup
_OCCUPANCY = re.compile(rb'class="num occupancy">([^<]*)<')
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Device:
    """One enrolled device: who it is, its token, its place among its role, its journal."""

    principal: DevicePrincipal
    token: str
    index: int
    seq: int = 0
    at_ms: int = 0
    step_ms: int = 1


@dataclass
class Rig:
    """What setup made: the festival, its devices, the tickets and wristbands."""

    fest: SampleFestival
    gates: list[Device]
    bars: list[Device]
    probe: Device  # a gate with no setup events: it pushes the fresh entries
    tickets: list[str]  # ticket ids, in import order (codes OC-<index>)
    accounts: list[str]
    tags: list[str]
    per_gate: int  # tickets each gate admits and releases in turn
    scanned: int  # tickets from here on were never scanned
    fresh: int = 0  # fresh tickets the probe pushed

    def events(self, dev: Device, n: int) -> list[dict[str, Any]]:
        """`n` next events of `dev`: a gate admits then releases its own tickets (every 50th
        is gate 0's too: a duplicate entry), a bar sells one product by basket."""
        out = []
        price = self.fest.product_price
        item = {"product_id": str(self.fest.product_id), "qty": 1, "price": price}
        for _ in range(n):
            dev.seq += 1
            dev.at_ms += dev.step_ms
            if dev.principal.role == "bar":
                account = self.accounts[(dev.index * 7919 + dev.seq) % len(self.accounts)]
                kind, verdict = "sale", "approved"
                payload: dict[str, Any] = {"account_id": account, "amount": price, "items": [item]}
            else:
                slot = (dev.seq - 1) // 2
                owner = dev.index if slot % 50 else 0
                ticket = self.tickets[(owner * self.per_gate + slot) % self.scanned]
                kind, verdict = ("entry" if dev.seq % 2 else "exit"), "ok"
                payload = {"ticket_id": ticket}
            out.append(_event(dev.principal, dev.seq, dev.at_ms, kind, verdict, payload))
        return out

    def fresh_entry(self) -> dict[str, Any]:
        """The probe gate's next event: the entry of a ticket never scanned."""
        dev = self.probe
        dev.seq += 1
        dev.at_ms = max(dev.at_ms + 1, _now_ms())
        ticket = self.tickets[self.scanned + self.fresh]
        self.fresh += 1
        return _event(dev.principal, dev.seq, dev.at_ms, "entry", "ok", {"ticket_id": ticket})


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _enrol(
    conn: psycopg.AsyncConnection[Any], fest: SampleFestival, role: str, index: int
) -> Device:
    code = await create_enrol_code(
        conn, festival_id=fest.festival_id, role=role,
        zone_id=fest.zone_id if role == "gate" else None,
        vendor_id=fest.vendor_id if role == "bar" else None, ttl_s=600, actor="bench",
    )  # fmt: skip
    got = await enrol(conn, code=code, name=f"bench-{role}-{index}")
    principal = DevicePrincipal(
        got.device_id, fest.festival_id, Role(role), got.zone_id, got.vendor_id
    )
    return Device(principal, got.token, index)


async def _setup(dsn: str, args: argparse.Namespace) -> Rig:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        fest = await create_sample_festival(conn, signed_tickets=1, opaque_tickets=0, wristbands=1)
        fid = fest.festival_id
        await conn.execute(
            "UPDATE zone SET capacity = %s WHERE id = %s", (args.tickets, fest.zone_id)
        )
        tickets: list[str] = []
        for start in range(0, args.tickets, _IMPORT):
            rows = [{"category": "Weekend", "code": f"OC-{i}"}
                    for i in range(start, min(args.tickets, start + _IMPORT))]  # fmt: skip
            # Counter codes, weak by design: they never leave the bench.
            done = await import_tickets(
                conn, fid, rows, actor="bench", sign=False, accept_weak_codes=True
            )
            tickets += [str(t.ticket_id) for t in done.tickets]
        tags = [f"0b{i:012x}" for i in range(args.wristbands)]
        accounts: list[str] = []
        for start in range(0, args.wristbands, _IMPORT):
            rows = [{"tag_uid": t, "balance": "1000000"} for t in tags[start : start + _IMPORT]]
            accounts += [a.id for a in await import_wristbands(conn, fid, rows, actor="bench")]
        roles = ["gate" if i % 2 == 0 else "bar" for i in range(args.devices)]
        devices = [await _enrol(conn, fest, r, roles[:i].count(r)) for i, r in enumerate(roles)]
        probe = await _enrol(conn, fest, "gate", 0)
        await users.add_ops_user(
            conn, name=USER, role=OpsRole.ADMIN, actor="bench", festival_id=fid
        )
        await users.set_password(conn, USER, PASSWORD, actor="bench")
        await conn.commit()
    gates = [d for d in devices if d.principal.role == "gate"]
    bars = [d for d in devices if d.principal.role == "bar"]
    per_device = max(2, args.events // args.devices)
    per_gate = per_device // 2 + 1
    # Tickets past `scanned` stay fresh for the probe's entries.
    scanned = max(1, min(len(gates) * per_gate, args.tickets - args.pushes - 1))
    rig = Rig(fest, gates, bars, probe, tickets, accounts, tags, per_gate, scanned)
    start_ms = _now_ms() - args.hours * 3_600_000
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        # The opening top-ups come before the first sale, as at a festival.
        await conn.execute(
            "UPDATE cashless_transaction SET created_at = to_timestamp(%s / 1000.0)"
            " WHERE festival_id = %s AND type = 'TOPUP'",
            (start_ms - 60_000, fest.festival_id),
        )
    for dev in devices:
        dev.at_ms, dev.step_ms = start_ms + dev.index, max(1, args.hours * 3_600_000 // per_device)
    await _history(dsn, rig, devices, per_device)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("VACUUM ANALYZE")
    return rig


async def _history(dsn: str, rig: Rig, devices: list[Device], per_device: int) -> None:
    """Every device's events through ingest, a few devices at once, a batch at a time."""
    queue = list(devices)

    async def worker() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            while queue:
                dev = queue.pop()
                for start in range(0, per_device, DEVICE_BATCH):
                    body = {"events": rig.events(dev, min(DEVICE_BATCH, per_device - start))}
                    req = PushRequest.model_validate(body)
                    await ingest_batch(conn, dev.principal, list(req.events), received_ms=_now_ms())

    server_gc.settle()
    await asyncio.gather(*(worker() for _ in range(_SETUP_CONNS)))


async def _login(client: httpx.AsyncClient) -> None:
    """Log in as a browser does: the form's CSRF token, then name and password."""
    form = await client.get("/ops/login")
    token = _CSRF.search(form.text)
    if token is None:
        raise RuntimeError(f"no login form: {form.status_code}")
    fields = {"csrf_token": token[1], "name": USER, "password": PASSWORD, "next": "/ops/"}
    done = await client.post("/ops/login", data=fields)
    if done.status_code != 303:
        raise RuntimeError(f"login refused: {done.status_code}")


def _pages(rig: Rig) -> dict[str, str]:
    f = f"/ops/f/{rig.fest.slug}"
    return {
        "now": f"{f}/now",
        "now_panel": f"{f}/now/panel",
        "conflicts": f"{f}/conflicts",
        "devices": f"{f}/devices",
        "device": f"{f}/devices/{rig.gates[0].principal.id}",
        "lookup_ticket": f"{f}/lookup?ticket=OC-{rig.per_gate // 2}",
        "lookup_wristband": f"{f}/lookup?wristband={rig.tags[len(rig.tags) // 2]}",
        "sales": f"{f}/sales",
        "sales_csv": f"{f}/sales.csv",
        "audit": f"{f}/audit",
    }


async def _time_pages(
    client: httpx.AsyncClient, rig: Rig, n: int, budget_s: float
) -> dict[str, Any]:
    """Each page `n` times after a warm-up (fewer, at least 3, once it took `budget_s`):
    p50/p95 ms to the complete response, how many, the statuses seen."""
    out: dict[str, Any] = {}
    for name, path in _pages(rig).items():
        await client.get(path)
        took: list[float] = []
        statuses = set()
        while len(took) < n and (len(took) < 3 or sum(took) < budget_s):
            t0 = time.perf_counter()
            resp = await client.get(path)
            took.append(time.perf_counter() - t0)
            statuses.add(resp.status_code)
        out[name] = {
            "p50_ms": _ms(percentile(took, 0.50)),
            "p95_ms": _ms(percentile(took, 0.95)),
            "requests": len(took),
            "statuses": sorted(statuses),
        }
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Watcher:
    """One browser on Now's live stream: the occupancy of every panel it received, when."""

    def __init__(self, client: httpx.AsyncClient, path: str) -> None:
        self.client = client
        self.path = path
        self.shown = -1  # the occupancy of the last panel received
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Read the stream, reconnecting when central ends it (as a browser does). Events
        are cut from the bytes as they come (a browser parses them natively; line by line
        in Python, fifty watchers slowed the devices pushing from this same process)."""
        while True:
            async with self.client.stream("GET", self.path) as resp:
                buffer = b""
                async for chunk in resp.aiter_bytes():
                    buffer += chunk
                    *events, buffer = buffer.split(b"\n\n")
                    panels = [e for e in events if e.startswith(b"event: now\n")]
                    if panels:  # the last one is what the screen shows
                        shown = _OCCUPANCY.findall(panels[-1])
                        self.shown = sum(int(re.sub(rb"\D", b"", s) or 0) for s in shown)
                        self.changed.set()

    async def until(self, occupancy: int) -> float:
        """Wait until a panel showing `occupancy` arrived; its perf_counter time."""
        while self.shown != occupancy:
            self.changed.clear()
            await self.changed.wait()
        return time.perf_counter()


@contextlib.asynccontextmanager
async def _watching(url: str, path: str, n: int) -> Any:
    """`n` logged-in browsers on the stream, each with its first panel received."""
    clients = [httpx.AsyncClient(base_url=url, timeout=60) for _ in range(n)]
    watchers = [Watcher(c, path) for c in clients]
    try:
        for w in watchers:
            await _login(w.client)
            w.task = asyncio.create_task(w.run())
        for w in watchers:
            while w.shown < 0:
                w.changed.clear()
                await asyncio.wait_for(w.changed.wait(), 60)
        yield watchers
    finally:
        for w in watchers:
            if w.task is not None:
                w.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                    await w.task
            await w.client.aclose()


def _device_client(url: str, dev: Device) -> httpx.AsyncClient:
    headers = {
        PROTOCOL_HEADER: str(PROTOCOL_VERSION),
        "Authorization": f"Bearer {dev.token}",
        "Content-Type": "application/json",
    }
    return httpx.AsyncClient(base_url=url, headers=headers, timeout=60)


async def _push(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    resp = await client.post(Paths.EVENTS, content=json.dumps({"events": events}))
    if resp.status_code != 200:
        raise RuntimeError(f"push refused: {resp.status_code} {resp.text}")


async def _push_to_screen(url: str, rig: Rig, watchers: list[Watcher], n: int) -> list[float]:
    """Per push of a fresh entry: seconds until the last watcher shows it."""
    took = []
    async with _device_client(url, rig.probe) as probe:
        for _ in range(n):
            expected = watchers[0].shown + 1
            t0 = time.perf_counter()
            await _push(probe, [rig.fresh_entry()])
            arrived = await asyncio.wait_for(
                asyncio.gather(*(w.until(expected) for w in watchers)), 120
            )
            took.append(max(arrived) - t0)
            await asyncio.sleep(0.05)
    return took


async def _ingest_phase(url: str, rig: Rig, load: list[Device], per_device: int) -> float:
    """Every load device pushes `per_device` events in batches, all at once: events/s."""
    now = _now_ms()
    streams = []
    for dev in load:
        dev.at_ms, dev.step_ms = max(dev.at_ms, now), 1
        evs = rig.events(dev, per_device)
        streams.append([evs[i : i + DEVICE_BATCH] for i in range(0, len(evs), DEVICE_BATCH)])
    clients = [_device_client(url, dev) for dev in load]

    async def device(client: httpx.AsyncClient, batches: list[list[dict[str, Any]]]) -> None:
        for batch in batches:
            await _push(client, batch)

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(device(c, s) for c, s in zip(clients, streams, strict=True)))
        return per_device * len(load) / (time.perf_counter() - t0)
    finally:
        for c in clients:
            await c.aclose()


async def _measure(url: str, rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as console:
        await _login(console)
        pages = await _time_pages(console, rig, args.requests, args.page_budget)
    stream = f"/ops/f/{rig.fest.slug}/now/events"
    async with _watching(url, stream, args.watchers) as watchers:
        screen = await _push_to_screen(url, rig, watchers, args.pushes)
    load = (rig.gates + rig.bars)[: args.load_devices]
    per_device = max(1, args.phase_events // len(load))
    rates: dict[str, list[float]] = {"none": [], "watchers": []}
    for r in range(args.rounds):
        for kind in ("none", "watchers") if r % 2 == 0 else ("watchers", "none"):
            if kind == "none":
                rates[kind].append(await _ingest_phase(url, rig, load, per_device))
            else:
                async with _watching(url, stream, args.watchers):
                    rates[kind].append(await _ingest_phase(url, rig, load, per_device))
    without, with_ = (sum(rates[k]) / len(rates[k]) for k in ("none", "watchers"))
    return {
        "pages": pages,
        "page_p95_ms_max": max(p["p95_ms"] for p in pages.values()),
        "push_to_screen": {
            "p50_ms": _ms(percentile(screen, 0.50)),
            "p99_ms": _ms(percentile(screen, 0.99)),
            "max_ms": _ms(max(screen)),
        },
        "ingest": {
            "load_devices": len(load),
            "events_per_phase": per_device * len(load),
            "events_per_s_none": [round(x, 1) for x in rates["none"]],
            "events_per_s_watchers": [round(x, 1) for x in rates["watchers"]],
            "ratio": round(with_ / without, 3),
        },
    }


_SMALL = {
    "tickets": 2_000, "wristbands": 200, "events": 2_000, "devices": 4, "watchers": 3,
    "requests": 3, "pushes": 3, "load_devices": 2, "phase_events": 200, "hours": 3,
}  # fmt: skip


def main(argv: list[str]) -> dict[str, Any]:
    """Run the ops console benchmark and return its figures (prints nothing)."""
    parser = argparse.ArgumentParser(prog="python -m bench ops-console")
    parser.add_argument("--small", action="store_true", help="a tiny festival (for tests)")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--wristbands", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=1_000_000, help="synced before measuring")
    parser.add_argument("--devices", type=int, default=200, help="enrolled (half gates)")
    parser.add_argument("--hours", type=int, default=24, help="the events' span, up to now")
    parser.add_argument("--watchers", type=int, default=50, help="browsers on Now's stream")
    parser.add_argument("--requests", type=int, default=30, help="per page, after a warm-up")
    parser.add_argument(
        "--page-budget", type=float, default=60.0, help="seconds per page before stopping early"
    )
    parser.add_argument("--pushes", type=int, default=50, help="push-to-screen samples")
    parser.add_argument("--load-devices", type=int, default=20, help="pushing in ingest phases")
    parser.add_argument("--phase-events", type=int, default=20_000, help="per ingest phase")
    parser.add_argument("--rounds", type=int, default=2, help="A/B ingest phase pairs")
    args = parser.parse_args(argv)
    if args.small:
        for key, value in _SMALL.items():
            if f"--{key.replace('_', '-')}" not in argv:
                setattr(args, key, value)
    small = (args.tickets, args.wristbands, args.devices, args.watchers, args.requests)
    if min(small) < 1 or args.devices < 2 or args.pushes < 1 or args.rounds < 1:
        parser.error("need devices >= 2 and every count >= 1")
    with _database(os.environ.get("FESTGATE_BENCH_DSN")) as dsn:
        t0 = time.perf_counter()
        rig = asyncio.run(_setup(dsn, args))
        setup_s = time.perf_counter() - t0
        with central_process(dsn) as url:
            figures = asyncio.run(_measure(url, rig, args))
    return {
        "bench": "ops-console",
        "tickets": args.tickets,
        "wristbands": args.wristbands,
        "events": args.events,
        "devices": args.devices,
        "watchers": args.watchers,
        "requests_per_page": args.requests,
        "pushes": args.pushes,
        "setup_s": round(setup_s, 1),
        **figures,
        "target_page_p95_ms": 150,
        "target_push_to_screen_p99_ms": 2000,
        "target_ingest_ratio": 0.9,
        "server": "dsn" if os.environ.get("FESTGATE_BENCH_DSN") else "embedded",
        "cores": os.cpu_count(),
    }
