"""The demo's festival and its crowd: built through the catalog functions, planned from a seed.

The plan is a list of phases. Each phase says which devices are cut off from central and, per
lane (a gate's camera, the exit lane, a bar's till, the ops desk), the actions to play in
order. Same seed, same festival shape, same story.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import AsyncConnection

from central import cashless, catalog, tickets
from sync import ticketcode
from sync.vocab import TicketType

T = TicketType
ACTOR = "demo"
# name, capacity, ticket types it requires (empty: any ticket)
ZONES: tuple[tuple[str, int, tuple[TicketType, ...]], ...] = (
    ("General", 5000, ()),
    ("Backstage", 200, (T.VIP, T.BACKSTAGE)),
    ("VIP", 500, (T.VIP,)),
    ("Camping", 2000, (T.CAMPING, T.COMBO)),
)
GATE_ZONES = ("General", "General", "Backstage", "VIP", "Camping")  # then General again
CATEGORIES: tuple[tuple[str, TicketType, int, float], ...] = (  # name, type, price, share
    ("Weekend", T.STANDARD, 12000, 0.70),
    ("VIP", T.VIP, 25000, 0.12),
    ("Crew", T.BACKSTAGE, 0, 0.06),
    ("Camping", T.CAMPING, 4000, 0.12),
)
MENU: tuple[tuple[str, int], ...] = (("Beer", 450), ("Soda", 300), ("Cocktail", 650))
OVERDRAFT_BALANCE = 1000  # spent twice offline on a Cocktail: 1300 > 1000


@dataclass(frozen=True, slots=True)
class Holder:
    """An attendee: a ticket code (signed QR or outside-system code) and a wristband."""

    ticket_id: uuid.UUID
    type: TicketType
    code: str
    opaque: bool
    tag_uid: str
    account_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Action:
    """One step in a lane: `scan`, `exit`, `sale`, `cancel`, `topup` or `settle` (top up an
    overdrawn wristband once central has found the overdraft)."""

    kind: str
    story: str  # why: entry, clone, forged, cancelled, wrong_zone, stale, reentry, ...
    code: str = ""
    tag_uid: str = ""
    products: tuple[str, ...] = ()
    ref: uuid.UUID | None = None
    amount: int = 0


@dataclass
class Phase:
    """A stretch of the run: its share of the minutes, devices cut off, and lane actions."""

    name: str
    share: float
    cut: tuple[str, ...]
    lanes: dict[str, list[Action]] = field(default_factory=dict)

    def add(self, lane: str, action: Action) -> None:
        """Append an action to a lane."""
        self.lanes.setdefault(lane, []).append(action)


@dataclass
class World:
    """The festival as the demo knows it: ids, codes and wristbands (secrets included)."""

    festival_id: uuid.UUID
    slug: str
    zones: dict[str, uuid.UUID]
    vendors: list[tuple[uuid.UUID, str]]
    products: dict[uuid.UUID, dict[str, str]]  # vendor id → product name → product id
    holders: list[Holder]
    gates: list[tuple[str, str]]  # device name, zone name
    bars: list[tuple[str, uuid.UUID]]  # device name, vendor id
    stories: dict[str, list[uuid.UUID]] = field(default_factory=dict)  # story → ticket ids
    overdraft: Holder | None = None


def gate_layout(gates: int) -> list[tuple[str, str]]:
    """Device names and zones: two General gates, then Backstage, VIP, Camping, General..."""
    out = []
    for i in range(gates):
        zone = GATE_ZONES[i] if i < len(GATE_ZONES) else "General"
        out.append((f"gate-{i + 1}", zone))
    return out


async def build_world(
    conn: AsyncConnection[Any], rng: random.Random, *, attendees: int, gates: int, bars: int
) -> World:
    """Create the festival, zones, categories, tickets, wristbands, vendors and products."""
    slug = f"demo-{rng.getrandbits(32):08x}"
    fest = await catalog.create_festival(
        conn, name="Festgate Demo Festival", slug=slug, actor=ACTOR, offline_allowance=2000
    )
    fid = uuid.UUID(fest.id)
    zones = {}
    for name, capacity, types in ZONES:
        row = await catalog.create_zone(
            conn, fid, name=name, capacity=capacity, required_types=types, actor=ACTOR
        )
        zones[name] = uuid.UUID(row.id)
    categories = {}
    for name, ttype, price, _ in CATEGORIES:
        category = await catalog.create_category(
            conn, fid, name=name, type=ttype, price=price, actor=ACTOR
        )
        categories[ttype] = uuid.UUID(category.id)
    vendors, products = [], {}
    for i in range(bars):
        vendor = await catalog.create_vendor(conn, fid, name=f"Bar {i + 1}", actor=ACTOR)
        vid = uuid.UUID(vendor.id)
        vendors.append((vid, vendor.name))
        products[vid] = {
            name: (await catalog.create_product(conn, vid, name=name, price=price, actor=ACTOR)).id
            for name, price in MENU
        }
    weights = [share for *_, share in CATEGORIES]
    kinds = [ttype for _, ttype, _, _ in CATEGORIES]
    holders = []
    for i in range(attendees + 3):  # three more: the cancelled, the stale and the overdraft
        ttype = T.STANDARD if i >= attendees else rng.choices(kinds, weights)[0]
        opaque = ttype is T.STANDARD and rng.random() < 0.25
        if opaque:
            code = f"EXT-{slug}-{rng.getrandbits(40):010x}"
            issued = await tickets.add_opaque_ticket(
                conn, fid, category_id=categories[ttype], code=code, actor=ACTOR
            )
        else:
            issued = await tickets.issue_ticket(
                conn, fid, category_id=categories[ttype], actor=ACTOR
            )
        uid = "04" + rng.randbytes(6).hex()
        balance = OVERDRAFT_BALANCE if i == attendees + 2 else rng.choice((1500, 2500, 4000))
        account = await cashless.create_account(
            conn, fid, tag_uid=uid, opening_balance=balance, actor=ACTOR
        )
        holders.append(
            Holder(issued.ticket_id, ttype, issued.code, opaque, uid, uuid.UUID(account.id))
        )
    world = World(
        festival_id=fid,
        slug=slug,
        zones=zones,
        vendors=vendors,
        products=products,
        holders=holders[:attendees],
        gates=gate_layout(gates),
        bars=[(f"bar-{i + 1}", vid) for i, (vid, _) in enumerate(vendors)],
    )
    cancelled, stale, world.overdraft = holders[attendees:]
    await tickets.cancel_ticket(conn, cancelled.ticket_id, actor=ACTOR)
    world.stories = {"cancelled": [cancelled.ticket_id], "stale": [stale.ticket_id]}
    world.holders += [cancelled, stale]
    return world


def forged_code(world: World, rng: random.Random) -> tuple[uuid.UUID, str]:
    """A well-formed code for this festival signed by a key that is not the festival's."""
    ticket_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    code = ticketcode.encode(
        Ed25519PrivateKey.generate(),
        key_id=1,
        festival_id=world.festival_id,
        ticket_id=ticket_id,
        ticket_type=T.STANDARD,
    )
    return ticket_id, code


def plan(world: World, rng: random.Random, *, minutes: float) -> list[Phase]:
    """The story: doors open online; a network cut; reconnection. Same seed, same story."""
    seconds = minutes * 60
    general = [name for name, zone in world.gates if zone == "General"]
    by_zone = {zone: [n for n, z in world.gates if z == zone] for _, zone in world.gates}
    g1, g2 = general[0], general[1]  # g1 stays online all along; g2 is cut off
    bar_names = [name for name, _ in world.bars]
    cut = (g2, *bar_names[:2])
    a = Phase("doors open", 0.35, ())
    b = Phase("network cut", 0.35, cut)
    c = Phase("reconnected", 0.30, ())
    *crowd, cancelled, stale = world.holders
    rng.shuffle(crowd)
    special = [h for h in crowd if h.type is T.STANDARD and not h.opaque][:3]
    clone, leaver, wrong = special
    world.stories |= {
        "clone": [clone.ticket_id],
        "reentry": [leaver.ticket_id],
        "wrong_zone": [wrong.ticket_id],
    }
    usual = [h for h in crowd if h not in special]

    def gate_for(holder: Holder) -> str:
        if holder.type is T.VIP and by_zone.get("VIP") and rng.random() < 0.5:
            return by_zone["VIP"][0]
        if holder.type in (T.VIP, T.BACKSTAGE) and by_zone.get("Backstage"):
            return by_zone["Backstage"][0]
        if holder.type is T.CAMPING and by_zone.get("Camping"):
            return by_zone["Camping"][0]
        return rng.choice(general)

    # Doors open: most of the crowd, the leaver, a cancelled ticket, a forged one, wrong zone.
    half = len(usual) * 2 // 3
    for holder in usual[:half]:
        a.add(gate_for(holder), Action("scan", "entry", code=holder.code, ref=holder.ticket_id))
    a.add(g1, Action("scan", "entry", code=leaver.code, ref=leaver.ticket_id))
    a.add(g1, Action("scan", "cancelled", code=cancelled.code, ref=cancelled.ticket_id))
    forged_id, forged = forged_code(world, rng)
    world.stories["forged"] = [forged_id]
    a.add(g1, Action("scan", "forged", code=forged, ref=forged_id))
    backstage = by_zone.get("Backstage", [g1])[0]
    a.add(backstage, Action("scan", "wrong_zone", code=wrong.code, ref=wrong.ticket_id))
    # The network cut: the rest arrive; a clone at an online and an offline gate; a ticket
    # cancelled centrally is still admitted by the gate that cannot hear it; the leaver goes.
    b.add("ops", Action("cancel", "stale", ref=stale.ticket_id))
    for holder in usual[half:]:
        b.add(gate_for(holder), Action("scan", "entry", code=holder.code, ref=holder.ticket_id))
    b.add(g1, Action("scan", "clone", code=clone.code, ref=clone.ticket_id))
    b.add(g2, Action("scan", "clone", code=clone.code, ref=clone.ticket_id))
    b.add(g2, Action("scan", "stale", code=stale.code, ref=stale.ticket_id))
    b.add("exit", Action("exit", "reentry", code=leaver.code, ref=leaver.ticket_id))
    # Reconnected: the leaver comes back in, the overdrawn wristband is settled at the desk.
    c.add(g1, Action("scan", "reentry", code=leaver.code, ref=leaver.ticket_id))
    c.add(g1, Action("scan", "already_inside", code=leaver.code, ref=leaver.ticket_id))
    over = world.overdraft
    assert over is not None
    for bar in bar_names[:2]:
        b.add(bar, Action("sale", "overdraft", tag_uid=over.tag_uid, products=("Cocktail",)))
    c.add("ops", Action("settle", "overdraft", ref=over.account_id, amount=2000))
    world.stories["overdraft"] = [over.account_id]
    # Bar traffic in every phase, paced to what a tap costs (a few seconds on the NFC path).
    for phase in (a, b, c):
        per_bar = max(2, int(seconds * phase.share / 5))
        for bar in bar_names:
            for _ in range(per_bar):
                holder = rng.choice(usual)
                items = tuple(rng.choices([p for p, _ in MENU], k=rng.randint(1, 2)))
                phase.add(bar, Action("sale", "purchase", tag_uid=holder.tag_uid, products=items))
    for holder in rng.sample(usual, min(3, len(usual))):
        a.add("ops", Action("topup", "topup", ref=holder.account_id, amount=2000))
    return [a, b, c]
