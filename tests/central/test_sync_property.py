"""Arrival order does not matter: any batching and order of the same facts ends the same.

Each example builds a fresh festival (so examples are isolated inside one database), makes
two transfers at central (a signed and an outside ticket), enrols five devices, cuts each
device's fixed script of events into random batches, pushes the batches in a random order
(some twice), and compares conflicts, balances, holds, presence and occupancy with those of
the first example, all ids replaced by stable labels.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from central import tickets
from central.sample import SampleFestival
from tests.central.sync_helpers import Dev, Rig

# (device, kind, verdict, subject index, amount, at_ms): a day at two gates' worth of trouble.
# A gate's subject is a ticket and the code scanned (`_gate_payloads`): 0-3 signed tickets
# by id alone, 4/5 a transferred signed ticket's old/new code, 6/7 an outside one's.
SCRIPT: dict[str, list[tuple[str, str, int, int, int]]] = {
    "g0": [("entry", "ok", 0, 0, 100), ("entry", "ok", 1, 0, 200), ("exit", "ok", 0, 0, 600),
           ("entry", "ok", 2, 0, 700), ("entry", "ok", 4, 0, 800), ("exit", "ok", 4, 0, 810)],
    "g1": [("entry", "ok", 0, 0, 300), ("entry", "ok", 1, 0, 150), ("exit", "ok", 1, 0, 900),
           ("entry", "ok", 3, 0, 950), ("entry", "ok", 6, 0, 955), ("exit", "ok", 6, 0, 965)],
    "g2": [("entry", "ok_reentry", 0, 0, 650), ("entry", "ok", 2, 0, 710),
           ("entry", "already_inside", 3, 0, 100), ("entry", "ok", 3, 0, 960),
           ("entry", "ok", 5, 0, 820), ("entry", "ok", 7, 0, 970)],
    "b0": [("sale", "approved", 0, 400, 100), ("sale", "approved", 0, 400, 500),
           ("sale", "approved", 1, 300, 600)],
    "b1": [("sale", "approved", 0, 300, 300), ("sale", "approved", 1, 800, 700),
           ("refund", "approved", 1, 200, 800)],
}  # fmt: skip
_reference: dict[str, Any] = {}


async def _gate_payloads(rig: Rig) -> list[dict[str, Any]]:
    """What a gate's event says of each subject of `SCRIPT`, once the transfers are made."""
    signed, outside = rig.fest.tickets[4], rig.fest.opaque_tickets[0]
    async with rig.pool.connection() as conn:
        await tickets.transfer_ticket(conn, signed.ticket_id, actor="ops")
        moved = await tickets.transfer_ticket(conn, outside.ticket_id, actor="ops")
    plain: list[dict[str, Any]] = [{"ticket_id": str(t.ticket_id)} for t in rig.fest.tickets[:4]]
    codes: list[dict[str, Any]] = [
        {"code_version": 0}, {"code_version": 1},
        {"code_hash": outside.row.code_hash}, {"code_hash": moved.row.code_hash},
    ]  # fmt: skip
    ids = [signed.ticket_id] * 2 + [outside.ticket_id] * 2
    return plain + [{"ticket_id": str(t), **c} for t, c in zip(ids, codes, strict=True)]


def _events(
    rig: Rig, devs: dict[str, Dev], gates: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for name, steps in SCRIPT.items():
        dev, events = devs[name], []
        for kind, verdict, idx, amount, at in steps:
            if name.startswith("g"):
                payload: dict[str, Any] = gates[idx]
            else:
                payload = {"account_id": str(rig.fest.account_ids[idx]), "amount": amount}
            events.append(rig.event(dev, kind, verdict, payload, at_ms=at))
        out[name] = events
    return out


async def _outcome(rig: Rig, labels: dict[str, str]) -> dict[str, Any]:
    """The state that must not depend on arrival order, with ids replaced by labels."""

    def norm(value: Any) -> Any:
        if isinstance(value, dict):
            if "event_id" in value:
                return labels[str(value["event_id"])]
            # A catalog change's time is when this example made it (its seq is the same).
            return {k: "at" if k == "at_ms" else norm(v) for k, v in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        if isinstance(value, uuid.UUID | str):
            text = str(value)
            for raw, label in labels.items():
                text = text.replace(raw, label)
            return text
        return value

    fid = rig.fest.festival_id
    async with rig.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT kind, natural_key, event_ids, facts, detail, resolved_at IS NULL AS open"
            " FROM conflict WHERE festival_id = %s"
            " AND (resolved_at IS NULL OR kind <> 'sequence_gap') ORDER BY natural_key",
            (fid,),
        )
        conflicts = sorted(norm([dict(r) for r in await cur.fetchall()]), key=str)
        await cur.execute(
            "SELECT a.id, a.balance, a.debt, a.blocked, h.account_id IS NOT NULL AS held,"
            " (SELECT sum(amount) FROM cashless_ledger t WHERE t.account_id = a.id) AS ledger"
            " FROM cashless_account a LEFT JOIN account_hold h ON h.account_id = a.id"
            " WHERE a.festival_id = %s ORDER BY a.id",
            (fid,),
        )
        accounts = sorted(norm([dict(r) for r in await cur.fetchall()]), key=str)
        await cur.execute(
            "SELECT p.ticket_id, p.inside, t.suspicious FROM ticket t"
            " LEFT JOIN ticket_presence p ON p.ticket_id = t.id WHERE t.festival_id = %s",
            (fid,),
        )
        tickets = sorted(norm([dict(r) for r in await cur.fetchall()]), key=str)
        await cur.execute("SELECT occupancy FROM zone WHERE festival_id = %s", (fid,))
        occupancy = [r["occupancy"] for r in await cur.fetchall()]
        await cur.execute(
            "SELECT count(*) AS n FROM zone_access_log WHERE festival_id = %s", (fid,)
        )
        access = (await cur.fetchone() or {}).get("n")
    return {"conflicts": conflicts, "accounts": accounts, "tickets": tickets,
            "occupancy": occupancy, "access": access}  # fmt: skip


async def _run(rig: Rig, festival: Callable[..., Awaitable[SampleFestival]], plan: Any) -> Any:
    rig.fest = await festival(signed_tickets=5, wristbands=2, opening_balance=1000)
    gates = await _gate_payloads(rig)
    rig.now_ms = int(await rig.scalar("SELECT (extract(epoch FROM now()) * 1000)::bigint")) + 1000
    devs = {name: await rig.enrol("gate" if name[0] == "g" else "bar", name) for name in SCRIPT}
    events = _events(rig, devs, gates)
    labels = {d.device_id: name for name, d in devs.items()}
    labels |= {str(t.ticket_id): f"T{i}" for i, t in enumerate(rig.fest.tickets)}
    labels |= {str(t.ticket_id): f"O{i}" for i, t in enumerate(rig.fest.opaque_tickets)}
    labels |= {g["code_hash"]: f"H{i}" for i, g in enumerate(gates) if "code_hash" in g}
    labels |= {str(a): f"A{i}" for i, a in enumerate(rig.fest.account_ids)}
    labels[str(rig.fest.zone_id)] = "Z"
    labels |= {e["event_id"]: f"{n}#{e['device_seq']}" for n, es in events.items() for e in es}
    batches = plan(events)
    for name, batch in batches:
        resp = await rig.push(devs[name], batch)
        assert resp.status_code == 200, resp.text
    for name, dev in devs.items():  # every device ends fully acked, whatever the order
        last = (await rig.push(dev, events[name][-1:])).json()["acked_through"]
        assert last == len(events[name])
    return await _outcome(rig, labels)


def _in_order(events: dict[str, list[dict[str, Any]]]) -> list[tuple[str, list[dict[str, Any]]]]:
    return list(events.items())


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_any_order_and_batching_ends_the_same(
    rig: Rig, festival: Callable[..., Awaitable[SampleFestival]], data: st.DataObject
) -> None:
    if "outcome" not in _reference:
        _reference["outcome"] = await _run(rig, festival, _in_order)
        ref = _reference["outcome"]
        kinds = sorted(c["kind"] for c in ref["conflicts"])
        assert kinds == ["duplicate_entry"] * 4 + ["overdraft"] * 2 + ["stale_catalog"] * 2
        assert [a["balance"] for a in ref["accounts"]] in ([-100, 100], [100, -100])
        assert ref["occupancy"] == [5]

    def plan(events: dict[str, list[dict[str, Any]]]) -> list[tuple[str, list[dict[str, Any]]]]:
        batches: list[tuple[str, list[dict[str, Any]]]] = []
        for name, evs in events.items():
            cuts = sorted(data.draw(st.sets(st.integers(1, len(evs) - 1), max_size=3)))
            bounds = [0, *cuts, len(evs)]
            batches += [(name, evs[a:b]) for a, b in itertools.pairwise(bounds)]
        replays = data.draw(st.lists(st.sampled_from(batches), max_size=3))
        order: list[tuple[str, list[dict[str, Any]]]] = data.draw(
            st.permutations(batches + replays)
        )
        return order

    assert await _run(rig, festival, plan) == _reference["outcome"]
