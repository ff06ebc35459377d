"""Ingest's cheaper paths keep the contract.

What an event says on its own is read in Python (`central.events.row`), what needs the
catalog in SQL; a push's stored rows are read back by primary key to move presence and
money; a batch whose seqs are all new skips the per-row "already held?" check; presence is
published in the statement that merges it unless a ticket rule must run first. Each test
pins a behaviour one of those could break.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from central import events, feed, ingest, settle
from sync import hashing

from .sync_helpers import Rig


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    return {"signed_tickets": 4, "wristbands": 2, "opening_balance": 10_000}


_UUID_TEXT = st.builds(str, st.uuids())
_NEAR_UUIDS = st.one_of(
    _UUID_TEXT,
    _UUID_TEXT.map(str.upper),
    _UUID_TEXT.map(lambda s: "{" + s + "}"),
    _UUID_TEXT.map(lambda s: "urn:uuid:" + s),
    _UUID_TEXT.map(lambda s: s.replace("-", "")),
    _UUID_TEXT.map(lambda s: s[:8] + s[9:] + "-"),
    _UUID_TEXT.map(lambda s: "URN:UUID:" + s.upper()),
    st.text(alphabet="0123456789abcdefABCDEF-{}urniduURNID: xé\u212a", max_size=48),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(_NEAR_UUIDS, min_size=1, max_size=20))
@example(values=["", "-", "{}", "00000000-0000-0000-0000-00000000000g", "a" * 32, "A" * 32])
@example(values=["{" * 3 + "a" * 32 + "}", "0123456789abcdef0123456789abcdef" + "-" * 4])
def test_payload_uuid_reads_a_uuid_as_the_sql_function_does(pg_dsn: str, values: list[str]) -> None:
    """Python's reading (the hot path) and migration 0002's `payload_uuid` agree exactly."""
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT payload_uuid(s)::text FROM unnest(%s::text[]) WITH ORDINALITY AS x(s, o)"
            " ORDER BY o",
            (values,),
        ).fetchall()
    assert [events.payload_uuid(v) for v in values] == [r[0] for r in rows]


async def _stored(rig: Rig, device_id: str) -> list[tuple[Any, ...]]:
    async with rig.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT device_seq, status, reason, ticket_id, zone_id, account_id, amount"
            " FROM device_event WHERE device_id = %s ORDER BY device_seq",
            (uuid.UUID(device_id),),
        )
        return list(await cur.fetchall())


async def test_every_gate_check_gives_its_reason(rig: Rig) -> None:
    gate = await rig.enrol("gate")
    t = [x.ticket_id for x in rig.fest.tickets]
    zone = rig.fest.zone_id
    elsewhere = str(uuid.uuid4())
    cases: list[tuple[str, str, dict[str, Any], str | None, uuid.UUID | None]] = [
        ("entry", "ok", {"ticket_id": str(t[0]).upper()}, None, t[0]),
        ("entry", "ok", {"ticket_id": "{" + str(t[1]) + "}"}, None, t[1]),
        ("entry", "ok", {}, "missing_ticket", None),
        ("entry", "ok", {"ticket_id": "nope"}, "bad_payload", None),
        ("entry", "ok", {"ticket_id": str(t[2]), "zone_id": elsewhere}, "unknown_zone", None),
        ("entry", "ok", {"ticket_id": str(t[2]), "zone_id": 5}, "unknown_zone", None),
        ("entry", "already_inside", {}, None, None),  # kept as a record, with the zone
        ("entry", "ok", {"ticket_id": str(t[2]), "zone_id": str(zone).upper()}, None, t[2]),
        ("exit", "ok", {"ticket_id": elsewhere}, "unknown_ticket", None),
        ("exit", "unknown", {"ticket_id": elsewhere}, None, None),
        ("entry", "approved", {"ticket_id": str(t[3])}, "verdict_not_allowed", None),
        ("sale", "approved", {"amount": 5}, "kind_not_allowed", None),
        ("log", "info", {"message": "lens cleaned"}, None, None),
    ]
    batch = [rig.event(gate, k, v, p, at_ms=10 * i) for i, (k, v, p, _, _) in enumerate(cases)]
    resp = await rig.push(gate, batch)
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked_through"] == len(cases)
    stored = await _stored(rig, gate.device_id)
    assert [(s[1], s[2]) for s in stored] == [
        ("applied" if reason is None else "rejected", reason) for _, _, _, reason, _ in cases
    ]
    assert [s[3] for s in stored] == [ticket for *_, ticket in cases]
    # A gate event that takes effect, or is kept as a record, keeps the zone; a log does not.
    zones = [s[4] for s in stored]
    assert zones == [zone if r is None and k != "log" else None for k, _, _, r, _ in cases]
    assert await rig.scalar("SELECT occupancy FROM zone WHERE id = %s", zone) == 3


async def test_every_money_check_gives_its_reason(rig: Rig) -> None:
    bar = await rig.enrol("bar")
    a0, a1 = rig.fest.account_ids
    tag1 = hashing.tag_hash(rig.fest.hash_key, rig.fest.tag_uids[1]).hex()
    cases: list[tuple[str, str, dict[str, Any], str | None, uuid.UUID | None, int | None]] = [
        ("sale", "approved", {"account_id": str(a0), "amount": 100}, None, a0, 100),
        ("sale", "approved", {"account_id": str(a0)}, "bad_amount", None, None),
        ("sale", "approved", {"account_id": str(a0), "amount": 0}, "bad_amount", None, None),
        ("sale", "approved", {"account_id": str(a0), "amount": -5}, "bad_amount", None, None),
        ("sale", "approved", {"account_id": str(a0), "amount": 1.5}, "bad_amount", None, None),
        ("sale", "approved", {"account_id": str(a0), "amount": "5"}, "bad_amount", None, None),
        ("sale", "approved", {"account_id": str(a0), "amount": True}, "bad_amount", None, None),
        ("sale", "approved", {"account_id": str(a0), "amount": 10**9 + 1}, "bad_amount",
         None, None),
        ("sale", "approved", {"account_id": str(uuid.uuid4()), "amount": 100},
         "unknown_account", None, None),
        ("sale", "approved", {"tag_hash": tag1.upper(), "amount": 100}, None, a1, 100),
        ("sale", "approved", {"account_id": "nope", "tag_hash": tag1, "amount": 100}, None,
         a1, 100),
        ("sale", "approved", {"tag_hash": "abc", "amount": 100}, "unknown_account", None, None),
        ("sale", "insufficient_funds", {"account_id": str(a0)}, None, a0, 0),
        ("refund", "approved", {"account_id": str(a0), "amount": 50}, None, a0, 50),
        ("topup", "approved", {"account_id": str(a0), "amount": 50}, "kind_not_allowed",
         None, None),
        ("sale", "approved", {"account_id": str(a1), "amount": 10**9}, None, a1, 10**9),
    ]  # fmt: skip
    batch = [rig.event(bar, k, v, p, at_ms=10 * i) for i, (k, v, p, *_) in enumerate(cases)]
    resp = await rig.push(bar, batch)
    assert resp.status_code == 200, resp.text
    assert resp.json()["acked_through"] == len(cases)
    stored = await _stored(rig, bar.device_id)
    assert [(s[1], s[2]) for s in stored] == [
        ("applied" if reason is None else "rejected", reason) for _, _, _, reason, *_ in cases
    ]
    assert [(s[5], s[6]) for s in stored] == [(acc, amount) for *_, acc, amount in cases]
    opening = rig.fest.opening_balance
    balance = "SELECT balance FROM cashless_account WHERE id = %s"
    assert await rig.scalar(balance, a0) == opening - 100 + 50
    assert await rig.scalar(balance, a1) == opening - 200 - 10**9


async def test_a_push_around_held_seqs_applies_only_its_own_facts(rig: Rig) -> None:
    gate, bar = await rig.enrol("gate"), await rig.enrol("bar")
    t = [x.ticket_id for x in rig.fest.tickets]
    a0 = rig.fest.account_ids[0]
    assert (await rig.push(gate, [rig.entry(gate, t[0], seq=2, at_ms=20)])).status_code == 200
    assert (await rig.push(bar, [rig.sale(bar, a0, 100, seq=2, at_ms=20)])).status_code == 200
    head = await rig.scalar("SELECT head FROM feed_head")
    # Seqs 1 and 3 around the held 2: the push's range holds a row it did not store.
    resp = await rig.push(
        gate, [rig.entry(gate, t[1], seq=1, at_ms=10), rig.entry(gate, t[2], seq=3, at_ms=30)]
    )
    assert resp.json()["acked_through"] == 3
    resp = await rig.push(
        bar, [rig.sale(bar, a0, 100, seq=1, at_ms=10), rig.sale(bar, a0, 100, seq=3, at_ms=30)]
    )
    assert resp.json()["acked_through"] == 3
    assert await rig.scalar("SELECT occupancy FROM zone WHERE id = %s", rig.fest.zone_id) == 3
    balance = "SELECT balance FROM cashless_account WHERE id = %s"
    assert await rig.scalar(balance, a0) == rig.fest.opening_balance - 300
    async with rig.pool.connection() as conn:
        changes = await feed.read_after(conn, rig.fest.festival_id, head, 100)
    moved = sorted(str(c.row["ticket_id"]) for c in changes if c.table == "presence")
    assert moved == sorted(str(x) for x in (t[1], t[2]))  # not t[0] again


async def test_an_event_id_another_device_holds_is_kept_rejected_and_the_rest_applies(
    rig: Rig,
) -> None:
    g1, g2 = await rig.enrol("gate"), await rig.enrol("gate")
    t = [x.ticket_id for x in rig.fest.tickets]
    taken = rig.entry(g1, t[0], at_ms=10)
    assert (await rig.push(g1, [taken])).status_code == 200
    # All of g2's seqs are new, so its insert skips the "held?" check and meets the taken id.
    batch = [
        rig.entry(g2, t[1], at_ms=20),
        rig.entry(g2, t[2], at_ms=30) | {"event_id": taken["event_id"]},
        rig.exit(g2, t[1], at_ms=40),
    ]
    resp = await rig.push(g2, batch)
    assert resp.status_code == 200 and resp.json()["acked_through"] == 3
    stored = await _stored(rig, g2.device_id)
    assert [(s[0], s[1], s[2]) for s in stored] == [
        (1, "applied", None), (2, "rejected", "duplicate_event_id"), (3, "applied", None)
    ]  # fmt: skip
    log = "SELECT count(*) FROM zone_access_log WHERE device_id = %s"
    assert await rig.scalar(log, uuid.UUID(g2.device_id)) == 2
    assert await rig.scalar("SELECT occupancy FROM zone WHERE id = %s", rig.fest.zone_id) == 1
    assert await rig.scalar("SELECT count(*) FROM device_event") == 4


async def test_presence_is_published_after_the_ticket_rules_when_they_run(rig: Rig) -> None:
    g1, g2 = await rig.enrol("gate"), await rig.enrol("gate")
    t = rig.fest.tickets[0].ticket_id
    assert (await rig.push(g1, [rig.entry(g1, t, at_ms=10)])).status_code == 200
    head = await rig.scalar("SELECT head FROM feed_head")
    second = rig.entry(g2, t, at_ms=20)
    resp = await rig.push(g2, [second])  # a second gate admits it too: a duplicate entry
    assert resp.status_code == 200
    async with rig.pool.connection() as conn:
        changes = await feed.read_after(conn, rig.fest.festival_id, head, 100)
    assert [c.table for c in changes] == ["ticket", "presence"]
    assert changes[0].row["suspicious"] is True
    assert changes[1].row["inside"] is True
    assert changes[1].row["hlc"] == second["hlc"]  # the latest movement: g2's entry
    assert resp.json()["head_seq"] == changes[-1].seq  # the answer covers what it published


def _positional(query: str) -> tuple[str, int]:
    """A psycopg query's ``%(name)s`` placeholders as ``$n`` (for PREPARE), and how many."""
    names: dict[str, int] = {}
    text = re.sub(r"%\((\w+)\)s", lambda m: f"${names.setdefault(m[1], len(names) + 1)}", query)
    return text, len(names)


def test_hot_statements_probe_by_index_whatever_the_statistics(pg_dsn: str) -> None:
    """Statistics taken while presence, events and conflicts were empty do not make ingest's
    generic plans scan those tables whole (it did: a full scan of presence per admitted row,
    three times slower once the table had grown)."""
    hot = {"store": events.STORE, "store_fresh": events.STORE_FRESH,
           "gate": settle._GATE_SQL, "money": settle._MONEY_SQL}  # fmt: skip
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # every ingest table analysed empty
        with conn.transaction():
            conn.execute(f"SELECT {ingest.PLAN_SETTINGS}")
            for name, query in hot.items():
                text, count = _positional(query)
                conn.execute(f"PREPARE {name} AS {text}")
                rows = conn.execute(f"EXPLAIN EXECUTE {name}({', '.join(['NULL'] * count)})")
                plan = "\n".join(r[0] for r in rows.fetchall())
                assert "Index Scan" in plan, plan
                assert "Seq Scan" not in plan, f"{name}:\n{plan}"
