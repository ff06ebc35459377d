"""Bearer tokens: device tokens (``fgd_``) for sync, ops tokens (``fgo_``) with a role matrix.

Only ``sha256(token)`` is stored. Every request looks its token up (no cache), so a revoked
token is refused from the next request on. Which role may do what is the table
`ROLE_ACTIONS`; a device token may do `Action.SYNC` and nothing else.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from psycopg import AsyncConnection

from central.errors import AuthError
from config.vocab import Role

# Public markers of a token's kind, not secrets: a device's, an ops user's.
DEVICE_PREFIX = "fgd_"
OPS_PREFIX = "fgo_"


class OpsRole(StrEnum):
    """What an ops user is for; the role matrix (`ROLE_ACTIONS`) says what each may do, and
    the ops_user table's CHECK lists the same words (a test says so)."""

    ADMIN = "ADMIN"
    ORGANIZER = "ORGANIZER"
    STAFF = "STAFF"
    CASHIER = "CASHIER"
    SECURITY = "SECURITY"


class Action(StrEnum):
    """Things a caller may ask central to do."""

    SYNC = "sync"  # push events, read changes and snapshots (devices only)
    VIEW_CONFLICTS = "view_conflicts"
    RESOLVE_CONFLICT = "resolve_conflict"
    VIEW_DEVICES = "view_devices"
    REVOKE_DEVICE = "revoke_device"
    CREATE_ENROL_CODE = "create_enrol_code"
    VIEW_OCCUPANCY = "view_occupancy"
    VIEW_ENTRIES = "view_entries"
    VIEW_SALES = "view_sales"
    VIEW_TICKET = "view_ticket"
    VIEW_LEDGER = "view_ledger"
    VIEW_DEVICE_LOG = "view_device_log"
    CANCEL_TICKET = "cancel_ticket"
    BLOCK_TICKET = "block_ticket"  # and unblock
    TRANSFER_TICKET = "transfer_ticket"  # a new code for a new holder, the old one revoked
    REFUND_TICKET = "refund_ticket"
    BLOCK_TAG = "block_tag"  # and unblock
    TOPUP = "topup"
    REFUND = "refund"  # money back from a wristband
    VIEW_FESTIVAL = "view_festival"  # show it, and list the festivals one may see
    DELETE_FESTIVAL = "delete_festival"
    VIEW_VENDORS = "view_vendors"
    OPEN_VENDOR = "open_vendor"  # open or close
    VIEW_KEYS = "view_keys"
    ROTATE_KEY = "rotate_key"
    REVOKE_KEY = "revoke_key"
    VIEW_ENROL_CODES = "view_enrol_codes"
    REVOKE_ENROL_CODE = "revoke_enrol_code"
    VIEW_USERS = "view_users"
    ADD_USER = "add_user"
    REVOKE_USER = "revoke_user"


A = Action
_ALL_OPS = frozenset(a for a in Action if a is not Action.SYNC)
_ADMIN_ONLY = frozenset({A.DELETE_FESTIVAL, A.VIEW_USERS, A.ADD_USER, A.REVOKE_USER})
# The role matrix. Reading it row by row: only ADMIN deletes festivals and manages ops
# users; ORGANIZER runs the festival (vendors, keys, devices); SECURITY watches gates and
# may block, never touches money; CASHIER handles wristband money, never tickets; STAFF
# (site techs) see devices and enrol them but change nothing in the catalog. A ticket's
# transfer, resale and refund are box-office decisions: ADMIN and ORGANIZER only.
ROLE_ACTIONS: dict[OpsRole, frozenset[Action]] = {
    OpsRole.ADMIN: _ALL_OPS,
    OpsRole.ORGANIZER: _ALL_OPS - _ADMIN_ONLY,
    OpsRole.STAFF: frozenset(
        {
            A.VIEW_FESTIVAL, A.VIEW_CONFLICTS, A.VIEW_DEVICES, A.CREATE_ENROL_CODE,
            A.VIEW_ENROL_CODES, A.REVOKE_ENROL_CODE, A.VIEW_VENDORS, A.VIEW_OCCUPANCY,
            A.VIEW_ENTRIES, A.VIEW_TICKET, A.VIEW_DEVICE_LOG,
        }
    ),
    OpsRole.CASHIER: frozenset(
        {A.VIEW_FESTIVAL, A.VIEW_VENDORS, A.VIEW_SALES, A.VIEW_LEDGER, A.BLOCK_TAG, A.TOPUP,
         A.REFUND}
    ),
    OpsRole.SECURITY: frozenset(
        {
            A.VIEW_FESTIVAL, A.VIEW_CONFLICTS, A.RESOLVE_CONFLICT, A.VIEW_DEVICES,
            A.REVOKE_DEVICE, A.VIEW_OCCUPANCY, A.VIEW_ENTRIES, A.VIEW_TICKET, A.BLOCK_TICKET,
            A.BLOCK_TAG,
        }
    ),
}  # fmt: skip
DEVICE_ACTIONS: frozenset[Action] = frozenset({Action.SYNC})


@dataclass(frozen=True, slots=True)
class DevicePrincipal:
    """An enrolled device, as its token identifies it."""

    id: uuid.UUID
    festival_id: uuid.UUID
    role: Role
    zone_id: uuid.UUID | None
    vendor_id: uuid.UUID | None
    name: str = ""


@dataclass(frozen=True, slots=True)
class OpsPrincipal:
    """An ops user, with its role and the festival it is limited to (None: all)."""

    id: uuid.UUID
    name: str
    role: OpsRole
    festival_id: uuid.UUID | None

    @property
    def actor(self) -> str:
        """How the audit log names this user."""
        return f"ops:{self.name}:{self.id}"


Principal = DevicePrincipal | OpsPrincipal


def token_hash(token: str) -> bytes:
    """sha256 of a token's (or an enrol code's) UTF-8 text: all central ever stores of it."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_token(prefix: str) -> str:
    """A fresh bearer token with its kind prefix."""
    return prefix + secrets.token_urlsafe(32)


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header, or AuthError 401."""
    if not header:
        raise AuthError(401, "unauthorized", "missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError(401, "unauthorized", "expected 'Authorization: Bearer <token>'")
    return token.strip()


def _by_token(table: str, columns: str) -> str:
    """A token's row in `table` (`columns` of it), and whether the token was revoked on its
    own (listed in revoked_token)."""
    return (
        f"SELECT {columns}, EXISTS (SELECT 1 FROM revoked_token r"
        f" WHERE r.token_hash = t.token_hash) FROM {table} t WHERE t.token_hash = %s"
    )


_DEVICE = _by_token(
    "device", "t.id, t.festival_id, t.role, t.zone_id, t.vendor_id, t.name, t.revoked_at"
)
_OPS_USER = _by_token("ops_user", "t.id, t.name, t.role, t.festival_id, t.revoked_at, t.deleted_at")


async def authenticate(conn: AsyncConnection[Any], token: str) -> Principal:
    """Look a token up; unknown → 401 unauthorized, revoked → 401 token_revoked."""
    digest = token_hash(token)
    if token.startswith(DEVICE_PREFIX):
        rec = await (await conn.execute(_DEVICE, (digest,))).fetchone()
        if rec is None:
            raise AuthError(401, "unauthorized", "unknown token")
        if rec[6] is not None or rec[7]:
            raise AuthError(401, "token_revoked", "this device was revoked")
        return DevicePrincipal(rec[0], rec[1], Role(rec[2]), rec[3], rec[4], rec[5])
    if token.startswith(OPS_PREFIX):
        rec = await (await conn.execute(_OPS_USER, (digest,))).fetchone()
        if rec is None or rec[5] is not None:
            raise AuthError(401, "unauthorized", "unknown token")
        if rec[4] is not None or rec[6]:
            raise AuthError(401, "token_revoked", "this token was revoked")
        return OpsPrincipal(rec[0], rec[1], OpsRole(rec[2]), rec[3])
    raise AuthError(401, "unauthorized", "unknown token")


def allowed(principal: Principal, action: Action) -> bool:
    """Whether the role matrix lets this caller do `action` (festival scope aside)."""
    if isinstance(principal, DevicePrincipal):
        return action in DEVICE_ACTIONS
    return action in ROLE_ACTIONS.get(principal.role, frozenset())


def require(principal: Principal, action: Action, festival_id: uuid.UUID | None = None) -> None:
    """Raise AuthError 403 unless the caller may do `action` (on `festival_id`, if given)."""
    if not allowed(principal, action):
        raise AuthError(403, "forbidden", f"not allowed to {action}")
    scope = principal.festival_id
    if festival_id is not None and scope is not None and scope != festival_id:
        raise AuthError(403, "forbidden", "not allowed on this festival")
