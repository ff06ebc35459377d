"""`festgate-central ticket|wristband|conflict …` on a real database, by names (issue 15).

Typer's CliRunner in process: each command opens its own connection with ``--dsn``, so the
tests are plain functions and set their festival up with `asyncio.run` of their own.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from psycopg import AsyncConnection
from typer.testing import CliRunner, Result

from central.auth import DevicePrincipal, authenticate
from central.cli import app
from central.enrol import create_enrol_code, enrol
from central.ingest import ingest_batch
from central.sample import SampleFestival, create_sample_festival
from sync import hlc
from sync.ids import uuid7_text
from sync.protocol import Event
from sync.vocab import EventKind
from tests.central.ops_state import stored, written_together
from tests.pg_tools import on_db as _db

runner = CliRunner()


@pytest.fixture
def fest(pg_dsn: str) -> SampleFestival:
    """A sample festival by the slug ``summer``."""
    return _db(pg_dsn, lambda conn: create_sample_festival(conn, slug="summer", wristbands=2))


def _cli(dsn: str, *args: str) -> Result:
    return runner.invoke(app, ["--dsn", dsn, *args])


def _json(dsn: str, *args: str) -> Any:
    result = _cli(dsn, *args, "-f", "summer", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _refused(dsn: str, code: str, *args: str) -> str:
    """Run a command that must be refused: one line on stderr, the code in its JSON."""
    human = _cli(dsn, *args, "-f", "summer")
    assert human.exit_code == 1 and human.stdout == "", human.output
    assert human.stderr.count("\n") == 1 and human.stderr.startswith("error: "), human.stderr
    as_json = _cli(dsn, *args, "-f", "summer", "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["error"] == code
    return human.stderr


def test_ticket_commands_by_any_name(pg_dsn: str, fest: SampleFestival) -> None:
    code, tid = fest.tickets[0].code, fest.tickets[0].ticket_id
    shown = _cli(pg_dsn, "ticket", "show", code, "-f", "summer")
    assert shown.exit_code == 0, shown.output
    for text in ("Weekend (STANDARD), SOLD", "120.00 EUR", "Europe/Paris", "ticket.issue"):
        assert text in shown.stdout, text
    assert _json(pg_dsn, "ticket", "show", str(tid))["ticket"]["id"] == str(tid)
    blocked = _json(pg_dsn, "ticket", "block", code, "--reason", "stolen")
    assert (blocked["blocked"], blocked["block_reason"]) == (True, "stolen")
    assert _db(pg_dsn, lambda c: written_together(c, "ticket", tid, blocked["seq"])) == (
        "ticket.block"
    )
    before = _db(pg_dsn, stored)
    assert "already blocked" in _refused(pg_dsn, "already_blocked", "ticket", "block", code)
    assert _db(pg_dsn, stored) == before
    assert _json(pg_dsn, "ticket", "unblock", code)["blocked"] is False
    moved = _cli(pg_dsn, "ticket", "transfer", code, "-f", "summer", "--holder", "crm:7")
    assert moved.exit_code == 0, moved.output
    new_code = moved.stdout.strip().splitlines()[-1]  # on a line of its own, for copying
    assert new_code.startswith("FG1.") and new_code != code
    assert _json(pg_dsn, "ticket", "show", "crm:7")["ticket"]["code_version"] == 1
    assert _json(pg_dsn, "ticket", "cancel", new_code)["status"] == "CANCELLED"
    _refused(pg_dsn, "wrong_status", "ticket", "transfer", code)
    assert _json(pg_dsn, "ticket", "refund", code)["status"] == "REFUNDED"
    history = _json(pg_dsn, "ticket", "show", code)["audit"]
    assert [a["action"] for a in history] == [
        "ticket.issue", "ticket.block", "ticket.unblock", "ticket.transfer",
        "ticket.cancelled", "ticket.refunded",
    ]  # fmt: skip
    assert all(a["actor"].startswith("cli") for a in history[1:])


def test_wristband_commands_by_tag_uid(pg_dsn: str, fest: SampleFestival) -> None:
    uid, aid = fest.tag_uids[0], fest.account_ids[0]
    shown = _cli(pg_dsn, "wristband", "show", uid.upper(), "-f", "summer")
    assert shown.exit_code == 0, shown.output
    assert "50.00 EUR" in shown.stdout and "usable" in shown.stdout
    topped = _json(pg_dsn, "wristband", "topup", uid, "1000")
    assert (topped["balance"], topped["currency"]) == (6000, "EUR")
    assert _db(pg_dsn, lambda c: written_together(c, "cashless_account", aid, topped["seq"])) == (
        "account.topup"
    )
    before = _db(pg_dsn, stored)
    line = _refused(pg_dsn, "insufficient_balance", "wristband", "refund", uid, "999999")
    assert "holds 60.00 EUR, less than 9999.99 EUR" in line
    assert _db(pg_dsn, stored) == before
    assert _json(pg_dsn, "wristband", "refund", uid, "1000")["balance"] == 5000
    blocked = _json(pg_dsn, "wristband", "block", str(aid), "--reason", "lost")
    assert (blocked["blocked"], blocked["listed"]) == (True, True)
    _refused(pg_dsn, "already_blocked", "wristband", "block", uid)
    done = _cli(pg_dsn, "wristband", "unblock", uid, "-f", "summer")
    assert done.exit_code == 0 and "usable" in done.stdout, done.output
    _refused(pg_dsn, "not_blocked", "wristband", "unblock", uid)
    _refused(pg_dsn, "not_found", "wristband", "show", "04ffffffffffff")
    bad = _cli(pg_dsn, "wristband", "topup", uid, "0", "-f", "summer")
    assert bad.exit_code == 2  # typer refuses the amount before any database work


async def _conflicts(conn: AsyncConnection[Any], fest: SampleFestival) -> None:
    """Gates north and south admit the first ticket with no exit between (a duplicate entry);
    gate west loses event 2 (a sequence gap)."""
    gates = {}
    for name in ("north", "south", "west"):
        code = await create_enrol_code(
            conn, festival_id=fest.festival_id, role="gate", zone_id=fest.zone_id,
            vendor_id=None, ttl_s=600,
        )  # fmt: skip
        device = await authenticate(conn, (await enrol(conn, code=code, name=name)).token)
        assert isinstance(device, DevicePrincipal)
        gates[name] = device
    await conn.commit()
    now = time.time_ns() // 1_000_000
    ticket = str(fest.tickets[0].ticket_id)
    for name, at, kind, seqs in [("north", 1, "entry", (1,)), ("south", 2, "entry", (1,)),
                                 ("west", 3, "log", (1, 3))]:  # fmt: skip
        device = gates[name]
        batch = [_event(device, seq, now + at, kind, {"ticket_id": ticket}) for seq in seqs]
        await ingest_batch(conn, device, batch, received_ms=now + at)


def _event(
    device: DevicePrincipal, seq: int, at_ms: int, kind: str, payload: dict[str, Any]
) -> Event:
    return Event(
        event_id=uuid7_text(), device_id=str(device.id), device_seq=seq,
        hlc=hlc.pack(at_ms, 0), wall_ms=at_ms, catalog_seq=0, kind=EventKind(kind),
        verdict="ok", payload=payload,
    )  # fmt: skip


def test_conflict_commands(pg_dsn: str, fest: SampleFestival) -> None:
    _db(pg_dsn, lambda conn: _conflicts(conn, fest))
    listed = _cli(pg_dsn, "conflicts", "-f", "summer")  # the README's short form
    assert listed.exit_code == 0, listed.output
    assert "duplicate_entry" in listed.stdout and "sequence_gap" in listed.stdout
    (gap,) = _json(pg_dsn, "conflict", "list", "--device", "WEST")["conflicts"]
    shown = _cli(pg_dsn, "conflict", "show", gap["id"], "-f", "summer")
    assert shown.exit_code == 0, shown.output
    for text in ("sequence_gap about device west: open", "missing", "next held", "never arrived"):
        assert text in shown.stdout, text
    (dup,) = _json(pg_dsn, "conflict", "list", "--ticket", fest.tickets[0].code)["conflicts"]
    sides = _json(pg_dsn, "conflict", "show", dup["id"])["sides"]
    assert [(s["label"], s["device"], s["zone"]) for s in sides] == [
        ("stands", "north", "Main gate"), ("flagged", "south", "Main gate"),
    ]  # fmt: skip
    done = _json(pg_dsn, "conflict", "resolve", gap["id"], "--note", "SD card replaced")
    assert done["resolution_note"] == "SD card replaced"
    before = _db(pg_dsn, stored)
    line = _refused(pg_dsn, "already_resolved", "conflict", "resolve", gap["id"], "--note", "again")
    assert "SD card replaced" in line
    _refused(pg_dsn, "bad_note", "conflict", "resolve", dup["id"], "--note", " ")
    _refused(pg_dsn, "not_found", "conflict", "show", str(uuid.uuid4()))
    _refused(pg_dsn, "not_found", "conflict", "list", "--device", "east")
    assert _db(pg_dsn, stored) == before
    assert [c["id"] for c in _json(pg_dsn, "conflict", "list", "--resolved")["conflicts"]] == [
        gap["id"]
    ]
    assert len(_json(pg_dsn, "conflicts", "--all")["conflicts"]) == 2


def test_names_that_find_nothing_or_too_much_are_one_line(
    pg_dsn: str, fest: SampleFestival
) -> None:
    _refused(pg_dsn, "not_found", "ticket", "show", "no-such-ticket")
    wrong = _cli(pg_dsn, "ticket", "show", fest.tickets[0].code, "-f", "winter", "--json")
    assert wrong.exit_code == 1 and json.loads(wrong.stdout)["error"] == "not_found"

    async def twins(conn: AsyncConnection[Any]) -> None:
        from central import tickets

        for _ in range(2):
            await tickets.issue_ticket(
                conn, fest.festival_id, category_id=fest.category_id, actor="t",
                holder_ref="family 7",
            )  # fmt: skip

    _db(pg_dsn, twins)
    assert "use the id" in _refused(pg_dsn, "ambiguous", "ticket", "cancel", "family 7")
