"""What each kind of fact means, declared once for the device, central and their SQL.

A device records facts (`sync.vocab.EventKind`); what one means is declared here and
nowhere else: the verdicts it may carry, the ones with which it takes effect (admits a
person, moves money), its sign in a wristband's ledger, what makes a catalog row it was
decided against unusable, and how far a device's clock was off when it recorded it. Python
reads `FACTS` and the functions below; SQL, on central (PostgreSQL) and on the device
(SQLite), is generated from the same declarations by the ``*_sql`` functions, once, when a
module builds its statements (never per event). Migrations freeze the text they were
written with, and tests compare that text with what is generated here: changing a
declaration means writing a migration (`tests/central/test_facts_sql.py`).

The verdict codes themselves are here too, because which of them admit is part of what a
fact means; `sync.verdicts` re-exports them with their texts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from sync.catalog import AccountRow
from sync.hlc import LOGICAL_BITS
from sync.vocab import EventKind, TicketStatus, TransactionType


class GateCode(StrEnum):
    """Outcomes of a scan at a gate."""

    OK = "ok"
    OK_REENTRY = "ok_reentry"
    UNKNOWN = "unknown"
    FORGED = "forged"
    WRONG_FESTIVAL = "wrong_festival"
    REVOKED = "revoked"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    NOT_SOLD = "not_sold"
    ALREADY_INSIDE = "already_inside"
    NO_REENTRY = "no_reentry"
    WRONG_ZONE = "wrong_zone"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    ZONE_FULL = "zone_full"
    BLOCKED = "blocked"


class BarCode(StrEnum):
    """Outcomes of a tap at a bar or top-up point."""

    APPROVED = "approved"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    UNKNOWN_TAG = "unknown_tag"
    TAG_BLOCKED = "tag_blocked"
    OFFLINE_LIMIT = "offline_limit"
    UNKNOWN_PRODUCT = "unknown_product"
    VENDOR_CLOSED = "vendor_closed"


LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")

Side = Literal["gate", "money", "log"]


@dataclass(frozen=True, slots=True)
class FactKind:
    """What one kind of fact means."""

    kind: EventKind
    side: Side  # gate: moves a ticket's presence; money: a wristband's ledger; log: neither
    verdicts: tuple[str, ...]  # the verdicts a device may record with it
    admitting: tuple[str, ...]  # those with which it takes effect
    sign: int = 0  # its amount's sign in the ledger: -1 debits, +1 credits, 0 not money
    transaction: TransactionType | None = None  # its ledger entry's type (seed model)
    spends: bool = False  # counts in a wristband's offline allowance (a refund gives back)
    inside: bool | None = None  # a ticket's presence after an admitted movement
    access: str | None = None  # its action in the zone access log


_GATE = tuple(GateCode)
_TAKES = (BarCode.APPROVED, BarCode.UNKNOWN_TAG, BarCode.TAG_BLOCKED)
FACTS: dict[str, FactKind] = {
    k.kind: k
    for k in (
        FactKind(EventKind.ENTRY, "gate", _GATE, (GateCode.OK, GateCode.OK_REENTRY),
                 inside=True, access="ENTRY"),
        # An exit is never a re-entry.
        FactKind(EventKind.EXIT, "gate", tuple(c for c in _GATE if c != GateCode.OK_REENTRY),
                 (GateCode.OK,), inside=False, access="EXIT"),
        FactKind(EventKind.SALE, "money", tuple(BarCode), (BarCode.APPROVED,), sign=-1,
                 transaction=TransactionType.PAYMENT, spends=True),
        FactKind(EventKind.TOPUP, "money", _TAKES, (BarCode.APPROVED,), sign=1,
                 transaction=TransactionType.TOPUP),
        FactKind(EventKind.REFUND, "money", (*_TAKES, BarCode.INSUFFICIENT_FUNDS),
                 (BarCode.APPROVED,), sign=1, transaction=TransactionType.REFUND, spends=True),
        FactKind(EventKind.LOG, "log", LOG_LEVELS, ()),
    )
}  # fmt: skip


def kinds(side: Side) -> tuple[str, ...]:
    """The kinds on one side, in declaration order."""
    return tuple(k for k, f in FACTS.items() if f.side == side)


def _union(values: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for vs in values for v in vs))


GATE_KINDS: frozenset[str] = frozenset(kinds("gate"))
MONEY_KINDS: frozenset[str] = frozenset(kinds("money"))
# Verdicts with which some gate kind, some money kind, any kind admits (a green light).
GATE_ADMITTING: tuple[str, ...] = _union(FACTS[k].admitting for k in kinds("gate"))
MONEY_ADMITTING: tuple[str, ...] = _union(FACTS[k].admitting for k in kinds("money"))
ADMITTING: frozenset[str] = frozenset(_union(f.admitting for f in FACTS.values()))
SPENDING: tuple[str, ...] = tuple(k for k, f in FACTS.items() if f.spends)
DEBIT_KINDS: frozenset[str] = frozenset(k for k, f in FACTS.items() if f.sign < 0)


def admits(kind: str, verdict: str) -> bool:
    """Whether a fact of `kind` with `verdict` takes effect (an unknown kind never does)."""
    fact = FACTS.get(kind)
    return fact is not None and verdict in fact.admitting


def ledger_delta(kind: str, amount: int) -> int:
    """The signed effect on a balance of `amount` cents moved by a fact of `kind`."""
    return FACTS[kind].sign * amount


# What makes a catalog row unusable: a ticket's status, a block-list entry, or (for the code
# a gate scanned) a transfer that gave the ticket a newer code. The words are what a
# `stale_catalog` conflict says the row was, and (but a transfer's) what a gate that knew
# says.
BLOCKED: str = GateCode.BLOCKED
TRANSFERRED = "transferred"
UNUSABLE_STATUS: dict[str, str] = {
    TicketStatus.CANCELLED: GateCode.CANCELLED,
    TicketStatus.REFUNDED: GateCode.REFUNDED,
}


def ticket_bad(status: str | None) -> str | None:
    """Why a ticket with `status` is unusable, or None."""
    return None if status is None else UNUSABLE_STATUS.get(status)


def block_bad(op: str) -> str | None:
    """Why a block-list change makes its ticket or tag unusable (an upsert), or None."""
    return BLOCKED if op == "upsert" else None


def clock_skew_ms(wall_ms: int, hlc: int, received_ms: int) -> int:
    """How far a device's wall clock was off from central's: ahead (+) or behind (-).

    Ahead is ``wall_ms - received_ms``: no delivery delay makes an event arrive before it
    happened. Behind cannot be read from the receive time, because an offline device
    pushes events hours old; it is read from the HLC instead, which the device advances
    from central's clock on every exchange: an HLC whose physical part runs ahead of the
    wall clock means the device's clock is behind the central time it last learned.
    """
    ahead = wall_ms - received_ms
    if ahead > 0:
        return ahead
    return min(0, wall_ms - (hlc >> LOGICAL_BITS))


# SQL generated from the declarations above. Each returns text for PostgreSQL and SQLite
# alike (only standard operators); `a` is a table alias with its dot ("e.") or "".


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    """``column IN ('a', 'b')``, or ``column = 'a'`` for one value."""
    items = [sql_text(v) for v in values]
    return f"{column} = {items[0]}" if len(items) == 1 else f"{column} IN ({', '.join(items)})"


def admits_sql(side: Side, a: str = "", *, sep: str = " ") -> str:
    """Whether a stored fact of `side` is admitted, by its kind and verdict (`sep` goes
    between the kinds' tests, for a line break).

    Where every kind of the side admits with the same verdicts, by the verdict alone (the
    caller's filter, a ticket or an account, already keeps other sides out).
    """
    facts = [FACTS[k] for k in kinds(side)]
    if len({f.admitting for f in facts}) == 1:
        return sql_in(f"{a}verdict", facts[0].admitting)
    parts = [f"({a}kind = {sql_text(f.kind)} AND {sql_in(f'{a}verdict', f.admitting)})"
             for f in facts]  # fmt: skip
    return "(" + f"{sep}OR ".join(parts) + ")"


def inside_sql(a: str = "") -> str:
    """Whether an admitted gate fact leaves its ticket inside the zone (an entry)."""
    return sql_in(f"{a}kind", [k for k in kinds("gate") if FACTS[k].inside])


def delta_sql(a: str = "", amount: str = "amount") -> str:
    """A money fact's signed amount (`ledger_delta`)."""
    debits = [k for k in kinds("money") if k in DEBIT_KINDS]
    return f"CASE WHEN {sql_in(a + 'kind', debits)} THEN -{a}{amount} ELSE {a}{amount} END"


def debit_sql(a: str = "", amount: str = "amount") -> str:
    """A money fact's debit, negative (0 for a credit)."""
    debits = [k for k in kinds("money") if k in DEBIT_KINDS]
    return f"CASE WHEN {sql_in(a + 'kind', debits)} THEN -{a}{amount} ELSE 0 END"


def credit_sql(a: str = "") -> str:
    """Whether a money fact credits the ledger."""
    credits = [k for k in kinds("money") if FACTS[k].sign > 0]
    return sql_in(f"{a}kind", credits)


def spends_sql(column: str) -> str:
    """Whether the fact whose kind is `column` counts in the offline allowance."""
    return sql_in(column, SPENDING)


def _case(column: str, mapping: dict[str, str], sep: str) -> str:
    whens = sep.join(f"WHEN {sql_text(k)} THEN {sql_text(v)}" for k, v in mapping.items())
    return f"CASE {column}{sep}{whens}{sep}END"


def transaction_sql(a: str = "", *, sep: str = " ") -> str:
    """A money fact's ledger entry type (`sep` between its cases)."""
    return _case(f"{a}kind", {k: str(FACTS[k].transaction) for k in kinds("money")}, sep)


def access_sql(a: str = "", *, sep: str = " ") -> str:
    """A gate fact's action in the zone access log (`sep` between its cases)."""
    return _case(f"{a}kind", {k: str(FACTS[k].access) for k in kinds("gate")}, sep)


def unusable_sql(a: str = "") -> str:
    """Whether a change-feed row made a ticket or tag (or some code of a ticket) unusable:
    a block, an unusable status, or a transfer (a signed code's version above 0)."""
    return (
        f"({a}table_name = 'block' OR ({a}table_name = 'ticket'"
        f" AND ({sql_in(f'{a}row->>' + sql_text('status'), UNUSABLE_STATUS)}"
        f" OR {a}row->>'code_version' ~ '^[1-9]')))"
    )


def skew_sql(wall: str, hlc: str, received: str) -> str:
    """`clock_skew_ms` of SQL expressions."""
    return (
        f"CASE WHEN {wall} > {received} THEN {wall} - {received}"
        f" ELSE least(0, {wall} - ({hlc} >> {LOGICAL_BITS})) END"
    )


# An AccountRow's fields as expressions over a cashless_account row (PostgreSQL).
_ACCOUNT_SQL: dict[str, str] = {
    "id": "{a}id::text",
    "festival_id": "{a}festival_id::text",
    "tag_hash": "encode({a}tag_hash, 'hex')",
    "balance": "{a}balance",
    "blocked": "{a}blocked",
}
assert list(_ACCOUNT_SQL) == [f for f in AccountRow.model_fields if f != "seq"]


def account_json_sql(a: str = "") -> str:
    """An AccountRow (without seq) as a jsonb_build_object over a cashless_account row."""
    pairs = ", ".join(f"{sql_text(k)}, {v.format(a=a)}" for k, v in _ACCOUNT_SQL.items())
    return f"jsonb_build_object({pairs})"


def account_text_sql(a: str, seq: str) -> str:
    """An AccountRow with `seq` (an SQL expression) as JSON text put together by
    concatenation: every value is a uuid, hex, a number or a boolean (nothing to escape,
    none NULL), and it costs half of jsonb_build_object over a snapshot's every account."""
    quoted = {"id", "festival_id", "tag_hash"}
    lead, parts = "{", []
    for k, v in [*_ACCOUNT_SQL.items(), ("seq", seq)]:
        expr = v.format(a=a)
        if k in quoted:
            parts += [sql_text(f'{lead}"{k}":"'), expr]
            lead = '",'
        else:
            parts += [sql_text(f'{lead}"{k}":'), f"{expr}::text"]
            lead = ","
    return " || ".join([*parts, sql_text("}")])
