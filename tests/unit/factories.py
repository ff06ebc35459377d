"""Small builders for catalog rows, signed code texts and decision contexts.

No mocks: keys are real Ed25519 keys, codes are really signed and encoded, and
`Cache.gate_context` looks rows up the way the device store does (signing key
by the code's key id, ticket by the code's ticket id or by the keyed hash of an
opaque code), so a test row reads as "this cache, this scan, this verdict".
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.decide import GateContext, Presence, SaleContext, ScannedCode, classify, gate_context
from sync import ticketcode
from sync.catalog import AccountRow, CategoryRow, SigningKeyRow, TicketRow, VendorRow, ZoneRow
from sync.hashing import code_hash
from sync.vocab import TicketStatus, TicketType

FESTIVAL_ID = str(uuid.UUID("0195a3c4-0000-7000-8000-00000000f357"))
OTHER_FESTIVAL_ID = str(uuid.UUID("0195a3c4-0000-7000-8000-0000000000e2"))
HASH_KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
NOW = 1_750_000_000  # a fixed "now" (unix seconds) that every window is placed around
HOUR = 3600


def new_id() -> str:
    """A fresh row id shaped like the uuids central issues."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Signer:
    """A real Ed25519 key pair with the key id it signs under and its cached row."""

    private: Ed25519PrivateKey
    key_id: int
    festival_id: str

    def row(self, *, revoked: bool = False) -> SigningKeyRow:
        """The public-key row central sends down for this key."""
        return SigningKeyRow(
            key_id=self.key_id,
            festival_id=self.festival_id,
            public_key=ticketcode.public_bytes(self.private).hex(),
            revoked=revoked,
        )

    def sign(
        self,
        ticket_id: str,
        *,
        ticket_type: TicketType = TicketType.STANDARD,
        code_version: int = 0,
        valid_from: int | None = None,
        valid_until: int | None = None,
        festival_id: str | None = None,
    ) -> str:
        """Encode and sign a ticket code (as central would) for this key's festival."""
        return ticketcode.encode(
            self.private,
            key_id=self.key_id,
            festival_id=uuid.UUID(festival_id or self.festival_id),
            ticket_id=uuid.UUID(ticket_id),
            ticket_type=ticket_type,
            code_version=code_version,
            valid_from=valid_from,
            valid_until=valid_until,
        )


def signer(key_id: int = 1, festival_id: str = FESTIVAL_ID) -> Signer:
    """A signer with a freshly generated private key."""
    return Signer(Ed25519PrivateKey.generate(), key_id, festival_id)


def zone(
    *,
    capacity: int | None = None,
    required_types: tuple[TicketType, ...] = (),
    reentry: bool = True,
    festival_id: str = FESTIVAL_ID,
) -> ZoneRow:
    return ZoneRow(
        id=new_id(),
        festival_id=festival_id,
        name="Main arena",
        capacity=capacity,
        required_types=required_types,
        reentry=reentry,
    )


def category(
    ticket_type: TicketType = TicketType.STANDARD,
    *,
    valid_from: int | None = None,
    valid_until: int | None = None,
    festival_id: str = FESTIVAL_ID,
) -> CategoryRow:
    return CategoryRow(
        id=new_id(),
        festival_id=festival_id,
        name=f"{ticket_type.value.title()} pass",
        type=ticket_type,
        valid_from=valid_from,
        valid_until=valid_until,
    )


def ticket(
    cat: CategoryRow,
    *,
    status: TicketStatus = TicketStatus.SOLD,
    code_version: int = 0,
    suspicious: bool = False,
    opaque_code: str | None = None,
    ticket_id: str | None = None,
) -> TicketRow:
    return TicketRow(
        id=ticket_id or new_id(),
        festival_id=cat.festival_id,
        category_id=cat.id,
        status=status,
        code_hash=code_hash(HASH_KEY, opaque_code).hex() if opaque_code is not None else None,
        code_version=code_version,
        suspicious=suspicious,
    )


def account(balance: int = 5000, *, blocked: bool = False) -> AccountRow:
    return AccountRow(
        id=new_id(),
        festival_id=FESTIVAL_ID,
        tag_hash="ab" * 16,
        balance=balance,
        blocked=blocked,
    )


def vendor(*, is_open: bool = True) -> VendorRow:
    return VendorRow(id=new_id(), festival_id=FESTIVAL_ID, name="Beer tent", is_open=is_open)


def sale(
    amount: int,
    *,
    acct: AccountRow | None = None,
    vend: VendorRow | None = None,
    tag_blocked: bool = False,
    unknown_product: bool = False,
    pending: int = 0,
    offline_spent: int = 0,
    online: bool = False,
    allowance: int = 2000,
) -> SaleContext:
    """A sale of `amount` at an open vendor on a wristband holding 50.00 unless told otherwise."""
    return SaleContext(
        account=acct if acct is not None else account(),
        vendor=vend if vend is not None else vendor(),
        amount=amount,
        tag_blocked=tag_blocked,
        unknown_product=unknown_product,
        pending=pending,
        offline_spent=offline_spent,
        online=online,
        allowance=allowance,
    )


def opaque_code() -> str:
    """A code as an outside ticketing system prints it."""
    return "EXT-" + uuid.uuid4().hex[:16].upper()


# --- mangling signed codes -------------------------------------------------------------------


def _raw(text: str) -> bytes:
    body = text[len(ticketcode.PREFIX) :]
    return base64.b32decode(body + "=" * (-len(body) % 8))


def _text(raw: bytes) -> str:
    return ticketcode.PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=")


def flip_bit(text: str, byte_index: int, bit: int = 0) -> str:
    """The same code with one bit of its payload||signature flipped, re-encoded cleanly."""
    raw = bytearray(_raw(text))
    raw[byte_index] ^= 1 << bit
    return _text(bytes(raw))


def truncate(text: str, chars: int = 1) -> str:
    """The code's text missing its last `chars` characters (a half-read QR)."""
    return text[:-chars]


# Byte offsets inside payload||signature (see sync/ticketcode.py's struct layout).
VERSION_BYTE = 0
KEY_ID_BYTES = range(1, 5)
FESTIVAL_BYTES = range(5, 21)
TICKET_ID_BYTES = range(21, 37)
TYPE_BYTE = 37
SIGNATURE_START = ticketcode.ENCODED_BYTES - ticketcode.SIGNATURE_BYTES


# --- a device cache and the store's look-ups ---------------------------------------------------


@dataclass
class Cache:
    """What a device has synced: keys by key id, categories, tickets, block list."""

    festival_id: str = FESTIVAL_ID
    keys: dict[int, SigningKeyRow] = field(default_factory=dict)
    categories: dict[str, CategoryRow] = field(default_factory=dict)
    tickets: dict[str, TicketRow] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)

    def add_key(self, row: SigningKeyRow) -> None:
        self.keys[row.key_id] = row

    def add(self, cat: CategoryRow, *tickets: TicketRow) -> None:
        self.categories[cat.id] = cat
        for row in tickets:
            self.tickets[row.id] = row

    def find_ticket(self, code: ScannedCode) -> TicketRow | None:
        """The ticket a scanned code names: by id for signed codes, by keyed hash for opaque."""
        if code.signed is not None:
            return self.tickets.get(str(code.signed.ticket_id))
        if code.kind == "opaque":
            wanted = code_hash(HASH_KEY, code.text).hex()
            return next((t for t in self.tickets.values() if t.code_hash == wanted), None)
        return None

    def gate_context(
        self,
        raw: str | bytes,
        zone_row: ZoneRow,
        *,
        presence: Presence = Presence.NEVER,
        occupancy: int = 0,
        pending: int = 0,
        exit: bool = False,
    ) -> GateContext:
        """Classify a scan and gather the rows for it, as the device store does; `occupancy`
        is central's count for the zone, `pending` this device's moves it does not show yet."""
        code = classify(raw)
        row = self.find_ticket(code)
        ticket_id = row.id if row is not None else None
        if ticket_id is None and code.signed is not None:
            ticket_id = str(code.signed.ticket_id)  # the block list holds unsynced tickets too
        return gate_context(
            self.festival_id,
            zone_row.model_copy(update={"occupancy": occupancy}),
            code,
            key=self.keys.get(code.signed.key_id) if code.signed is not None else None,
            code_hash=code_hash(HASH_KEY, code.text).hex()
            if code.kind in ("opaque", "signed")
            else None,
            ticket=row,
            category=self.categories.get(row.category_id) if row is not None else None,
            blocked=ticket_id in self.blocked,
            presence=presence,
            pending_occupancy=pending,
            exit=exit,
        )
