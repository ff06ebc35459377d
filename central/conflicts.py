"""Conflict rules: pure functions over stored facts, the same set whatever the arrival order.

Each rule takes every stored event of one subject (a ticket, a wristband account or a
device) in the order ``(hlc, device_id, device_seq)`` plus the catalog history it needs,
and returns the conflicts that hold *now*. Central re-runs a rule whenever a new fact for
its subject arrives and stores the result by natural key (upsert, and unresolved rows
no longer produced are dropped), so the stored set never depends on arrival order.

Kinds (stable strings, also shown to ops):

- ``duplicate_entry``: a ticket admitted into one zone by two devices with no exit between.
- ``overdraft``: replaying a wristband's ledger in HLC order goes below zero.
- ``stale_catalog``: admitted or charged against a ticket/tag central had already made
  unusable at a feed seq the device had not seen (``catalog_seq`` below it): cancelled,
  refunded, blocked, or (for the code that was scanned) transferred to a new code.
- ``policy_violation``: the same, but the device *had* seen that change and still said yes.
- ``clock_skew``: a device's wall clock differs from central's receive time beyond a bound.
- ``sequence_gap``: holes in a device's ``device_seq`` below its highest stored one.

No IO and no clock here: ``received_ms`` and the bound are inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from sync import facts
from sync.facts import FACTS, TRANSFERRED
from sync.hlc import FactOrder, fact_order, wall_ms_of

MAX_PRIOR_FACTS = 20  # prior sales kept in an overdraft conflict; enough for ops to see why


class ConflictKind(StrEnum):
    """Kinds of conflict central records."""

    DUPLICATE_ENTRY = "duplicate_entry"
    OVERDRAFT = "overdraft"
    STALE_CATALOG = "stale_catalog"
    POLICY_VIOLATION = "policy_violation"
    CLOCK_SKEW = "clock_skew"
    SEQUENCE_GAP = "sequence_gap"


@dataclass(slots=True)  # not frozen: built by the thousand per batch, and never mutated
class EventFact:
    """One stored device event, reduced to what the rules read."""

    event_id: str
    device_id: str
    device_seq: int
    hlc: int
    wall_ms: int
    catalog_seq: int
    kind: str
    verdict: str
    ticket_id: str | None = None
    zone_id: str | None = None
    account_id: str | None = None
    amount: int = 0  # positive cents as the device recorded it; sign comes from the kind
    received_ms: int = 0
    device_hlc: int = 0  # the HLC the device sent, when `hlc` (the order) is another; else 0
    # The code a gate scanned: a signed code's version, or an outside code's keyed hash.
    code_version: int | None = None
    code_hash: str | None = None

    @property
    def order(self) -> FactOrder:
        """The total order of facts (`sync.hlc.fact_order`): HLC, device id, device seq."""
        return fact_order(self.hlc, self.device_id, self.device_seq)

    def summary(self) -> dict[str, Any]:
        """The fact as a conflict shows it (nothing that depends on arrival time)."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "device_id": self.device_id,
            "device_seq": self.device_seq,
            "hlc": self.hlc,
            "wall_ms": self.wall_ms,
            "catalog_seq": self.catalog_seq,
            "kind": self.kind,
            "verdict": self.verdict,
        }
        if self.ticket_id is not None:
            out["ticket_id"] = self.ticket_id
        if self.zone_id is not None:
            out["zone_id"] = self.zone_id
        if self.account_id is not None:
            out["account_id"] = self.account_id
            out["amount"] = self.amount
        if self.device_hlc:
            out["device_hlc"] = self.device_hlc
        if self.code_version is not None:
            out["code_version"] = self.code_version
        if self.code_hash is not None:
            out["code_hash"] = self.code_hash
        return out


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """A change central made to a ticket or tag: at `seq`, at `at_ms`, from one source.

    `source` separates independent reasons (the ticket's status, a block-list entry), so a
    ticket unblocked but still cancelled stays unusable. `bad` is why the row is unusable
    after this change (``cancelled``, ``refunded``, ``blocked``), or None when usable again.
    A ticket's row also gives its code after the change (`code_version`, `code_hash`), which
    makes the codes it replaced unusable (`replaced_at`).
    """

    seq: int
    at_ms: int
    source: str
    bad: str | None
    code_version: int | None = None
    code_hash: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerFact:
    """An entry of a wristband's ledger: an ops entry or an approved device event."""

    order: tuple[int, str, int]
    ref: str  # event id, or "ledger:<id>" for an ops entry
    delta: int  # signed cents
    event: EventFact | None = None


@dataclass(frozen=True, slots=True)
class Conflict:
    """A conflict as the rules find it; `natural_key` makes storing it idempotent."""

    kind: ConflictKind
    subject_type: str
    subject_id: str
    flagged_event_id: str
    event_ids: tuple[str, ...]
    facts: dict[str, Any]
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def natural_key(self) -> str:
        """kind, subject and the flagged event: the same conflict always has the same key."""
        return f"{self.kind}:{self.subject_type}:{self.subject_id}:{self.flagged_event_id}"


@dataclass(frozen=True, slots=True)
class AccountOutcome:
    """What replaying a wristband's ledger finds: conflicts, final balance and debt."""

    conflicts: tuple[Conflict, ...]
    balance: int
    debt: int


def sort_events(events: Iterable[EventFact]) -> list[EventFact]:
    """Events in rule order (HLC, device id, device seq)."""
    return sorted(events, key=lambda e: e.order)


def bad_at(history: Sequence[CatalogChange], at_ms: int) -> CatalogChange | None:
    """The change that made a row unusable and still held at `at_ms`, or None.

    When several sources are bad at once the earliest-seq one is the cause, so the answer
    does not depend on how the history was listed.
    """
    current: dict[str, CatalogChange] = {}
    for change in sorted(history, key=lambda c: c.seq):
        if change.at_ms > at_ms:
            break
        if change.bad is None:
            current.pop(change.source, None)
        elif change.source not in current:  # a bad run starts at its first change
            current[change.source] = change
    return min(current.values(), key=lambda c: c.seq) if current else None


def replaced_at(
    history: Sequence[CatalogChange], event: EventFact, at_ms: int
) -> CatalogChange | None:
    """The change that replaced the code `event` scanned and still held at `at_ms`, or None.

    A transfer gives a ticket a new code. A signed code is replaced by the first change to a
    higher code version; an outside code, by the first change to another hash after the
    last one that made it the ticket's (a code the history never gave the ticket is not
    judged). The answer says ``transferred``, with the ticket's code after that change.
    """
    if event.code_version is None and event.code_hash is None:
        return None
    cause: CatalogChange | None = None
    held = False  # the scanned outside code was the ticket's, as of the changes read so far
    for change in sorted(history, key=lambda c: c.seq):
        if change.at_ms > at_ms:
            break
        if event.code_version is not None:  # versions only go up: the first higher one
            if change.code_version is not None and change.code_version > event.code_version:
                cause = change
                break
        elif change.code_hash is not None:
            if change.code_hash == event.code_hash:
                held, cause = True, None
            elif held and cause is None:
                cause = change
    return None if cause is None else replace(cause, source="code", bad=TRANSFERRED)


def unusable_at(history: Sequence[CatalogChange], event: EventFact) -> CatalogChange | None:
    """Why a ticket admitted by `event` was unusable then (`bad_at`, or its scanned code
    `replaced_at`), the earliest-seq cause when both; None when it was usable."""
    at_ms = wall_ms_of(event.hlc)
    found = (bad_at(history, at_ms), replaced_at(history, event, at_ms))
    causes = [c for c in found if c is not None]
    return min(causes, key=lambda c: c.seq) if causes else None


def _catalog_conflict(
    event: EventFact, subject_type: str, subject_id: str, change: CatalogChange
) -> Conflict:
    seen = event.catalog_seq >= change.seq
    kind = ConflictKind.POLICY_VIOLATION if seen else ConflictKind.STALE_CATALOG
    catalog: dict[str, Any] = {"seq": change.seq, "at_ms": change.at_ms, "state": change.bad}
    if change.bad == TRANSFERRED:  # the code the ticket had from then on, beside the scanned one
        if event.code_version is not None:
            catalog["code_version"] = change.code_version
        else:
            catalog["code_hash"] = change.code_hash
    return Conflict(
        kind=kind,
        subject_type=subject_type,
        subject_id=subject_id,
        flagged_event_id=event.event_id,
        event_ids=(event.event_id,),
        facts={"event": event.summary(), "catalog": catalog},
        detail={"device_had_seen_change": seen},
    )


def classify_ticket(
    ticket_id: str, events: Iterable[EventFact], history: Sequence[CatalogChange] = ()
) -> list[Conflict]:
    """Duplicate entries and stale/violating admissions of one ticket."""
    out: list[Conflict] = []
    inside: dict[str, EventFact] = {}  # zone -> the entry that stands
    for event in sort_events(events):
        fact = FACTS.get(event.kind)
        if event.zone_id is None or fact is None or fact.side != "gate":
            continue
        if event.verdict not in fact.admitting:  # refused: no one moved
            continue
        if not fact.inside:  # an exit: the zone is free again
            inside.pop(event.zone_id, None)
            continue
        change = unusable_at(history, event)
        if change is not None:
            out.append(_catalog_conflict(event, "ticket", ticket_id, change))
        standing = inside.get(event.zone_id)
        if standing is None:
            inside[event.zone_id] = event
        elif standing.device_id != event.device_id:
            out.append(
                Conflict(
                    kind=ConflictKind.DUPLICATE_ENTRY,
                    subject_type="ticket",
                    subject_id=ticket_id,
                    flagged_event_id=event.event_id,
                    event_ids=(standing.event_id, event.event_id),
                    facts={"stands": standing.summary(), "flagged": event.summary()},
                    detail={"zone_id": event.zone_id},
                )
            )
    return out


def ledger_delta(event: EventFact) -> int:
    """Signed effect of an approved device event on a balance (`sync.facts.ledger_delta`)."""
    return facts.ledger_delta(event.kind, event.amount)


def ledger_from_events(events: Iterable[EventFact]) -> list[LedgerFact]:
    """The ledger entries approved device events make."""
    return [
        LedgerFact(order=e.order, ref=e.event_id, delta=ledger_delta(e), event=e)
        for e in events
        if e.kind in facts.MONEY_KINDS and facts.admits(e.kind, e.verdict) and e.amount > 0
    ]


def classify_account(
    account_id: str,
    ledger: Iterable[LedgerFact],
    history: Sequence[CatalogChange] = (),
    *,
    opening: int = 0,
) -> AccountOutcome:
    """Overdraft episodes and stale/violating charges of one wristband account.

    An episode starts at the sale whose replay takes the balance below zero and ends when
    the balance is back at zero or above; it names that sale and the sales since the last
    credit, which together spent more than there was.
    """
    out: list[Conflict] = []
    balance = opening
    since_credit: list[EventFact] = []
    in_episode = False
    for entry in sorted(ledger, key=lambda entry: entry.order):
        before = balance
        balance += entry.delta
        event = entry.event
        if entry.delta > 0:
            since_credit = []
        if event is not None and event.kind in facts.DEBIT_KINDS:  # a charge
            change = bad_at(history, wall_ms_of(event.hlc))
            if change is not None:
                out.append(_catalog_conflict(event, "account", account_id, change))
            if balance < 0 and not in_episode:
                prior = since_credit[-MAX_PRIOR_FACTS:]
                out.append(
                    Conflict(
                        kind=ConflictKind.OVERDRAFT,
                        subject_type="account",
                        subject_id=account_id,
                        flagged_event_id=event.event_id,
                        event_ids=(*(p.event_id for p in prior), event.event_id),
                        facts={
                            "crossing": event.summary(),
                            "prior": [p.summary() for p in prior],
                        },
                        detail={"balance_before": before, "balance_after": balance},
                    )
                )
            since_credit.append(event)
        in_episode = balance < 0
    return AccountOutcome(conflicts=tuple(out), balance=balance, debt=max(0, -balance))


def contiguous_through(acked: int, seqs: Iterable[int]) -> int:
    """Highest device_seq such that every seq from 1 to it is held."""
    held = set(seqs)
    while acked + 1 in held:
        acked += 1
    return acked


def classify_gaps(
    device_id: str, acked_through: int, above: Sequence[tuple[int, str]]
) -> list[Conflict]:
    """One `sequence_gap` per hole; `above` is every held (seq, event_id) past acked_through.

    The flagged event is the first one after the hole, so the key survives a hole that
    shrinks from its lower end, and a filled hole simply stops being produced.
    """
    out: list[Conflict] = []
    expected = acked_through + 1
    for seq, event_id in sorted(above):
        if seq > expected:
            out.append(
                Conflict(
                    kind=ConflictKind.SEQUENCE_GAP,
                    subject_type="device",
                    subject_id=device_id,
                    flagged_event_id=event_id,
                    event_ids=(event_id,),
                    facts={"missing_from": expected, "missing_to": seq - 1, "next_held": seq},
                    detail={"missing": seq - expected},
                )
            )
        expected = max(expected, seq + 1)
    return out


# How far a device's wall clock was off (`sync.facts.clock_skew_ms`; ingest stores it with
# the same formula in SQL, `sync.facts.skew_sql`).
clock_skew_ms = facts.clock_skew_ms


def skew_ms(event: EventFact) -> int:
    """`clock_skew_ms` of a stored event."""
    return clock_skew_ms(event.wall_ms, event.device_hlc or event.hlc, event.received_ms)


def classify_clock(
    device_id: str, events: Iterable[EventFact], bound_ms: int, *, resolved_through: int = 0
) -> list[Conflict]:
    """At most one open `clock_skew` per device: from its first skewed event past a resolution."""
    skewed = sorted(
        (e for e in events if e.device_seq > resolved_through and abs(skew_ms(e)) > bound_ms),
        key=lambda e: e.device_seq,
    )
    if not skewed:
        return []
    first, last = skewed[0], skewed[-1]
    worst = max(skewed, key=lambda e: abs(skew_ms(e)))
    return [
        Conflict(
            kind=ConflictKind.CLOCK_SKEW,
            subject_type="device",
            subject_id=device_id,
            flagged_event_id=first.event_id,
            event_ids=(first.event_id,),
            facts={
                "device": {"event_id": first.event_id, "wall_ms": first.wall_ms},
                "central": {"received_ms": first.received_ms},
            },
            detail={
                "bound_ms": bound_ms,
                "skew_ms": skew_ms(first),
                "worst_skew_ms": skew_ms(worst),
                "last_skew_ms": skew_ms(last),
                "skewed_events": len(skewed),
            },
        )
    ]
