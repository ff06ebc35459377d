"""Signed ticket codes: a compact Ed25519-signed payload, text-encoded for a QR.

Wire form: ``FG1.`` + unpadded RFC 4648 base32 of ``payload || signature``.
Base32 keeps to QR's alphanumeric set (with ``.``), so the symbol stays small.
Payload (big-endian, 48 bytes): version u8, key_id u32, festival uuid (16),
ticket uuid (16), ticket type u8 (index into TICKET_TYPE_ORDER), code_version
u16 (bumped when a ticket is transferred or resold), valid_from u32 and
valid_until u32 (unix seconds, 0 = open).
"""

from __future__ import annotations

import base64
import struct
import uuid
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.vocab import TICKET_TYPE_ORDER, TicketType

PREFIX = "FG1."
FORMAT_VERSION = 1
_PAYLOAD = struct.Struct(">BI16s16sBHII")
SIGNATURE_BYTES = 64
ENCODED_BYTES = _PAYLOAD.size + SIGNATURE_BYTES
# Longest text a well-formed code can have; anything longer is not one of ours.
MAX_TEXT = len(PREFIX) + (ENCODED_BYTES * 8 + 4) // 5


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
# int(text, 32) is C-fast but reads 0-9a-v; map RFC 4648's alphabet onto it.
_TO_INT32 = str.maketrans(_B32, "0123456789abcdefghijklmnopqrstuv")
_TEXT_CHARS = -(-ENCODED_BYTES * 8 // 5)
_PAD_BITS = _TEXT_CHARS * 5 - ENCODED_BYTES * 8


def _b32decode(body: str) -> bytes:
    """Strict unpadded base32 of exactly ENCODED_BYTES (base64.b32decode is pure Python, slow)."""
    if len(body) != _TEXT_CHARS or body.strip(_B32):
        raise MalformedCode("not base32 of the right length")
    value = int(body.translate(_TO_INT32), 32)
    if value & ((1 << _PAD_BITS) - 1):
        raise MalformedCode("non-zero padding bits")
    return (value >> _PAD_BITS).to_bytes(ENCODED_BYTES, "big")


class MalformedCode(ValueError):
    """Text that claims to be a signed code but does not decode as one."""


@dataclass(frozen=True, slots=True)
class SignedCode:
    """A decoded signed ticket code; `verify` checks it against a public key."""

    key_id: int
    festival_id: uuid.UUID
    ticket_id: uuid.UUID
    ticket_type: TicketType
    code_version: int
    valid_from: int | None
    valid_until: int | None
    payload: bytes
    signature: bytes

    def verify(self, public_key: bytes) -> bool:
        """True when the signature is the festival key's signature over the payload."""
        try:
            _public_key(public_key).verify(self.signature, self.payload)
        except (InvalidSignature, ValueError):
            return False
        return True


@lru_cache(maxsize=64)
def _public_key(raw: bytes) -> Ed25519PublicKey:
    # Parsing the key costs as much as verifying; a festival has a handful of keys.
    return Ed25519PublicKey.from_public_bytes(raw)


def looks_signed(text: str) -> bool:
    """True for text in our signed-code namespace (decoding may still fail)."""
    return text.startswith(PREFIX)


def decode(text: str) -> SignedCode:
    """Decode a signed code's text without verifying it; MalformedCode if it is not one."""
    if not looks_signed(text) or len(text) > MAX_TEXT:
        raise MalformedCode("not a signed code")
    raw = _b32decode(text[len(PREFIX) :])
    payload, signature = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    version, key_id, fest, ticket, type_index, code_version, vfrom, vuntil = _PAYLOAD.unpack(
        payload
    )
    if version != FORMAT_VERSION or type_index >= len(TICKET_TYPE_ORDER):
        raise MalformedCode("unknown version or ticket type")
    return SignedCode(
        key_id=key_id,
        festival_id=uuid.UUID(bytes=fest),
        ticket_id=uuid.UUID(bytes=ticket),
        ticket_type=TICKET_TYPE_ORDER[type_index],
        code_version=code_version,
        valid_from=vfrom or None,
        valid_until=vuntil or None,
        payload=payload,
        signature=signature,
    )


def encode(
    private_key: Ed25519PrivateKey,
    *,
    key_id: int,
    festival_id: uuid.UUID,
    ticket_id: uuid.UUID,
    ticket_type: TicketType,
    code_version: int = 0,
    valid_from: int | None = None,
    valid_until: int | None = None,
) -> str:
    """Sign and encode a ticket code (central only: devices never hold a private key)."""
    payload = _PAYLOAD.pack(
        FORMAT_VERSION,
        key_id,
        festival_id.bytes,
        ticket_id.bytes,
        TICKET_TYPE_ORDER.index(ticket_type),
        code_version,
        valid_from or 0,
        valid_until or 0,
    )
    raw = payload + private_key.sign(payload)
    return PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=")


def public_bytes(private_key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key that goes down to devices."""
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
