"""A small, deterministic sample festival for demos and tests, as central would send it."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync import hashing, ticketcode
from sync.catalog import TABLES, Snapshot
from sync.vocab import TicketStatus, TicketType

DAY = 86_400


@dataclass
class SampleFestival:
    """A snapshot plus the plaintext codes and tag UIDs that only a demo may know."""

    snapshot: Snapshot
    codes: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    # Plays central's part for demos and benchmarks; never written to a device.
    signer: Ed25519PrivateKey | None = None


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_sample(*, seed: int = 7, now: int, tickets: int = 50) -> SampleFestival:
    """Build a festival valid around `now` with zones, tickets of every state, wristbands, a bar."""
    rng = random.Random(seed)
    fest_id = _uuid(rng)
    hash_key = rng.randbytes(32)
    # A throwaway signing key: the demo prints codes it signed, then forgets the private half.
    private = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
    key_id = 1
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in TABLES}
    rows["festival"].append(
        {
            "id": fest_id,
            "name": "Sample Festival",
            "starts_at": now - DAY,
            "ends_at": now + 3 * DAY,
            "currency": "EUR",
            "offline_allowance": 2000,
            "hash_key": hash_key.hex(),
        }
    )
    rows["signing_key"].append(
        {
            "key_id": key_id,
            "festival_id": fest_id,
            "public_key": ticketcode.public_bytes(private).hex(),
        }
    )
    cats = {}
    for name, ttype in (
        ("Weekend", TicketType.STANDARD),
        ("VIP", TicketType.VIP),
        ("Backstage", TicketType.BACKSTAGE),
        ("Camping", TicketType.CAMPING),
    ):
        cid = _uuid(rng)
        cats[ttype] = cid
        rows["category"].append(
            {
                "id": cid,
                "festival_id": fest_id,
                "name": name,
                "type": ttype.value,
                "valid_from": now - DAY,
                "valid_until": now + 3 * DAY,
            }
        )
    for name, cap, req in (
        ("General", 5000, []),
        ("VIP", 300, ["VIP", "BACKSTAGE"]),
        ("Backstage", 50, ["BACKSTAGE"]),
        ("Camping", 2000, ["CAMPING"]),
    ):
        rows["zone"].append(
            {
                "id": _uuid(rng),
                "festival_id": fest_id,
                "name": name,
                "capacity": cap,
                "occupancy": 0,
                "required_types": req,
                "reentry": name != "Backstage",
            }
        )
    sample = SampleFestival(Snapshot(festival_id=fest_id, seq=1, tables={}), signer=private)
    types = list(cats)
    for i in range(tickets):
        tid = _uuid(rng)
        ttype = types[i % len(types)] if i >= 4 else TicketType.STANDARD
        status = TicketStatus.SOLD
        label = f"{ttype.value.lower()}-{i}"
        if i == 1:
            status, label = TicketStatus.CANCELLED, "cancelled"
        elif i == 2:
            status, label = TicketStatus.REFUNDED, "refunded"
        elif i == 3:
            status, label = TicketStatus.AVAILABLE, "unsold"
        row = {
            "id": tid,
            "festival_id": fest_id,
            "category_id": cats[ttype],
            "status": status.value,
        }
        if i % 5 == 4:  # every fifth ticket comes from an outside system with an opaque code
            opaque = f"EXT-{rng.getrandbits(64):016X}"
            row["code_hash"] = hashing.code_hash(hash_key, opaque).hex()
            sample.codes[f"opaque-{label}"] = opaque
        else:
            sample.codes[label] = ticketcode.encode(
                private,
                key_id=key_id,
                festival_id=uuid.UUID(fest_id),
                ticket_id=uuid.UUID(tid),
                ticket_type=ttype,
            )
            # Central's vouch for the signed code it issued (see TicketRow.code_hash).
            row["code_hash"] = hashing.code_hash(hash_key, sample.codes[label]).hex()
        rows["ticket"].append(row)
    # A ticket sold after the device's last sync: signed, valid, not in the cache.
    sample.codes["sold-after-sync"] = ticketcode.encode(
        private,
        key_id=key_id,
        festival_id=uuid.UUID(fest_id),
        ticket_id=uuid.UUID(_uuid(rng)),
        ticket_type=TicketType.STANDARD,
        valid_from=now - DAY,
        valid_until=now + 3 * DAY,
    )
    blocked_ticket = rows["ticket"][0]["id"]
    rows["block"].append({"kind": "ticket", "ref": blocked_ticket, "reason": "reported stolen"})
    sample.codes["blocked"] = sample.codes.pop("standard-0")
    vendor_id = _uuid(rng)
    rows["vendor"].append({"id": vendor_id, "festival_id": fest_id, "name": "Main Bar"})
    for name, price in (("Beer", 450), ("Water", 200), ("Cocktail", 900)):
        rows["product"].append(
            {"id": _uuid(rng), "vendor_id": vendor_id, "name": name, "price": price}
        )
    for label, balance, blocked in (
        ("alice", 5000, False),
        ("bob", 300, False),
        ("carol", 20000, False),
        ("lost", 1000, True),
    ):
        uid = rng.randbytes(7).hex()
        sample.tags[label] = uid
        rows["account"].append(
            {
                "id": _uuid(rng),
                "festival_id": fest_id,
                "tag_hash": hashing.tag_hash(hash_key, uid).hex(),
                "balance": balance,
                "blocked": blocked,
            }
        )
    sample.snapshot = Snapshot(festival_id=fest_id, seq=len(rows) + tickets, tables=rows)
    return sample
