"""A stored conflict as people read it: one summary line and both facts side by side.

Pure functions over a conflict's `facts` and `detail` (as `central.conflicts` writes them)
and the festival's `Local` (names, time zone, currency). A fact the rules did not record
is left out, never guessed: an unknown field reads as None, an unknown kind has no sides.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from central.conflicts import ConflictKind
from central.readable import Local, short
from sync.facts import FACTS

K = ConflictKind


class FactSide(BaseModel):
    """One side of a conflict: a device's fact, or what central knew or did."""

    label: str = Field(description="which side: stands, flagged, device, central, prior, ...")
    at: datetime | None = Field(None, description="when it happened, in the festival's time zone")
    device_id: uuid.UUID | None = None
    device: str | None = None
    device_seq: int | None = None
    event_id: uuid.UUID | None = None
    kind: str | None = Field(None, description="the fact's kind: entry, exit, sale, ...")
    verdict: str | None = None
    zone_id: uuid.UUID | None = None
    zone: str | None = None
    catalog_seq: int | None = (
        None  # a fact: the feed seq its device had seen; central: the change's
    )
    amount: int | None = Field(None, description="cents")
    state: str | None = Field(None, description="what central's change made it: cancelled, ...")
    note: str | None = Field(None, description="anything else, in words")


Sides = tuple[str, list[FactSide]]  # a summary line and the sides, in the order they happened


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def event_side(label: str, fact: Any, where: Local, note: str | None = None) -> FactSide:
    """A device's fact (`EventFact.summary()`) as one side."""
    f = _map(fact)
    return FactSide(
        label=label,
        at=where.at_hlc(_int(f.get("hlc"))),
        device_id=_uuid(f.get("device_id")),
        device=where.name(f.get("device_id")),
        device_seq=_int(f.get("device_seq")),
        event_id=_uuid(f.get("event_id")),
        kind=f.get("kind"),
        verdict=f.get("verdict"),
        zone_id=_uuid(f.get("zone_id")),
        zone=where.name(f.get("zone_id")),
        catalog_seq=_int(f.get("catalog_seq")),
        amount=_int(f.get("amount")),
        note=note,
    )


def _clock(when: datetime | None) -> str:
    return when.strftime("%H:%M:%S") if when is not None else "?"


def _duplicate(facts: Mapping[str, Any], detail: Mapping[str, Any], where: Local) -> Sides:
    stands = event_side("stands", facts.get("stands"), where, "the earlier admission stands")
    flagged = event_side("flagged", facts.get("flagged"), where, "admitted again, no exit between")
    line = (
        f"admitted into {stands.zone or where.name(detail.get('zone_id'))} by {stands.device} at "
        f"{_clock(stands.at)}, then by {flagged.device} at {_clock(flagged.at)} with no exit"
    )
    return line, [stands, flagged]


def _catalog(facts: Mapping[str, Any], detail: Mapping[str, Any], where: Local) -> Sides:
    change = _map(facts.get("catalog"))
    seen = bool(detail.get("device_had_seen_change"))
    note = "had seen the change" if seen else "had not seen the change yet"
    device = event_side("device", facts.get("event"), where, note)
    central = FactSide(
        label="central",
        at=where.at_ms(_int(change.get("at_ms"))),
        catalog_seq=_int(change.get("seq")),
        state=change.get("state"),
        note=f"{change.get('state')} at feed seq {change.get('seq')}",
    )
    fact = FACTS.get(device.kind or "")
    verb = "charged" if fact is not None and fact.side == "money" else "admitted"
    line = (
        f"{verb} by {device.device} at {_clock(device.at)} though central had it "
        f"{central.state} since {_clock(central.at)} (seq {central.catalog_seq}); the device "
        f"{'had' if seen else 'had not'} seen it (its seq {device.catalog_seq})"
    )
    return line, [device, central]


def _overdraft(facts: Mapping[str, Any], detail: Mapping[str, Any], where: Local) -> Sides:
    before, after = _int(detail.get("balance_before")), _int(detail.get("balance_after"))
    prior = facts.get("prior")
    sides = [event_side("prior", p, where) for p in (prior if isinstance(prior, list) else [])]
    took = "?" if after is None else where.money(after)
    moved = None if before is None else f"balance {where.money(before)} -> {took}"
    crossing = event_side("crossing", facts.get("crossing"), where, moved)
    line = (
        f"{len(sides) + 1} offline sales spent more than the balance: the sale by "
        f"{crossing.device} at {_clock(crossing.at)} took it to {took}"
    )
    return line, [*sides, crossing]


def _skew(facts: Mapping[str, Any], detail: Mapping[str, Any], where: Local) -> Sides:
    device, central = _map(facts.get("device")), _map(facts.get("central"))
    skew, bound = _int(detail.get("skew_ms")), _int(detail.get("bound_ms"))
    ahead = "ahead" if (skew or 0) > 0 else "behind"
    device_side = FactSide(
        label="device clock",
        at=where.at_ms(_int(device.get("wall_ms"))),
        event_id=_uuid(device.get("event_id")),
        note=f"{abs(skew or 0) / 1000:.1f} s {ahead}",
    )
    central_side = FactSide(
        label="central clock",
        at=where.at_ms(_int(central.get("received_ms"))),
        note=f"bound {(bound or 0) / 1000:.0f} s",
    )
    line = (
        f"clock {abs(skew or 0) / 1000:.1f} s {ahead} of central's (bound "
        f"{(bound or 0) / 1000:.0f} s), {detail.get('skewed_events', '?')} events"
    )
    return line, [device_side, central_side]


def _gap(facts: Mapping[str, Any], detail: Mapping[str, Any], where: Local) -> Sides:
    first, last = _int(facts.get("missing_from")), _int(facts.get("missing_to"))
    missing = FactSide(label="missing", note=f"device_seq {first} to {last} never arrived")
    held = FactSide(label="next held", device_seq=_int(facts.get("next_held")))
    what = f"event {first}" if first == last else f"events {first} to {last}"
    line = f"{what} missing: possible loss"
    return line, [missing, held]


_READERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], Local], Sides]] = {
    K.DUPLICATE_ENTRY: _duplicate,
    K.STALE_CATALOG: _catalog,
    K.POLICY_VIOLATION: _catalog,
    K.OVERDRAFT: _overdraft,
    K.CLOCK_SKEW: _skew,
    K.SEQUENCE_GAP: _gap,
}


def read(kind: str, facts: Any, detail: Any, where: Local) -> Sides:
    """A conflict's summary line and its sides, in the order they happened."""
    reader = _READERS.get(kind)
    if reader is None:
        return kind, []
    return reader(_map(facts), _map(detail), where)


def subject(subject_type: str, subject_id: object, where: Local, category: str | None) -> str:
    """What a conflict is about, in words: a ticket, a wristband or a device."""
    if subject_type == "device":
        return f"device {where.name(subject_id)}"
    if subject_type == "ticket":
        return f"ticket {short(subject_id)}" + (f" ({category})" if category else "")
    return f"wristband {short(subject_id)}"
