"""The append-only audit log: who changed what, with the old and new value."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel


def jsonable(value: Any) -> Any:
    """Turn a row (model, record dict, uuid, bytes, datetime) into plain JSON values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def record(
    conn: AsyncConnection[Any],
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: object,
    old: object = None,
    new: object = None,
    festival_id: uuid.UUID | None = None,
) -> None:
    """Append one audit entry inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO audit_log (actor, action, entity_type, entity_id, festival_id, "
        "old_value, new_value) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            actor,
            action,
            entity_type,
            str(entity_id),
            festival_id,
            None if old is None else Jsonb(jsonable(old)),
            None if new is None else Jsonb(jsonable(new)),
        ),
    )
