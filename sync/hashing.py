"""Keyed hashes of opaque ticket codes and wristband tag UIDs.

A device stores only these hashes; the festival's hash key is a salt that
stops cross-festival dictionaries, not a secret that makes tickets: a hash
cannot be turned back into a working code.
"""

from __future__ import annotations

import hmac

HASH_BYTES = 16


def code_hash(key: bytes, code: str | bytes) -> bytes:
    """Keyed hash of an opaque ticket code as scanned (exact bytes, no normalisation)."""
    raw = code.encode("utf-8", "surrogateescape") if isinstance(code, str) else code
    # hmac.digest is OpenSSL's one-shot HMAC: the same bytes as hmac.new(...).digest(), a
    # fraction of the cost on a gate's hot path.
    return hmac.digest(key, b"code\x00" + raw, "sha256")[:HASH_BYTES]


def normalize_tag_uid(uid: str | bytes) -> bytes:
    """Tag UIDs arrive as bytes from a reader or hex from a person; compare as bytes."""
    raw = (
        uid
        if isinstance(uid, bytes)
        else bytes.fromhex(uid.strip().replace(":", "").replace(" ", "").replace("-", ""))
    )
    # ISO 14443 UIDs are 4, 7 or 10 bytes; FeliCa IDm is 8. Anything else is a misread.
    if not 4 <= len(raw) <= 10:
        raise ValueError(f"a tag UID is 4 to 10 bytes, got {len(raw)}")
    return raw


def tag_hash(key: bytes, uid: str | bytes) -> bytes:
    """Keyed hash of an NFC tag UID (raises ValueError for a UID that is not hex)."""
    return hmac.digest(key, b"tag\x00" + normalize_tag_uid(uid), "sha256")[:HASH_BYTES]
