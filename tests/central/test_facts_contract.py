"""One contract, two implementations: central's pure replay and ingest's SQL fast path.

Every conflict scenario is pushed through the real ingest (set-based SQL: presence and
balances merged per batch, candidates picked for the rules, views over the stored facts),
and after every push the same facts, as the devices sent them, are replayed in Python by
`central.conflicts`' rules alone, reading what each fact means from `sync.facts`. Both must
find the same open conflicts (with the same facts and details), balances and holds,
presence, occupancy, suspicious tickets, access log, ledger and each event's clock skew.
The replay's other inputs are central's own: the catalog history (read from the change
feed, judged by `sync.facts`), the ops desk's ledger entries, and when each event arrived.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central import ticket_ops, tickets, wristband_ops
from central.conflicts import (
    CatalogChange,
    EventFact,
    LedgerFact,
    classify_account,
    classify_clock,
    classify_gaps,
    classify_ticket,
    contiguous_through,
    ledger_from_events,
    sort_events,
)
from central.ingest import DEFAULT_SKEW_BOUND_MS
from central.sample import SampleFestival
from sync import facts

from .sync_helpers import Dev, Rig


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"signed_tickets": 4, "opaque_tickets": 1, "wristbands": 2, "opening_balance": 1000}


Outcome = dict[str, Any]


@dataclass
class Play:
    """A scenario's devices and every event they sent, with the checks after each push."""

    rig: Rig
    sent: list[tuple[Dev, dict[str, Any]]] = field(default_factory=list)
    pushes: int = 0

    @property
    def fid(self) -> uuid.UUID:
        return self.rig.fest.festival_id

    def ticket(self, i: int) -> uuid.UUID:
        return self.rig.fest.tickets[i].ticket_id

    def account(self, i: int) -> uuid.UUID:
        return self.rig.fest.account_ids[i]

    async def push(self, dev: Dev, events: list[dict[str, Any]]) -> None:
        """Push a batch, then hold both implementations to the same outcome."""
        resp = await self.rig.push(dev, events)
        assert resp.status_code == 200, resp.text
        self.sent += [(dev, e) for e in events]
        self.pushes += 1
        sql, pure = await sql_outcome(self), await replay(self)
        assert sql == pure, f"after push {self.pushes}"

    def money(self, dev: Dev, kind: str, account: int, amount: int, **kw: Any) -> dict[str, Any]:
        verdict = kw.pop("verdict", facts.BarCode.APPROVED)
        payload = {"account_id": str(self.account(account)), "amount": amount}
        return self.rig.event(dev, kind, verdict, payload, **kw)


async def _rows(rig: Rig, query: str, *args: Any) -> list[tuple[Any, ...]]:
    async with rig.pool.connection() as conn:
        cur = await conn.execute(query, args)
        return list(await cur.fetchall())


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


async def sql_outcome(play: Play) -> Outcome:
    """What ingest left in the database."""
    fid, rig = play.fid, play.rig
    conflicts = {
        key: ([str(e) for e in ids], _json(f), _json(d))
        for key, ids, f, d in await _rows(
            rig, "SELECT natural_key, event_ids, facts, detail FROM conflict"
            " WHERE festival_id = %s AND resolved_at IS NULL", fid,
        )
    }  # fmt: skip
    balances = {
        str(a): (b, debt)
        for a, b, debt in await _rows(
            rig, "SELECT id, balance, debt FROM cashless_account WHERE festival_id = %s", fid
        )
    }
    presence = {
        (str(t), str(z)): inside
        for t, z, inside in await _rows(
            rig, "SELECT p.ticket_id, p.zone_id, p.inside FROM ticket_presence p"
            " JOIN zone z ON z.id = p.zone_id WHERE z.festival_id = %s", fid,
        )
    }  # fmt: skip
    occupancy = dict(
        await _rows(rig, "SELECT id::text, occupancy FROM zone WHERE festival_id = %s", fid)
    )
    access = dict(
        await _rows(
            rig, "SELECT event_id::text, action FROM zone_access_log WHERE festival_id = %s", fid
        )
    )
    ledger = {
        str(e): (t, amount)
        for e, t, amount in await _rows(
            rig, "SELECT event_id, type, amount FROM cashless_ledger"
            " WHERE festival_id = %s AND device_id IS NOT NULL", fid,
        )
    }  # fmt: skip
    skew = dict(
        await _rows(
            rig, "SELECT event_id::text, skew_ms FROM device_event WHERE festival_id = %s", fid
        )
    )
    suspicious = {
        str(t) for t, in await _rows(
            rig, "SELECT id FROM ticket WHERE festival_id = %s AND suspicious", fid)
    }  # fmt: skip
    held = {
        str(a) for a, in await _rows(
            rig, "SELECT h.account_id FROM account_hold h JOIN cashless_account a"
            " ON a.id = h.account_id WHERE a.festival_id = %s", fid)
    }  # fmt: skip
    return {"conflicts": conflicts, "balances": balances, "presence": presence,
            "occupancy": occupancy, "access": access, "ledger": ledger, "skew": skew,
            "suspicious": suspicious, "held": held}  # fmt: skip


def _fact(dev: Dev, event: dict[str, Any], zone: str, received_ms: int) -> EventFact:
    """An event as its device sent it, reduced to what the rules read (`sync.facts`)."""
    kind, payload = event["kind"], event["payload"]
    gate, money = kind in facts.GATE_KINDS, kind in facts.MONEY_KINDS
    return EventFact(
        event_id=event["event_id"], device_id=dev.device_id, device_seq=event["device_seq"],
        hlc=event["hlc"], wall_ms=event["wall_ms"], catalog_seq=event["catalog_seq"],
        kind=kind, verdict=event["verdict"],
        ticket_id=payload.get("ticket_id") if gate else None,
        zone_id=payload.get("zone_id", zone) if gate else None,
        account_id=payload.get("account_id") if money else None,
        amount=payload.get("amount", 0) if money else 0,
        received_ms=received_ms,
        code_version=payload.get("code_version") if gate else None,
        code_hash=payload.get("code_hash") if gate else None,
    )  # fmt: skip


async def _history(play: Play) -> dict[str, list[CatalogChange]]:
    """Every ticket's and tag's catalog changes, by feed key, judged by `sync.facts`."""
    out: dict[str, list[CatalogChange]] = defaultdict(list)
    for table, key, op, seq, row, at_ms in await _rows(
        play.rig, "SELECT table_name, key, op, seq, row,"
        " (extract(epoch FROM committed_at) * 1000)::bigint FROM change_feed"
        " WHERE festival_id = %s AND table_name IN ('ticket', 'block')", play.fid,
    ):  # fmt: skip
        if table == "block":
            out[key].append(CatalogChange(seq, at_ms, "block", facts.block_bad(op)))
        else:
            bad = facts.ticket_bad(row.get("status"))
            version, code_hash = row.get("code_version"), row.get("code_hash")
            out[key].append(CatalogChange(seq, at_ms, "status", bad, version, code_hash))
    return out


async def replay(play: Play) -> Outcome:
    """The same outcome, from the pure rules over the facts as sent."""
    rig = play.rig
    received = dict(
        await _rows(
            rig, "SELECT event_id::text, (extract(epoch FROM received_at) * 1000)::bigint"
            " FROM device_event WHERE festival_id = %s", play.fid,
        )
    )  # fmt: skip
    zone = str(rig.fest.zone_id)
    held = {e["event_id"]: _fact(d, e, zone, received[e["event_id"]]) for d, e in play.sent}
    events = sort_events(held.values())
    history = await _history(play)
    found = []
    by_ticket: dict[str, list[EventFact]] = defaultdict(list)
    for e in events:
        if e.ticket_id is not None:
            by_ticket[e.ticket_id].append(e)
    for tid, evs in by_ticket.items():
        changes = history.get(tid, []) + history.get(f"ticket:{tid}", [])
        found += classify_ticket(tid, evs, changes)
    ledgers: dict[str, list[LedgerFact]] = defaultdict(list)
    for entry in ledger_from_events(events):
        assert entry.event is not None
        ledgers[entry.event.account_id or ""].append(entry)
    for aid, lid, amount, at_ms in await _rows(
        rig, "SELECT account_id::text, id, amount, (extract(epoch FROM created_at) * 1000)::bigint"
        " FROM cashless_transaction WHERE festival_id = %s", play.fid,
    ):  # fmt: skip
        ledgers[aid].append(LedgerFact((at_ms << 16, "", lid), f"ledger:{lid}", amount))
    balances = {}
    for aid, tag in await _rows(
        rig, "SELECT id::text, encode(tag_hash, 'hex') FROM cashless_account"
        " WHERE festival_id = %s", play.fid,
    ):  # fmt: skip
        outcome = classify_account(aid, ledgers[aid], history.get(f"tag:{tag}", []))
        found += outcome.conflicts
        balances[aid] = (outcome.balance, outcome.debt)
    by_device: dict[str, list[EventFact]] = defaultdict(list)
    for e in events:
        by_device[e.device_id].append(e)
    for dev, evs in by_device.items():
        acked = contiguous_through(0, (e.device_seq for e in evs))
        above = [(e.device_seq, e.event_id) for e in evs if e.device_seq > acked]
        found += classify_gaps(dev, acked, above)
        found += classify_clock(dev, evs, DEFAULT_SKEW_BOUND_MS)
    presence: dict[tuple[str, str], bool] = {}
    for e in events:  # the latest admitted movement, in rule order
        if e.ticket_id is not None and e.zone_id is not None and facts.admits(e.kind, e.verdict):
            presence[(e.ticket_id, e.zone_id)] = bool(facts.FACTS[e.kind].inside)
    occupancy = {z: 0 for z, in await _rows(
        rig, "SELECT id::text FROM zone WHERE festival_id = %s", play.fid)}  # fmt: skip
    for (_, z), inside in presence.items():
        occupancy[z] += inside
    return {
        "conflicts": {c.natural_key: (list(c.event_ids), _json(c.facts), _json(c.detail))
                      for c in found},
        "balances": balances,
        "presence": presence,
        "occupancy": occupancy,
        "access": {e.event_id: facts.FACTS[e.kind].access for e in events
                   if e.ticket_id is not None and facts.admits(e.kind, e.verdict)},
        "ledger": {x.ref: (str(facts.FACTS[x.event.kind].transaction), x.delta)
                   for xs in ledgers.values() for x in xs if x.event is not None},
        "skew": {e.event_id: facts.clock_skew_ms(e.wall_ms, e.hlc, e.received_ms)
                 for e in events},
        "suspicious": {c.subject_id for c in found if c.kind == "duplicate_entry"},
        "held": {a for a, (_, debt) in balances.items() if debt > 0},
    }  # fmt: skip


# The scenarios. Times are ms after the rig's start: central's catalog changes are made
# before it (a second), so a fact at a negative time happened before them.


async def double_entry_at_two_offline_gates(p: Play) -> None:
    g1, g2, g3 = [await p.rig.enrol("gate", n) for n in ("g1", "g2", "g3")]
    t0, t1 = p.ticket(0), p.ticket(1)
    await p.push(g2, [p.rig.entry(g2, t0, at_ms=2000)])  # the later one arrives first
    await p.push(g1, [p.rig.entry(g1, t0, at_ms=1000), p.rig.entry(g1, t1, at_ms=1100)])
    await p.push(g3, [p.rig.entry(g3, t1, "already_inside", at_ms=1200),
                      p.rig.entry(g3, t1, "ok_reentry", at_ms=1300)])  # fmt: skip


async def exits_between_and_late(p: Play) -> None:
    g1, g2 = await p.rig.enrol("gate", "g1"), await p.rig.enrol("gate", "g2")
    t0, t1 = p.ticket(0), p.ticket(1)
    await p.push(g1, [p.rig.entry(g1, t0, at_ms=100), p.rig.entry(g1, t1, at_ms=200)])
    await p.push(g2, [p.rig.entry(g2, t0, "ok_reentry", at_ms=900), p.rig.exit(g2, t1, at_ms=300),
                      p.rig.entry(g2, t1, "ok_reentry", at_ms=400)])  # fmt: skip
    await p.push(g1, [p.rig.exit(g1, t0, at_ms=500)])  # late: withdraws the duplicate
    await p.push(g2, [p.rig.event(g2, "exit", "unknown", {}, at_ms=950)])


async def overspend_at_two_offline_bars(p: Play) -> None:
    b1, b2 = await p.rig.enrol("bar", "b1"), await p.rig.enrol("bar", "b2")
    await p.push(
        b2,
        [
            p.money(b2, "sale", 0, 600, at_ms=2000),
            p.money(b2, "sale", 0, 50, verdict="insufficient_funds", at_ms=2100),
        ],
    )
    await p.push(b1, [p.money(b1, "sale", 0, 700, at_ms=1000),
                      p.money(b1, "sale", 0, 100, at_ms=2500),
                      p.money(b1, "sale", 1, 999, at_ms=2600)])  # fmt: skip


async def top_ups_and_refunds_end_an_episode(p: Play) -> None:
    bar, desk = await p.rig.enrol("bar", "bar"), await p.rig.enrol("topup", "desk")
    sale = p.money(bar, "sale", 0, 900, at_ms=1000)
    await p.push(bar, [sale, p.money(bar, "sale", 0, 300, at_ms=2000)])
    await p.push(desk, [p.money(desk, "topup", 0, 500, at_ms=1500)])  # late: before the 2nd
    refund = p.money(bar, "refund", 0, 900, at_ms=2500) | {}
    refund["payload"]["refund_of"] = sale["event_id"]
    await p.push(bar, [refund, p.money(bar, "sale", 0, 1600, at_ms=2700)])
    async with p.rig.pool.connection() as conn:
        await wristband_ops.topup(conn, p.fid, p.account(0), 200, actor="desk")
    await p.push(
        desk,
        [
            p.money(desk, "refund", 1, 300, at_ms=2800),
            p.money(desk, "topup", 1, 5, verdict="tag_blocked", at_ms=2900),
        ],
    )


async def stale_catalog_cancelled_and_refunded(p: Play) -> None:
    gate = await p.rig.enrol("gate", "gate")
    seqs = {}
    async with p.rig.pool.connection() as conn:
        for i in (0, 1, 3):
            seqs[i] = (await tickets.cancel_ticket(conn, p.ticket(i), actor="ops")).seq
        seqs[1] = (await tickets.refund_ticket(conn, p.ticket(1), actor="ops")).seq
    await p.push(gate, [
        p.rig.entry(gate, p.ticket(0), at_ms=2000, catalog_seq=seqs[0] - 1),  # had not seen it
        p.rig.entry(gate, p.ticket(1), at_ms=2000, catalog_seq=seqs[1]),  # had seen it
        p.rig.entry(gate, p.ticket(3), at_ms=-60_000),  # admitted before the change
        p.rig.entry(gate, p.ticket(2), at_ms=2100),
    ])  # fmt: skip


async def stale_catalog_blocked(p: Play) -> None:
    gate, bar = await p.rig.enrol("gate", "gate"), await p.rig.enrol("bar", "bar")
    async with p.rig.pool.connection() as conn:
        await wristband_ops.block(conn, p.fid, p.account(0), reason="lost", actor="ops")
        done = await ticket_ops.block(conn, p.fid, p.ticket(0), reason="fraud", actor="ops")
        await ticket_ops.block(conn, p.fid, p.ticket(2), reason="mistake", actor="ops")
        await ticket_ops.unblock(conn, p.fid, p.ticket(2), actor="ops")
    await p.push(bar, [p.money(bar, "sale", 0, 100, at_ms=1000),
                       p.money(bar, "sale", 0, 100, at_ms=-60_000),  # before it was loaded
                       p.money(bar, "sale", 1, 100, at_ms=1100)])  # fmt: skip
    await p.push(gate, [p.rig.entry(gate, p.ticket(0), at_ms=1000, catalog_seq=done.seq),
                        p.rig.entry(gate, p.ticket(1), at_ms=1000),
                        p.rig.entry(gate, p.ticket(2), at_ms=1000)])  # fmt: skip


async def stale_catalog_transferred(p: Play) -> None:
    g1, g2 = await p.rig.enrol("gate", "g1"), await p.rig.enrol("gate", "g2")
    signed, outside = p.rig.fest.tickets[0], p.rig.fest.opaque_tickets[0]
    async with p.rig.pool.connection() as conn:
        await tickets.transfer_ticket(conn, signed.ticket_id, actor="ops")
        moved = await tickets.transfer_ticket(conn, outside.ticket_id, actor="ops")
    s, o = str(signed.ticket_id), str(outside.ticket_id)
    await p.push(g1, [
        p.rig.event(g1, "entry", "ok", {"ticket_id": s, "code_version": 0}, at_ms=1000),
        p.rig.event(g1, "exit", "ok", {"ticket_id": s, "code_version": 0}, at_ms=1100),
        p.rig.event(g1, "entry", "ok", {"ticket_id": o, "code_hash": outside.row.code_hash},
                    at_ms=1200),
    ])  # fmt: skip
    await p.push(g2, [
        p.rig.event(g2, "entry", "ok", {"ticket_id": s, "code_version": 1}, at_ms=1300),
        p.rig.event(g2, "entry", "ok", {"ticket_id": o, "code_hash": moved.row.code_hash},
                    at_ms=1250),
    ])  # fmt: skip


async def clock_skew_and_gaps(p: Play) -> None:
    gate, bar = await p.rig.enrol("gate", "gate"), await p.rig.enrol("bar", "bar")
    ahead = p.rig.now_ms + 10 * DEFAULT_SKEW_BOUND_MS
    await p.push(
        gate,
        [
            p.rig.entry(gate, p.ticket(0), at_ms=100, wall_ms=ahead),
            p.rig.event(gate, "log", "info", {"message": "x"}, wall_ms=ahead),
        ],
    )
    await p.push(bar, [p.money(bar, "sale", 0, 100, at_ms=100, seq=1),
                       p.money(bar, "sale", 0, 100, at_ms=200, seq=2),
                       p.money(bar, "sale", 0, 100, at_ms=500, seq=5),
                       p.money(bar, "sale", 0, 100, at_ms=700, seq=7)])  # fmt: skip
    await p.push(bar, [p.money(bar, "sale", 0, 100, at_ms=300, seq=3),
                       p.money(bar, "sale", 0, 100, at_ms=400, seq=4)])  # fmt: skip
    behind = p.rig.now_ms - 10 * DEFAULT_SKEW_BOUND_MS  # wall behind the central time learned
    await p.push(gate, [p.rig.entry(gate, p.ticket(1), at_ms=200, wall_ms=behind)])


# Each scenario and the open conflicts it ends with, by kind (both sides must find them).
SCENARIOS: dict[str, tuple[Callable[[Play], Awaitable[None]], list[str]]] = {
    f.__name__: (f, kinds)
    for f, kinds in (
        (double_entry_at_two_offline_gates, ["duplicate_entry", "duplicate_entry"]),
        (exits_between_and_late, []),
        (overspend_at_two_offline_bars, ["overdraft"]),
        (top_ups_and_refunds_end_an_episode, ["overdraft"]),
        (stale_catalog_cancelled_and_refunded, ["policy_violation", "stale_catalog"]),
        (stale_catalog_blocked, ["overdraft", "policy_violation", "stale_catalog"]),
        (stale_catalog_transferred, ["duplicate_entry", "stale_catalog", "stale_catalog"]),
        (clock_skew_and_gaps, ["clock_skew", "sequence_gap"]),
    )
}


@pytest.mark.parametrize("name", SCENARIOS)
async def test_the_sql_fast_path_and_the_pure_replay_agree(rig: Rig, name: str) -> None:
    scenario, kinds = SCENARIOS[name]
    play = Play(rig)
    await scenario(play)  # each push compares the two
    final = await sql_outcome(play)
    assert sorted(k.split(":")[0] for k in final["conflicts"]) == kinds, final["conflicts"]


_GATE_KINDS = st.sampled_from(["entry", "entry", "exit"])


@st.composite
def _step(draw: st.DrawFn) -> tuple[str, str, str, int, int, int]:
    """(device, kind, verdict, subject, amount, at_ms): any fact a device may record."""
    device = draw(st.sampled_from(["g0", "g1", "b0", "b1", "desk"]))
    if device[0] == "g":
        kind = draw(_GATE_KINDS)
    elif device[0] == "b":
        kind = draw(st.sampled_from(["sale", "sale", "sale", "refund"]))
    else:
        kind = draw(st.sampled_from(["topup", "refund"]))
    admitting = facts.FACTS[kind].admitting
    verdict = draw(
        st.one_of(st.sampled_from(admitting), st.sampled_from(facts.FACTS[kind].verdicts))
    )
    subject = draw(st.integers(0, 2 if device[0] == "g" else 1))
    return device, kind, verdict, subject, draw(st.integers(1, 600)), draw(st.integers(0, 300)) * 10


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_any_story_agrees(
    rig: Rig, festival: Callable[..., Awaitable[SampleFestival]], data: st.DataObject
) -> None:
    """Random facts of every kind and verdict, cut into batches pushed in any order, with a
    cancelled ticket, a blocked tag and top-ups at the ops desk or not: the two
    implementations agree after each push."""
    rig.fest = await festival(signed_tickets=3, opaque_tickets=0, wristbands=2,
                              opening_balance=500)  # fmt: skip
    play = Play(rig)
    seen = 0
    async with rig.pool.connection() as conn:
        if data.draw(st.booleans(), "cancel"):
            seen = (await tickets.cancel_ticket(conn, play.ticket(2), actor="ops")).seq
        if data.draw(st.booleans(), "block"):
            await wristband_ops.block(conn, play.fid, play.account(1), reason="lost", actor="ops")
    rig.now_ms = int(await rig.scalar("SELECT (extract(epoch FROM now()) * 1000)::bigint")) + 1000
    devs = {n: await rig.enrol({"g": "gate", "b": "bar", "d": "topup"}[n[0]], n)
            for n in ("g0", "g1", "b0", "b1", "desk")}  # fmt: skip
    steps = data.draw(st.lists(_step(), min_size=1, max_size=24), "steps")
    sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, kind, verdict, subject, amount, at_ms in steps:
        dev = devs[name]
        catalog_seq = data.draw(st.sampled_from([0, seen]))
        if name[0] == "g":
            payload: dict[str, Any] = {"ticket_id": str(play.ticket(subject))}
            sent[name].append(rig.event(dev, kind, verdict, payload, at_ms=at_ms,
                                        catalog_seq=catalog_seq))  # fmt: skip
        else:
            sent[name].append(play.money(dev, kind, subject, amount, verdict=verdict,
                                         at_ms=at_ms, catalog_seq=catalog_seq))  # fmt: skip
    batches = [
        (name, events[a:b])
        for name, events in sent.items()
        for a, b in itertools.pairwise(
            [
                0,
                *sorted(data.draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=2))),
                len(events),
            ]
        )
        if events[a:b]
    ]
    for name, batch in data.draw(st.permutations(batches), "order"):
        if data.draw(st.integers(0, 5), "desk") == 0:  # now and then a top-up at the ops desk
            async with rig.pool.connection() as conn:
                await wristband_ops.topup(conn, play.fid, play.account(0), 150, actor="desk")
        await play.push(devs[name], batch)
