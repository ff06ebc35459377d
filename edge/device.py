"""A device's core: a scan or a tap becomes a verdict that is durable before it is returned."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.vocab import Role
from edge.clock import DeviceClock, boot_clock_ms, wall_clock_ms
from edge.decide import (
    BadInput,
    Presence,
    SaleContext,
    authorize_sale,
    authorize_topup,
    available_balance,
    classify,
    decide_entry,
    gate_context,
    occupancy_delta,
    validate_amount,
)
from edge.journal import Journal
from edge.store import Catalog, Store
from sync import hashing
from sync.catalog import FestivalRow, VendorRow, ZoneRow
from sync.facts import ledger_delta
from sync.logline import log_payload
from sync.protocol import Event
from sync.verdicts import BarCode, Verdict
from sync.vocab import EventKind

MAX_QUANTITY = 100


@dataclass(frozen=True, slots=True)
class GateResult:
    """A gate verdict and the journaled event behind it."""

    verdict: Verdict
    event: Event
    zone: str

    @property
    def text(self) -> str:
        """What the display shows: the verdict's text, or that an exit was recorded."""
        if self.event.kind is EventKind.EXIT and self.verdict.admits:
            return "Exit recorded"
        return self.verdict.text


@dataclass(frozen=True, slots=True)
class SaleResult:
    """A bar or top-up verdict, the amount, the balance this device now sees, and its event."""

    verdict: Verdict
    event: Event
    amount: int
    balance: int | None

    @property
    def text(self) -> str:
        """What the display shows."""
        return self.verdict.text


class Device:
    """One device's decisions, serialised so two readers never race on the same ticket."""

    def __init__(
        self,
        store: Store,
        journal: Journal,
        *,
        role: Role,
        zone: str | None = None,
        vendor: str | None = None,
        allowance_cap: int | None = None,
        online_window_ms: int = 30_000,
    ) -> None:
        self.store = store
        self.journal = journal
        self.role = role
        self.zone_ref = zone
        self.vendor_ref = vendor
        self.allowance_cap = allowance_cap
        self.online_window_ms = online_window_ms
        # One decision at a time: the lookup and the append must not interleave, or two readers
        # could both see a ticket outside and both admit it.
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        role: Role,
        clock: Callable[[], int] = wall_clock_ms,
        monotonic: Callable[[], int] = boot_clock_ms,
        **kwargs: Any,
    ) -> Device:
        """Open the device's store and journal in `data_dir`; `clock` is the wall clock and
        `monotonic` the clock durations are read from (tests pass their own)."""
        store = await Store.open(data_dir)
        device_id = await store.get_state("device_id")
        if device_id is None:
            # Until enrolment names it, a device is known by a random local id.
            device_id = f"local-{uuid.uuid4()}"
            await store.set_state("device_id", device_id)
        time = DeviceClock(clock, monotonic)
        journal = await Journal.open(store.conn, device_id, store.inline, store.write_lock, time)
        return cls(store, journal, role=role, **kwargs)

    async def close(self) -> None:
        """Close the store."""
        await self.store.close()

    @property
    def time(self) -> DeviceClock:
        """The device's clocks (the journal's: its HLC is bounded by the same contact)."""
        return self.journal.time

    @property
    def clock(self) -> Callable[[], int]:
        """The wall clock, in unix milliseconds."""
        return self.journal.time.wall

    @property
    def catalog(self) -> Catalog:
        """The in-memory copy of the small catalog tables."""
        return self.store.catalog

    def _festival(self) -> FestivalRow:
        festival = self.catalog.festival
        if festival is None:
            raise BadInput("no_catalog", "no catalog loaded on this device")
        return festival

    def _zone(self, ref: str | None) -> ZoneRow:
        ref = ref or self.zone_ref
        if ref is None:
            raise BadInput("no_zone", "this device has no zone; pass --zone")
        zone = self.catalog.find_zone(ref)
        if zone is None:
            raise BadInput("unknown_zone", f"no zone {ref!r} in the catalog")
        return zone

    def _vendor(self) -> VendorRow | None:
        return self.catalog.find_vendor(self.vendor_ref) if self.vendor_ref else None

    async def record_log(self, fields: Mapping[str, Any]) -> Event:
        """Journal a device log line (`sync.logline.log_payload` of `fields`); it reaches
        central like any other fact."""
        payload = log_payload(fields)
        # Serialised with decisions: every append takes the next gap-free device_seq.
        async with self._lock:
            return await self.journal.append(
                EventKind.LOG,
                payload["level"],
                payload,
                wall_ms=self.clock(),
                catalog_seq=self.store.cursor,
            )

    def online(self) -> bool:
        """Central answered recently enough to trust the balances we hold: measured on the
        monotonic clock, so moving the wall clock changes nothing, and a contact that cannot
        be placed (another boot, none yet) counts as offline."""
        since = self.time.since_contact_ms()
        return since is not None and since < self.online_window_ms

    def _allowance(self, festival: FestivalRow) -> int:
        cap = self.allowance_cap
        return festival.offline_allowance if cap is None else min(cap, festival.offline_allowance)

    def _tag_hash(self, festival: FestivalRow, tag: str | bytes) -> str:
        try:
            return hashing.tag_hash(bytes.fromhex(festival.hash_key), tag).hex()
        except ValueError:
            raise BadInput("invalid_tag", "a tag id is hex bytes, e.g. 04a1b2c3d4e5f6") from None

    async def scan(
        self, raw: str | bytes, *, zone: str | None = None, exit: bool = False
    ) -> GateResult:
        """Decide a scanned code at a zone and journal the verdict before returning it."""
        if self.role is not Role.GATE:
            raise BadInput("wrong_role", f"a {self.role} device does not scan tickets")
        festival = self._festival()
        zone_row = self._zone(zone)
        code = classify(raw)
        async with self._lock:
            ticket_id = str(code.signed.ticket_id) if code.signed is not None else None
            code_hash = None
            if code.kind in ("opaque", "signed"):
                code_hash = hashing.code_hash(bytes.fromhex(festival.hash_key), code.text).hex()
            lookup = None
            key = self.catalog.keys.get(code.signed.key_id) if code.signed else None
            if ticket_id is not None or code_hash is not None:
                lookup = self.store.gate_lookup(
                    zone_id=zone_row.id,
                    device_id=self.journal.device_id,
                    ticket_id=ticket_id,
                    code_hash=code_hash if ticket_id is None else None,
                )
            ticket = lookup.ticket if lookup else None
            ctx = gate_context(
                festival.id,
                zone_row,
                code,
                key=key,
                code_hash=code_hash,
                ticket=ticket,
                category=lookup.category if lookup else None,
                blocked=lookup.blocked if lookup else False,
                presence=lookup.presence if lookup else Presence.NEVER,
                pending_occupancy=lookup.pending_occupancy if lookup else 0,
                exit=exit,
            )
            now_ms = self.clock()  # journaled as it reads; decided by a time we can place
            verdict = decide_entry(ctx, self.time.trusted_ms(now_ms) // 1000)
            resolved = ticket.id if ticket is not None else ticket_id
            payload: dict[str, Any] = {"zone_id": zone_row.id, "code_kind": code.kind}
            if resolved is not None:
                payload["ticket_id"] = resolved
            if code.signed is not None:
                payload |= {"key_id": code.signed.key_id, "code_version": code.signed.code_version}
            elif code.kind == "opaque":
                payload["code_hash"] = code_hash  # keyed hash only: the code itself never leaves
            event = await self.journal.append(
                EventKind.EXIT if exit else EventKind.ENTRY,
                verdict.code,
                payload,
                wall_ms=now_ms,
                catalog_seq=self.store.cursor,
                ticket_id=resolved,
                zone_id=zone_row.id,
                delta=occupancy_delta(ctx, verdict),
            )
        return GateResult(verdict, event, zone_row.name)

    def _basket(
        self, vendor: VendorRow | None, products: Sequence[tuple[str, int]]
    ) -> tuple[int, list[dict[str, Any]], bool]:
        """Price a basket of (product id or name, quantity); flags a product not on sale here."""
        total, lines, unknown = 0, [], False
        for ref, qty in products:
            if isinstance(qty, bool) or not isinstance(qty, int) or not 0 < qty <= MAX_QUANTITY:
                raise BadInput("invalid_quantity", f"quantity must be 1 to {MAX_QUANTITY}")
            # By id, or by name among this vendor's products: two bars may both sell "Soda".
            product = self.catalog.products.get(ref) or next(
                (
                    p
                    for p in self.catalog.products.values()
                    if vendor is not None
                    and p.vendor_id == vendor.id
                    and p.name.casefold() == ref.casefold()
                ),
                None,
            )
            if product is None or vendor is None or product.vendor_id != vendor.id:
                unknown = True
                lines.append({"product": ref[:64], "qty": qty})
                continue
            total += product.price * qty
            lines.append({"product_id": product.id, "qty": qty, "price": product.price})
        return total, lines, unknown

    async def charge(
        self,
        tag: str | bytes,
        *,
        amount: int | None = None,
        products: Sequence[tuple[str, int]] = (),
    ) -> SaleResult:
        """Charge a wristband an amount or a basket of products; journal the verdict first."""
        if self.role is not Role.BAR:
            raise BadInput("wrong_role", f"a {self.role} device does not sell")
        if (amount is None) == (not products):
            raise BadInput("invalid_amount", "give either an amount or products")
        festival = self._festival()
        vendor = self._vendor()
        total, lines, unknown = self._basket(vendor, products)
        if amount is not None:
            total = validate_amount(amount)
        elif not unknown:
            total = validate_amount(total)
        tag_hash = self._tag_hash(festival, tag)
        async with self._lock:
            lookup = self.store.bar_lookup(tag_hash)
            now_ms = self.clock()
            ctx = SaleContext(
                account=lookup.account,
                vendor=vendor,
                amount=total,
                tag_blocked=lookup.tag_blocked,
                unknown_product=unknown,
                pending=lookup.pending,
                offline_spent=lookup.offline_spent,
                online=self.online(),
                allowance=self._allowance(festival),
            )
            verdict = authorize_sale(ctx)
            return await self._record_money(
                EventKind.SALE,
                verdict,
                ctx,
                now_ms,
                {"vendor_id": vendor.id if vendor else None, "items": lines},
            )

    async def topup(self, tag: str | bytes, *, amount: int) -> SaleResult:
        """Load money onto a wristband (top-up devices only)."""
        if self.role is not Role.TOPUP:
            raise BadInput("wrong_role", f"a {self.role} device does not top up")
        festival = self._festival()
        total = validate_amount(amount)
        tag_hash = self._tag_hash(festival, tag)
        async with self._lock:
            lookup = self.store.bar_lookup(tag_hash)
            ctx = SaleContext(
                account=lookup.account, vendor=None, amount=total, pending=lookup.pending
            )
            verdict = authorize_topup(lookup.account, tag_blocked=lookup.tag_blocked)
            return await self._record_money(EventKind.TOPUP, verdict, ctx, self.clock(), {})

    async def refund(self, sale_event_id: str) -> SaleResult:
        """Refund, in full, an approved sale this device made."""
        if self.role not in (Role.BAR, Role.TOPUP):
            raise BadInput("wrong_role", f"a {self.role} device does not refund")
        async with self._lock:
            rows = list(
                await self.store.conn.execute_fetchall(
                    "SELECT account_id, json_extract(payload, '$.amount'), verdict, "
                    " EXISTS (SELECT 1 FROM journal r WHERE r.kind = ?"
                    "         AND json_extract(r.payload, '$.refund_of') = j.event_id) "
                    "FROM journal j WHERE event_id = ? AND kind = ?",
                    (EventKind.REFUND, sale_event_id, EventKind.SALE),
                )
            )
            if not rows:
                raise BadInput("unknown_sale", "no sale with that event id on this device")
            account_id, amount, sale_verdict, refunded = rows[0]
            if sale_verdict != BarCode.APPROVED:
                raise BadInput("not_refundable", "that sale was declined")
            if refunded:
                raise BadInput("already_refunded", "that sale was refunded already")
            account_rows = list(
                await self.store.conn.execute_fetchall(
                    "SELECT tag_hash FROM account WHERE id = ?", (account_id,)
                )
            )
            lookup = self.store.bar_lookup(account_rows[0][0] if account_rows else "")
            ctx = SaleContext(
                account=lookup.account, vendor=None, amount=amount, pending=lookup.pending
            )
            verdict = Verdict(BarCode.APPROVED)
            return await self._record_money(
                EventKind.REFUND,
                verdict,
                ctx,
                self.clock(),
                {"refund_of": sale_event_id},
                account_id=account_id,
            )

    async def _record_money(
        self,
        kind: EventKind,
        verdict: Verdict,
        ctx: SaleContext,
        now_ms: int,
        extra: dict[str, Any],
        *,
        account_id: str | None = None,
    ) -> SaleResult:
        account = ctx.account
        account_id = account_id or (account.id if account else None)
        before = available_balance(ctx) if account is not None else None
        applied = ledger_delta(kind, ctx.amount) if verdict.admits else 0
        balance = before + applied if before is not None else None
        payload: dict[str, Any] = {"account_id": account_id, "amount": ctx.amount, **extra}
        if account is not None:
            payload["tag_hash"] = account.tag_hash
            payload["balance_after"] = balance
        event = await self.journal.append(
            kind,
            verdict.code,
            payload,
            wall_ms=now_ms,
            catalog_seq=self.store.cursor,
            account_id=account_id if account is not None else None,
            delta=applied,
        )
        return SaleResult(verdict, event, ctx.amount, balance)


__all__ = ["BadInput", "Device", "GateResult", "SaleResult"]
