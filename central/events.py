"""What a device event means at central: the payload contract and the checks made on receipt.

Payloads (JSON object; unknown keys are kept as received):

- ``entry`` / ``exit`` (gate): ``ticket_id`` (uuid; absent when the code was not recognised),
  ``zone_id`` (uuid; defaults to the device's zone). An exit takes effect with verdict ``ok``.
- ``sale`` (bar): ``account_id`` (uuid) or ``tag_hash`` (32 hex), ``amount`` (cents > 0 when
  approved), optional ``items``. The vendor is the device's.
- ``topup`` / ``refund`` (top-up point; ``refund`` also at a bar): same account fields and
  ``amount``; a refund gives money back onto the wristband (credits it), a sale debits it.
- ``log``: verdict is the level (debug/info/warning/error/critical), ``message`` the text.
- any kind may carry ``festival_id``; one that is not the device's refuses the whole batch.

An event that fails a check here is stored anyway with status ``rejected`` and a stable
reason, takes no effect, and never holds back the device's queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_json

from central.auth import DevicePrincipal
from sync.protocol import MAX_PAYLOAD_BYTES, Event
from sync.verdicts import BarCode, GateCode

KINDS_BY_ROLE: dict[str, frozenset[str]] = {
    "gate": frozenset({"entry", "exit", "log"}),
    "bar": frozenset({"sale", "refund", "log"}),
    "topup": frozenset({"topup", "refund", "log"}),
}
LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
_GATE = frozenset(GateCode)
VERDICTS_BY_KIND: dict[str, frozenset[str]] = {
    "entry": _GATE,
    "exit": _GATE - {GateCode.OK_REENTRY},  # an exit is never a re-entry
    "sale": frozenset(BarCode),
    "topup": frozenset({BarCode.APPROVED, BarCode.UNKNOWN_TAG, BarCode.TAG_BLOCKED}),
    "refund": frozenset(
        {BarCode.APPROVED, BarCode.UNKNOWN_TAG, BarCode.TAG_BLOCKED, BarCode.INSUFFICIENT_FUNDS}
    ),
    "log": LOG_LEVELS,
}
MONEY_KINDS = frozenset({"sale", "topup", "refund"})
MAX_AMOUNT = 10**9  # 10 million in cents: far above any real basket, below BIGINT trouble


class Mismatch(Exception):
    """An event claims another device or festival: the whole batch is refused (403)."""


@dataclass(slots=True)
class Prepared:
    """An event ready to store: checked, with its subject lifted out of the payload."""

    event: Event
    event_id: uuid.UUID
    payload: dict[str, Any]  # what is stored: the event's, unless replaced on a rejection
    status: str = "applied"
    reason: str | None = None
    ticket_id: uuid.UUID | None = None
    zone_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    amount: int | None = None

    def reject(self, reason: str) -> None:
        """Mark the event rejected, dropping whatever subject was lifted so far."""
        self.status, self.reason = "rejected", reason
        self.ticket_id = self.zone_id = self.account_id = None
        self.amount = None

    @property
    def admits(self) -> bool:
        """True when the event changes presence or the ledger."""
        if self.status != "applied":
            return False
        kind, verdict = self.event.kind, self.event.verdict
        if kind == "entry":
            return verdict in (GateCode.OK, GateCode.OK_REENTRY) and self.ticket_id is not None
        if kind == "exit":
            return verdict == GateCode.OK and self.ticket_id is not None
        return kind in MONEY_KINDS and verdict == BarCode.APPROVED and self.account_id is not None


@dataclass(frozen=True, slots=True)
class Lookups:
    """Catalog facts the checks need, fetched once per batch."""

    tickets: frozenset[uuid.UUID]
    zones: frozenset[uuid.UUID]
    accounts: frozenset[uuid.UUID]
    accounts_by_tag: Mapping[str, uuid.UUID]
    ids: Mapping[str, uuid.UUID] = field(default_factory=dict)  # ids as sent → parsed

    def parse_id(self, value: Any) -> uuid.UUID | None:
        """`as_uuid`, answered from the batch's parsed ids when it can."""
        if isinstance(value, str):
            found = self.ids.get(value)
            if found is not None:
                return found
        return as_uuid(value)


def check_identity(device: DevicePrincipal, events: list[Event]) -> None:
    """Raise Mismatch if any event names another device or festival."""
    mine, festival = str(device.id), str(device.festival_id)
    for event in events:
        if event.device_id != mine:  # the canonical spelling needs no parse
            try:
                same = uuid.UUID(event.device_id) == device.id
            except ValueError:
                same = False
            if not same:
                raise Mismatch(f"event {event.event_id} is for device {event.device_id!r}")
        claimed = event.payload.get("festival_id")
        if claimed is not None and str(claimed) != festival:
            raise Mismatch(f"event {event.event_id} is for festival {claimed!r}")


def as_uuid(value: Any) -> uuid.UUID | None:
    """A uuid from a payload value, or None when absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


_Ids = dict[str, uuid.UUID]


def subject_refs(events: list[Event]) -> tuple[_Ids, _Ids, set[str]]:
    """Ticket ids, account ids (each as sent → parsed) and tag hashes the batch mentions.

    The parsed ids are handed back through `Lookups.ids`, so each is parsed once per batch.
    """
    tickets: dict[str, uuid.UUID] = {}
    accounts: dict[str, uuid.UUID] = {}
    tags: set[str] = set()
    for event in events:
        payload = event.payload
        kind = event.kind
        if kind in ("entry", "exit"):
            raw = payload.get("ticket_id")
            if isinstance(raw, str) and raw not in tickets:
                tid = as_uuid(raw)
                if tid is not None:
                    tickets[raw] = tid
        elif kind in MONEY_KINDS:
            raw = payload.get("account_id")
            if isinstance(raw, str) and raw not in accounts:
                aid = as_uuid(raw)
                if aid is not None:
                    accounts[raw] = aid
            tag = payload.get("tag_hash")
            if isinstance(tag, str):
                tags.add(tag.lower())
    return tickets, accounts, tags


def prepare(device: DevicePrincipal, event: Event, lookups: Lookups) -> Prepared:
    """Check one event and lift its subject; never raises for a bad event."""
    out = Prepared(event=event, event_id=uuid.UUID(event.event_id), payload=event.payload)
    raw = to_json(event.payload)  # compact UTF-8 JSON, as stored (pydantic-core: fast)
    if len(raw) > MAX_PAYLOAD_BYTES:
        # Keep the fact that it happened, not the oversized body.
        out.payload = {"dropped_bytes": len(raw.decode())}
        out.reject("payload_too_large")
        return out
    kind, verdict = str(event.kind), event.verdict
    if kind not in KINDS_BY_ROLE.get(device.role, frozenset()):
        out.reject("kind_not_allowed")
    elif verdict not in VERDICTS_BY_KIND[kind]:
        out.reject("verdict_not_allowed")
    elif kind in ("entry", "exit"):
        _prepare_gate(device, out, lookups)
    elif kind in MONEY_KINDS:
        _prepare_money(out, lookups)
    return out


def _prepare_gate(device: DevicePrincipal, out: Prepared, lookups: Lookups) -> None:
    payload = out.event.payload
    raw_zone = payload.get("zone_id")
    zone = lookups.parse_id(raw_zone) if raw_zone is not None else device.zone_id
    raw_ticket = payload.get("ticket_id")
    ticket = lookups.parse_id(raw_ticket)
    needs_ticket = out.event.verdict in (GateCode.OK, GateCode.OK_REENTRY) or (
        out.event.kind == "exit" and out.event.verdict == GateCode.OK
    )
    if zone is None or zone not in lookups.zones:
        out.reject("unknown_zone")
    elif raw_ticket is not None and ticket is None:
        out.reject("bad_payload")
    elif ticket is not None and ticket in lookups.tickets:
        out.ticket_id, out.zone_id = ticket, zone
    elif needs_ticket:
        out.reject("unknown_ticket" if ticket is not None else "missing_ticket")
    else:
        out.zone_id = zone  # a refused scan of something unknown: kept as a record only


def _prepare_money(out: Prepared, lookups: Lookups) -> None:
    payload = out.event.payload
    account = lookups.parse_id(payload.get("account_id"))
    if account is None:
        tag = payload.get("tag_hash")
        account = lookups.accounts_by_tag.get(tag.lower()) if isinstance(tag, str) else None
    amount = payload.get("amount")
    approved = out.event.verdict == BarCode.APPROVED
    bad_type = amount is not None and (
        not isinstance(amount, int) or isinstance(amount, bool) or not 0 <= amount <= MAX_AMOUNT
    )
    if bad_type or (approved and not amount):
        out.reject("bad_amount")
    elif account is not None and account in lookups.accounts:
        out.account_id, out.amount = account, amount or 0
    elif approved:
        out.reject("unknown_account")
