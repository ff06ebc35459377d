"""Imports: one transaction per file; a bad row refuses the file with its row and reason."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from central import cashless, feed, imports
from central.errors import ImportRowError
from central.sample import SampleFestival
from config.vocab import MAX_CODE_CHARS
from sync import hashing, ticketcode

Factory = Callable[..., Awaitable[SampleFestival]]


async def _state(conn: AsyncConnection[Any], f: SampleFestival) -> tuple[int, ...]:
    counts = []
    for table in (
        "ticket",
        "cashless_account",
        "cashless_transaction",
        "vendor",
        "zone",
        "audit_log",
    ):
        cur = await conn.execute(f"SELECT count(*) FROM {table}")
        rec = await cur.fetchone()
        assert rec is not None
        counts.append(int(rec[0]))
    return (*counts, await feed.head(conn, f.festival_id))


def test_read_rows_takes_csv_and_json(tmp_path: Path) -> None:
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("category,code\nWeekend, A1 \nWeekend,A2\n", encoding="utf-8")
    json_file = tmp_path / "t.json"
    json_file.write_text(json.dumps([{"category": "Weekend", "code": "A1", "price": 5}]))
    assert imports.read_rows(csv_file) == [
        {"category": "Weekend", "code": "A1"},
        {"category": "Weekend", "code": "A2"},
    ]
    assert imports.read_rows(json_file) == [{"category": "Weekend", "code": "A1", "price": "5"}]
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(ImportRowError) as err:
        imports.read_rows(bad)
    assert err.value.row == 0


async def test_opaque_ticket_import_stores_hashes(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    rows = [{"category": "Weekend", "code": f"X-{i}", "holder_ref": f"crm:{i}"} for i in range(5)]
    async with pg_pool.connection() as conn:
        head = await feed.head(conn, f.festival_id)
        got = (
            await imports.import_tickets(
                conn, f.festival_id, rows, actor="ops", sign=False, accept_weak_codes=True
            )
        ).tickets
        assert [t.row.code_hash for t in got] == [
            hashing.code_hash(f.hash_key, f"X-{i}").hex() for i in range(5)
        ]
        assert [t.row.seq for t in got] == list(range(head + 1, head + 6))
        assert await feed.head(conn, f.festival_id) == head + 5


async def test_signed_ticket_import_outputs_verifiable_codes(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        done = await imports.import_tickets(
            conn, f.festival_id, [{"category": "Weekend"}] * 3, actor="ops", sign=True
        )
    assert done.strength is None  # signed codes: forging one needs central's private key
    got = done.tickets
    assert len({t.code for t in got}) == 3
    for t in got:
        code = ticketcode.decode(t.code)
        assert code.verify(f.public_key)
        assert code.ticket_id == t.ticket_id
        assert t.row.code_hash == hashing.code_hash(f.hash_key, t.code).hex()  # central's vouch


@pytest.mark.parametrize(
    ("rows", "sign", "row", "reason"),
    [
        (
            [{"category": "Weekend", "code": "A"}, {"category": "Nope", "code": "B"}],
            False,
            2,
            "unknown category",
        ),
        (
            [{"category": "Weekend", "code": "A"}, {"category": "Weekend", "code": "A"}],
            False,
            2,
            "repeats row 1",
        ),
        ([{"category": "Weekend", "code": ""}], False, 1, "code is empty"),
        (
            [
                {"category": "Weekend", "code": "A"},
                {"category": "Weekend", "code": "C" * (MAX_CODE_CHARS + 1)},
            ],
            False,
            2,
            f"longer than {MAX_CODE_CHARS} characters",
        ),
        (
            [{"category": "Weekend"}, {"category": "Weekend", "code": "Z"}],
            True,
            2,
            "issues signed codes",
        ),
        ([{"category": "Weekend", "code": "A", "price": "12.50"}], False, 1, "whole number"),
        ([{"category": "Weekend", "code": "A", "status": "LOST"}], False, 1, "unknown status"),
    ],
)
async def test_bad_ticket_row_rejects_the_whole_file(
    festival: Factory,
    pg_pool: AsyncConnectionPool,
    rows: list[dict[str, str]],
    sign: bool,
    row: int,
    reason: str,
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        before = await _state(conn, f)
        with pytest.raises(ImportRowError) as err:
            await imports.import_tickets(conn, f.festival_id, rows, actor="ops", sign=sign)
        assert err.value.row == row
        assert reason in err.value.reason
        await conn.rollback()
        assert await _state(conn, f) == before


async def test_ticket_import_refuses_a_code_already_stored(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    rows = [
        {"category": "Weekend", "code": "NEW"},
        {"category": "Weekend", "code": f.opaque_tickets[0].code},
    ]
    async with pg_pool.connection() as conn:
        before = await _state(conn, f)
        with pytest.raises(ImportRowError, match="row 2: a ticket with this code exists"):
            await imports.import_tickets(conn, f.festival_id, rows, actor="ops", sign=False)
        await conn.rollback()
        assert await _state(conn, f) == before


def _codes(n: int, alphabet: str, length: int, seed: int = 14) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(alphabet, k=length)) for _ in range(n)]


async def _code_bits(conn: AsyncConnection[Any], f: SampleFestival) -> list[int | None]:
    cur = await conn.execute(
        "SELECT code_bits FROM ticket WHERE festival_id = %s AND code_hash IS NOT NULL "
        "ORDER BY created_at, code_bits",
        (f.festival_id,),
    )
    return [r[0] for r in await cur.fetchall()]


async def test_six_digit_outside_codes_are_refused_naming_the_bits(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    rows = [{"category": "Weekend", "code": f"{i:06d}"} for i in range(0, 1_000_000, 1999)]
    async with pg_pool.connection() as conn:
        before = await _state(conn, f)
        with pytest.raises(ImportRowError) as err:
            await imports.import_tickets(conn, f.festival_id, rows, actor="ops", sign=False)
        await conn.rollback()
        assert await _state(conn, f) == before  # nothing stored
    reason = err.value.reason
    assert "too weak to survive offline guessing" in reason
    assert "about 19.9 bits (6 characters of 0-9)" in reason
    assert "among the festival's 502 outside codes" in reason  # 501 new + the sample festival's one
    assert "codes need 73 bits here" in reason and "--accept-weak-codes" in reason


async def test_weak_codes_accepted_with_the_option_keep_their_bits_and_say_so(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival(opaque_tickets=0)
    rows = [{"category": "Weekend", "code": c} for c in _codes(200, "0123456789", 6)]
    rows = list({r["code"]: r for r in rows}.values())  # no repeats by chance
    async with pg_pool.connection() as conn:
        done = await imports.import_tickets(
            conn, f.festival_id, rows, actor="ops", sign=False, accept_weak_codes=True
        )
        assert done.strength is not None and done.strength.weak
        assert "stolen gate" in done.strength.warning()
        assert await _code_bits(conn, f) == [19] * len(rows)
        cur = await conn.execute(
            "SELECT new_value FROM audit_log "
            "WHERE action = 'ticket.import_batch' AND festival_id = %s",
            (f.festival_id,),
        )
        (audit,) = (r[0] for r in await cur.fetchall())
    assert (audit["code_bits_min"], audit["weak_codes_accepted"]) == (19, True)


async def test_strong_outside_codes_import_silently_with_their_bits(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival(opaque_tickets=0)
    codes = _codes(1000, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 26)  # base32, 130 bits
    async with pg_pool.connection() as conn:
        done = await imports.import_tickets(
            conn, f.festival_id, [{"category": "Weekend", "code": c} for c in codes],
            actor="ops", sign=False,
        )  # fmt: skip
        assert done.strength is not None and not done.strength.weak
        bits = await _code_bits(conn, f)
    assert len(bits) == 1000 and min(b for b in bits if b is not None) >= 120


async def test_an_outside_code_as_long_as_a_reader_passes_imports(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival(opaque_tickets=0)
    (code,) = _codes(1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", MAX_CODE_CHARS)
    async with pg_pool.connection() as conn:
        done = await imports.import_tickets(
            conn, f.festival_id, [{"category": "Weekend", "code": f" {code}\n"}], actor="ops",
            sign=False,
        )  # fmt: skip
    assert [t.row.code_hash for t in done.tickets] == [hashing.code_hash(f.hash_key, code).hex()]


async def test_splitting_an_import_does_not_dodge_the_count(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    # 17 hex digits are 68 bits: enough among 16 codes (64 + 4), not among 17.
    f = await festival(opaque_tickets=0)
    codes = _codes(17, "0123456789ABCDEF", 17)
    async with pg_pool.connection() as conn:
        first = [{"category": "Weekend", "code": c} for c in codes[:16]]
        await imports.import_tickets(conn, f.festival_id, first, actor="ops", sign=False)
        with pytest.raises(ImportRowError, match="among the festival's 17 outside codes"):
            await imports.import_tickets(
                conn, f.festival_id, [{"category": "Weekend", "code": codes[16]}],
                actor="ops", sign=False,
            )  # fmt: skip
        await conn.rollback()


async def test_wristband_import_opens_balances_as_topups(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    rows = [{"tag_uid": "04:A1:B2:C3", "balance": "2500"}, {"tag_uid": "04a1b2c4"}]
    async with pg_pool.connection() as conn:
        got = await imports.import_wristbands(conn, f.festival_id, rows, actor="ops")
        assert [a.balance for a in got] == [2500, 0]
        assert got[0].tag_hash == hashing.tag_hash(f.hash_key, "04a1b2c3").hex()
        import uuid

        assert await cashless.balance_from_ledger(conn, uuid.UUID(got[0].id)) == 2500
        before = await _state(conn, f)
        bad = [{"tag_uid": "04ffff01"}, {"tag_uid": "zz-not-hex"}]
        with pytest.raises(ImportRowError) as err:
            await imports.import_wristbands(conn, f.festival_id, bad, actor="ops")
        assert err.value.row == 2
        await conn.rollback()
        with pytest.raises(ImportRowError, match="row 1: this wristband already has an account"):
            await imports.import_wristbands(
                conn, f.festival_id, [{"tag_uid": "04A1B2C3"}], actor="ops"
            )
        await conn.rollback()
        assert await _state(conn, f) == before


async def test_vendor_import_groups_products_and_rejects_whole_file(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    rows = [
        {"vendor": "Food truck", "type": "FOOD", "product": "Fries", "price": "400"},
        {"vendor": "Food truck", "product": "Burger", "price": "900"},
        {"vendor": "Main bar", "product": "Wine", "price": "600"},
    ]
    async with pg_pool.connection() as conn:
        assert await imports.import_vendors(conn, f.festival_id, rows, actor="ops") == {
            "vendors": 1,
            "products": 3,
        }
        before = await _state(conn, f)
        bad = [
            {"vendor": "Crêpes", "product": "Sugar", "price": "300"},
            {"vendor": "Main bar", "product": "Beer", "price": "450"},
        ]
        with pytest.raises(ImportRowError, match="row 2: product 'Beer' exists"):
            await imports.import_vendors(conn, f.festival_id, bad, actor="ops")
        await conn.rollback()
        assert await _state(conn, f) == before


async def test_zone_import_parses_types_and_rejects_whole_file(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    async with pg_pool.connection() as conn:
        zones = await imports.import_zones(
            conn,
            f.festival_id,
            [
                {
                    "name": "VIP deck",
                    "capacity": "200",
                    "required_types": "VIP|backstage",
                    "reentry": "no",
                }
            ],
            actor="ops",
        )
        assert (zones[0].capacity, zones[0].required_types, zones[0].reentry) == (
            200,
            ("VIP", "BACKSTAGE"),
            False,
        )
        before = await _state(conn, f)
        with pytest.raises(ImportRowError, match="row 2: unknown ticket type"):
            await imports.import_zones(
                conn,
                f.festival_id,
                [{"name": "Camp"}, {"name": "X", "required_types": "GOLD"}],
                actor="ops",
            )
        await conn.rollback()
        assert await _state(conn, f) == before


async def test_a_big_import_reports_progress_and_stores_every_row(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()
    total = imports.STEP * 2 + 7
    rows = [{"tag_uid": f"04{i:012x}", "balance": "100"} for i in range(total)]
    seen: list[tuple[str, int, int]] = []
    async with pg_pool.connection() as conn:
        got = await imports.import_wristbands(
            conn, f.festival_id, rows, actor="ops", progress=lambda *a: seen.append(a)
        )
        cur = await conn.execute(
            "SELECT count(*) FROM cashless_account WHERE festival_id = %s", (f.festival_id,)
        )
        stored = await cur.fetchone()
    assert len(got) == total and stored is not None and stored[0] == total + len(f.account_ids)
    for stage in ("checking", "storing"):
        done = [d for s, d, t in seen if s == stage and t == total]
        assert done == sorted(done) and done[-1] == total and len(done) == 3


SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"


async def test_the_documented_sample_files_import(
    festival: Factory, pg_pool: AsyncConnectionPool
) -> None:
    f = await festival()  # with a category "Weekend", which the ticket samples name
    async with pg_pool.connection() as conn:
        read = imports.read_rows
        zones = await imports.import_zones(
            conn, f.festival_id, read(SAMPLES / "zones.csv"), actor="t"
        )
        signed = await imports.import_tickets(
            conn, f.festival_id, read(SAMPLES / "tickets.csv"), actor="t", sign=True
        )
        outside = await imports.import_tickets(
            conn, f.festival_id, read(SAMPLES / "outside.csv"), actor="t", sign=False
        )
        bands = await imports.import_wristbands(
            conn, f.festival_id, read(SAMPLES / "wristbands.csv"), actor="t"
        )
        vendors = await imports.import_vendors(
            conn, f.festival_id, read(SAMPLES / "vendors.csv"), actor="t"
        )
    assert [z.name for z in zones] == ["General", "VIP", "Backstage", "Camping"]
    assert [t.holder_ref for t in signed.tickets] == ["ORDER-1001", "ORDER-1002", "ORDER-1003"]
    assert outside.strength is not None and not outside.strength.weak
    assert [a.balance for a in bands] == [5000, 2000, 0]
    assert vendors == {"vendors": 2, "products": 3}
