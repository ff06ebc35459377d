"""Bulk imports for ops: tickets, wristbands, vendors with products, zones.

An import is ONE transaction: every row is checked first, and a bad row refuses the whole
file with its row number (1 = first record, header not counted) and the reason; nothing is
stored. Files are CSV with a header row, or JSON (a list of objects).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection, errors

from central import audit, catalog, code_entropy, feed, keys
from central.errors import CatalogError, ImportRowError
from central.rows import Record, fetch_one
from central.tickets import IssuedTicket, signed_code
from config.vocab import MAX_CODE_CHARS
from sync import hashing
from sync.catalog import AccountRow, TicketRow, ZoneRow
from sync.vocab import TicketStatus, TicketType

ImportRow = Mapping[str, str]
# Called as (stage, rows done, rows in all) while a big import works: "checking", "storing".
Progress = Callable[[str, int, int], None]
STEP = 5000  # rows per progress report and per insert round trip


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None and (done % STEP == 0 or done == total):
        progress(stage, done, total)


async def _insert_many(
    conn: AsyncConnection[Any],
    query: str,
    args: Sequence[Sequence[Any]],
    progress: Progress | None,
) -> None:
    """executemany in rounds of `STEP` rows, reporting each (one transaction throughout)."""
    async with conn.cursor() as c:
        for start in range(0, len(args), STEP):
            await c.executemany(query, args[start : start + STEP])
            _report(progress, "storing", min(start + STEP, len(args)), len(args))


@dataclass(frozen=True, slots=True)
class TicketImport:
    """The tickets an import stored, and how its outside codes stand up to offline guessing."""

    tickets: list[IssuedTicket]
    strength: code_entropy.Assessment | None  # None for signed codes


def read_rows(path: Path) -> list[dict[str, str]]:
    """Read an import file (.json: list of objects; otherwise CSV with a header)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportRowError(0, f"not JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(data, list):
            raise ImportRowError(0, "JSON import must be a list of objects")
        out: list[dict[str, str]] = []
        for n, item in enumerate(data, 1):
            if not isinstance(item, dict):
                raise ImportRowError(n, "not an object")
            out.append({str(k): "" if v is None else str(v) for k, v in item.items()})
        return out
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for n, rec in enumerate(reader, 1):
        if None in rec:
            raise ImportRowError(n, "more fields than the header names")
        rows.append({k.strip(): (v or "").strip() for k, v in rec.items()})
    return rows


def _get(row: ImportRow, field: str) -> str:
    return (row.get(field) or "").strip()


def _int(n: int, row: ImportRow, field: str, *, default: int | None = None) -> int | None:
    text = _get(row, field)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ImportRowError(
            n, f"{field} must be a whole number (cents for money), not {text!r}"
        ) from None
    if value < 0:
        raise ImportRowError(n, f"{field} must not be negative")
    return value


def _bool(n: int, row: ImportRow, field: str, *, default: bool) -> bool:
    text = _get(row, field).lower()
    if not text:
        return default
    if text in {"1", "true", "yes", "y"}:
        return True
    if text in {"0", "false", "no", "n"}:
        return False
    raise ImportRowError(n, f"{field} must be true or false, not {text!r}")


async def import_tickets(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    rows: Sequence[ImportRow],
    *,
    actor: str,
    sign: bool,
    source: str = "",
    accept_weak_codes: bool = False,
    progress: Progress | None = None,
) -> TicketImport:
    """Import tickets: opaque codes from an outside system, or (`sign`) issue signed codes here.

    Columns: category (name), code (opaque mode only), holder_ref, price (cents), status.
    Returns each ticket with its code (the QR text to hand out in signed mode). Outside codes
    too weak to survive offline guessing with a stolen device's hash key refuse the file
    (`central.code_entropy`) unless `accept_weak_codes`; each one's estimate is stored.
    """
    async with conn.transaction():
        fest = await fetch_one(conn, "SELECT hash_key FROM festival WHERE id = %s", (festival_id,))
        cur = await conn.execute(
            "SELECT name, id, type, price, valid_from, valid_until, festival_id "
            "FROM ticket_category WHERE festival_id = %s",
            (festival_id,),
        )
        categories: dict[str, Record] = {
            r[0]: dict(
                zip(
                    ("name", "id", "type", "price", "valid_from", "valid_until", "festival_id"),
                    r,
                    strict=True,
                )
            )
            for r in await cur.fetchall()
        }
        planned: list[tuple[int, Record, str, bytes | None, TicketStatus, int, str | None]] = []
        seen: dict[bytes, int] = {}
        for n, row in enumerate(rows, 1):
            category = categories.get(_get(row, "category"))
            if category is None:
                raise ImportRowError(n, f"unknown category {_get(row, 'category')!r}")
            code = _get(row, "code")
            if sign and code:
                raise ImportRowError(n, "a code was given, but this import issues signed codes")
            if not sign and not code:
                raise ImportRowError(n, "code is empty")
            if len(code) > MAX_CODE_CHARS:
                # No reader passes a longer code: such a ticket could never be scanned in.
                raise ImportRowError(
                    n, f"code is longer than {MAX_CODE_CHARS} characters, which no reader passes"
                )
            code_hash = hashing.code_hash(bytes(fest["hash_key"]), code) if code else None
            if code_hash is not None:
                if code_hash in seen:
                    raise ImportRowError(n, f"code repeats row {seen[code_hash]}")
                seen[code_hash] = n
            try:
                status = TicketStatus(_get(row, "status").upper() or "SOLD")
            except ValueError:
                raise ImportRowError(n, f"unknown status {_get(row, 'status')!r}") from None
            price = _int(n, row, "price", default=category["price"])
            assert price is not None
            holder = _get(row, "holder_ref") or None
            planned.append((n, category, code, code_hash, status, price, holder))
            _report(progress, "checking", n, len(rows))
        if seen:
            cur = await conn.execute(
                "SELECT code_hash FROM ticket WHERE festival_id = %s AND code_hash = ANY(%s)",
                (festival_id, list(seen)),
            )
            for (taken,) in await cur.fetchall():
                raise ImportRowError(seen[bytes(taken)], "a ticket with this code exists")
        codes = [code for _n, _category, code, *_ in planned]
        strength = None if sign else await _strength(conn, festival_id, codes)
        if strength is not None and strength.weak and not accept_weak_codes:
            raise ImportRowError(strength.weakest_row, strength.refusal())  # rows are in order
        code_bits = strength.bits if strength is not None else (None,) * len(planned)
        key = await keys.current_key(conn, festival_id) if sign else None
        issued: list[IssuedTicket] = []
        args = []
        for (_n, category, code, code_hash, status, price, holder), bits in zip(
            planned, code_bits, strict=True
        ):
            tid = uuid.uuid4()
            rec = {"id": tid, "festival_id": festival_id, "code_version": 0}
            text = signed_code(key, rec, category) if key is not None else code
            signed_hash = (
                hashing.code_hash(bytes(fest["hash_key"]), text) if key is not None else None
            )
            vouch = code_hash or signed_hash
            ticket = TicketRow(
                id=str(tid),
                festival_id=str(festival_id),
                category_id=str(category["id"]),
                status=status,
                code_hash=None if vouch is None else vouch.hex(),
            )
            issued.append(IssuedTicket(ticket_id=tid, code=text, row=ticket, holder_ref=holder))
            args.append(
                (tid, festival_id, category["id"], status, code_hash, bits, signed_hash, price,
                 holder)
            )  # fmt: skip
        await _insert_many(
            conn,
            "INSERT INTO ticket (id, festival_id, category_id, status, code_hash, code_bits, "
            "signed_hash, purchase_price, holder_ref) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            args,
            progress,
        )
        seqs = await feed.publish_many(conn, festival_id, "ticket", [t.row for t in issued])
        await audit.record(
            conn,
            actor=actor,
            action="ticket.import_batch",
            entity_type="festival",
            entity_id=festival_id,
            festival_id=festival_id,
            new={"count": len(issued), "mode": "signed" if sign else "opaque", "source": source}
            | _strength_audit(strength),
        )
    tickets = [
        IssuedTicket(t.ticket_id, t.code, t.row.model_copy(update={"seq": s}), t.holder_ref)
        for t, s in zip(issued, seqs, strict=True)
    ]
    return TicketImport(tickets, strength)


async def _strength(
    conn: AsyncConnection[Any], festival_id: uuid.UUID, codes: list[str]
) -> code_entropy.Assessment | None:
    """The import's outside codes judged among all of the festival's (a thief's every guess
    is tested against every hash on the device, so the count includes those stored)."""
    if not codes:
        return None
    stored = await fetch_one(
        conn,
        "SELECT count(*) AS n FROM ticket WHERE festival_id = %s AND code_hash IS NOT NULL",
        (festival_id,),
    )
    return code_entropy.assess(codes, int(stored["n"]) + len(codes))


def _strength_audit(strength: code_entropy.Assessment | None) -> dict[str, Any]:
    if strength is None:
        return {}
    return {"code_bits_min": min(strength.bits), "weak_codes_accepted": strength.weak}


async def import_wristbands(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    rows: Sequence[ImportRow],
    *,
    actor: str,
    source: str = "",
    progress: Progress | None = None,
) -> list[AccountRow]:
    """Import wristbands: columns tag_uid (hex) and balance (opening cents, a TOPUP entry)."""
    async with conn.transaction():
        fest = await fetch_one(conn, "SELECT hash_key FROM festival WHERE id = %s", (festival_id,))
        seen: dict[bytes, int] = {}
        planned: list[tuple[bytes, int]] = []
        for n, row in enumerate(rows, 1):
            uid = _get(row, "tag_uid")
            if not uid:
                raise ImportRowError(n, "tag_uid is empty")
            try:
                tag_hash = hashing.tag_hash(bytes(fest["hash_key"]), uid)
            except ValueError as exc:
                raise ImportRowError(n, f"tag_uid {uid!r} is not a tag UID: {exc}") from None
            if tag_hash in seen:
                raise ImportRowError(n, f"tag_uid repeats row {seen[tag_hash]}")
            seen[tag_hash] = n
            balance = _int(n, row, "balance", default=0)
            assert balance is not None
            planned.append((tag_hash, balance))
            _report(progress, "checking", n, len(rows))
        cur = await conn.execute(
            "SELECT tag_hash FROM cashless_account WHERE festival_id = %s AND tag_hash = ANY(%s)",
            (festival_id, list(seen)),
        )
        for (taken,) in await cur.fetchall():
            raise ImportRowError(seen[bytes(taken)], "this wristband already has an account")
        accounts = [
            AccountRow(
                id=str(uuid.uuid4()), festival_id=str(festival_id), tag_hash=h.hex(), balance=b
            )
            for h, b in planned
        ]
        await _insert_many(
            conn,
            "INSERT INTO cashless_account (id, festival_id, tag_hash, balance) "
            "VALUES (%s, %s, %s, %s)",
            [
                (uuid.UUID(a.id), festival_id, h, b)
                for a, (h, b) in zip(accounts, planned, strict=True)
            ],
            progress,
        )
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO cashless_transaction (festival_id, account_id, type, amount, "
                "balance_before, balance_after) VALUES (%s, %s, 'TOPUP', %s, 0, %s)",
                [
                    (festival_id, uuid.UUID(a.id), a.balance, a.balance)
                    for a in accounts
                    if a.balance
                ],
            )
        seqs = await feed.publish_many(conn, festival_id, "account", accounts)
        await audit.record(
            conn,
            actor=actor,
            action="account.import_batch",
            entity_type="festival",
            entity_id=festival_id,
            festival_id=festival_id,
            new={
                "count": len(accounts),
                "opening_total": sum(b for _, b in planned),
                "source": source,
            },
        )
    return [a.model_copy(update={"seq": s}) for a, s in zip(accounts, seqs, strict=True)]


async def _row_step(n: int, coro: Any) -> Any:
    # Catalog refusals and constraint violations both become "row n: reason".
    try:
        return await coro
    except CatalogError as exc:
        raise ImportRowError(n, str(exc)) from None
    except errors.IntegrityError as exc:
        raise ImportRowError(n, exc.diag.message_primary or "refused by the database") from None


async def import_vendors(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    rows: Sequence[ImportRow],
    *,
    actor: str,
) -> dict[str, int]:
    """Import vendors and products, one product per row (columns vendor, type, commission_bp,
    product, price). A vendor named again, or already present, gets the row's product."""
    vendor_types = {"FOOD", "DRINK", "BAR", "MERCHANDISE"}
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT name, id FROM vendor WHERE festival_id = %s", (festival_id,)
        )
        vendors: dict[str, uuid.UUID] = dict(await cur.fetchall())
        created = products = 0
        for n, row in enumerate(rows, 1):
            name = _get(row, "vendor")
            if not name:
                raise ImportRowError(n, "vendor is empty")
            if name not in vendors:
                vtype = _get(row, "type").upper() or "BAR"
                if vtype not in vendor_types:
                    raise ImportRowError(n, f"unknown vendor type {vtype!r}")
                commission = _int(n, row, "commission_bp", default=0)
                assert commission is not None
                vendor = await _row_step(
                    n,
                    catalog.create_vendor(
                        conn,
                        festival_id,
                        name=name,
                        type=vtype,  # type: ignore[arg-type]
                        commission_rate_bp=commission,
                        actor=actor,
                    ),
                )
                vendors[name] = uuid.UUID(vendor.id)
                created += 1
            product = _get(row, "product")
            if product:
                price = _int(n, row, "price")
                if price is None:
                    raise ImportRowError(n, "price is empty")
                await _row_step(
                    n,
                    catalog.create_product(
                        conn, vendors[name], name=product, price=price, actor=actor
                    ),
                )
                products += 1
    return {"vendors": created, "products": products}


async def import_zones(
    conn: AsyncConnection[Any],
    festival_id: uuid.UUID,
    rows: Sequence[ImportRow],
    *,
    actor: str,
) -> list[ZoneRow]:
    """Import zones: columns name, capacity, required_types (``|``-separated), reentry."""
    zones: list[ZoneRow] = []
    async with conn.transaction():
        for n, row in enumerate(rows, 1):
            name = _get(row, "name")
            if not name:
                raise ImportRowError(n, "name is empty")
            try:
                types = [
                    TicketType(t.strip().upper())
                    for t in _get(row, "required_types").replace(",", "|").split("|")
                    if t.strip()
                ]
            except ValueError:
                raise ImportRowError(
                    n, f"unknown ticket type in {_get(row, 'required_types')!r}"
                ) from None
            zone = await _row_step(
                n,
                catalog.create_zone(
                    conn,
                    festival_id,
                    name=name,
                    capacity=_int(n, row, "capacity"),
                    required_types=types,
                    reentry=_bool(n, row, "reentry", default=True),
                    actor=actor,
                ),
            )
            zones.append(zone)
    return zones
