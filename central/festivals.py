"""Festivals as ops see them: which exist, their tickets, what their outside codes risk; and
their soft delete, which settles the festival's devices and enrol codes too."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from central import catalog, catalog_write, code_entropy, keys, readable, refs, revocation, views
from central.errors import Contradiction, NotFound
from central.rows import festival_row, fetch_one, fetch_opt


class OutsideCodes(BaseModel):
    """What a festival's outside codes risk against offline guessing with a stolen key."""

    codes: int = Field(ge=0)
    weak: int = Field(ge=0, description="codes under `needed_bits` at this festival's count")
    unrated: int = Field(ge=0, description="imported before estimates were kept")
    lowest_bits: int | None
    effective_bits: float | None = Field(description="bits left to guess through the weakest")
    needed_bits: int


class FestivalSummary(BaseModel):
    """A festival in a list: its names, dates (in its time zone), tickets, outside codes."""

    id: uuid.UUID
    slug: str
    name: str
    status: catalog.FestivalStatus
    starts_at: datetime | None
    ends_at: datetime | None
    timezone: str
    currency: str = Field(pattern="^[A-Z]{3}$")
    tickets: int = Field(ge=0)
    outside_codes: OutsideCodes


class FestivalDetail(FestivalSummary):
    """One festival: what the list shows, its settings, its counts and its signing keys."""

    offline_allowance: int = Field(ge=0, description="offline spend per wristband, minor units")
    max_capacity: int | None
    created_at: datetime
    zones: int = Field(ge=0)
    vendors: int = Field(ge=0)
    devices: int = Field(ge=0, description="enrolled and not revoked")
    signing_keys: list[keys.KeyView]


class FestivalDeleted(BaseModel):
    """A festival just soft-deleted, and what went with it."""

    id: uuid.UUID
    slug: str
    deleted_at: datetime
    devices_revoked: int = Field(ge=0)
    enrol_codes_revoked: int = Field(ge=0)


async def _outside_codes(
    conn: AsyncConnection[Any], festival_ids: list[uuid.UUID]
) -> dict[uuid.UUID, OutsideCodes]:
    """Per festival: its outside codes, how many are weak, the lowest estimate, and so on."""
    cur = await conn.execute(
        "SELECT festival_id, code_bits, count(*) FROM ticket "
        "WHERE festival_id = ANY(%s) AND code_hash IS NOT NULL GROUP BY 1, 2",
        (festival_ids,),
    )
    histograms: dict[uuid.UUID, dict[int | None, int]] = {fid: {} for fid in festival_ids}
    for fid, bits, count in await cur.fetchall():
        histograms[fid][bits] = count
    out = {}
    for fid, histogram in histograms.items():
        summary = code_entropy.summarize(histogram)
        out[fid] = OutsideCodes(
            **asdict(summary),
            effective_bits=summary.effective_bits,
            needed_bits=code_entropy.needed_bits(summary.codes),
        )
    return out


async def _summaries(
    conn: AsyncConnection[Any], records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    ids = [r["id"] for r in records]
    cur = await conn.execute(
        "SELECT festival_id, count(*) FROM ticket WHERE festival_id = ANY(%s) GROUP BY 1", (ids,)
    )
    tickets: dict[uuid.UUID, int] = dict(await cur.fetchall())
    outside = await _outside_codes(conn, ids)
    return [
        views.in_zone(r, readable.time_zone(r["timezone"])[1])
        | {"tickets": tickets.get(r["id"], 0), "outside_codes": outside[r["id"]]}
        for r in records
    ]


async def list_festivals(
    conn: AsyncConnection[Any], scope: uuid.UUID | None = None
) -> list[FestivalSummary]:
    """Live festivals (only `scope` when given), oldest first, with tickets and code risk."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM festival WHERE deleted_at IS NULL"
            " AND (%(scope)s::uuid IS NULL OR id = %(scope)s) ORDER BY created_at, slug",
            {"scope": scope},
        )
        records = await cur.fetchall()
    return [FestivalSummary.model_validate(r) for r in await _summaries(conn, records)]


async def show_festival(conn: AsyncConnection[Any], ref: str | uuid.UUID) -> FestivalDetail:
    """One festival by slug or id: what `list_festivals` shows, settings, counts and keys."""
    rec = await catalog.get_festival(conn, ref)
    fid = rec["id"]
    cur = await conn.execute(
        "SELECT (SELECT count(*) FROM zone WHERE festival_id = %(fid)s),"
        " (SELECT count(*) FROM vendor WHERE festival_id = %(fid)s),"
        " (SELECT count(*) FROM device WHERE festival_id = %(fid)s AND revoked_at IS NULL)",
        {"fid": fid},
    )
    counts = await cur.fetchone()
    assert counts is not None
    (summary,) = await _summaries(conn, [rec])
    return FestivalDetail.model_validate(
        summary
        | dict(zip(("zones", "vendors", "devices"), counts, strict=True))
        | {"signing_keys": await keys.list_keys(conn, fid)}
    )


async def delete_festival(
    conn: AsyncConnection[Any], ref: str | uuid.UUID, *, actor: str, revoke_devices: bool = False
) -> FestivalDeleted:
    """Soft-delete a festival: it disappears from lookups, its rows stay for the audit trail.

    Its unused enrol codes are revoked with it. Its devices may hold events not yet pushed,
    which a revoked device can no longer deliver: while any device is not revoked the delete
    is refused (Contradiction ``festival_has_devices``) unless `revoke_devices`, which revokes
    them in the same transaction. The delete goes down the feed and into the audit log.
    """
    async with catalog_write.write(conn, actor=actor) as w:
        # NO KEY UPDATE: serialises deletes of this festival without waiting on, or blocking,
        # the key-share locks that inserts referencing it take (an enrolment's new device).
        rec = await fetch_opt(
            conn,
            "SELECT id, slug FROM festival WHERE (id = %s OR slug = %s) AND deleted_at IS NULL"
            " FOR NO KEY UPDATE",
            (refs.as_uuid(ref), str(ref)),
        )
        if rec is None:
            raise NotFound(f"no festival {ref}")
        fid = rec["id"]
        # Codes first: this waits for an enrolment in flight, whose device is then counted.
        cur = await conn.execute(
            "UPDATE enrol_code SET revoked_at = now() WHERE festival_id = %s AND used_at IS NULL"
            " AND revoked_at IS NULL AND expires_at > now()",
            (fid,),
        )
        codes = cur.rowcount
        if not revoke_devices:
            live = await fetch_one(
                conn,
                "SELECT count(*) AS n FROM device WHERE festival_id = %s AND revoked_at IS NULL",
                (fid,),
            )
            if live["n"]:
                raise Contradiction(
                    f"festival {rec['slug']} has {live['n']} device{'s' if live['n'] > 1 else ''}"
                    " not revoked, whose unsent"
                    " events would be lost: revoke them first, or delete with revoke_devices",
                    "festival_has_devices",
                )
        revoked = await revocation.revoke(
            conn, "device", "festival_id = %(fid)s", {"fid": fid}, actor=actor
        )
        deleted = await fetch_one(
            conn, "UPDATE festival SET deleted_at = now() WHERE id = %s RETURNING *", (fid,)
        )
        row = festival_row(deleted)
        await w.publish(
            fid, "festival", row, action="festival.delete", entity_type="festival", entity_id=fid,
            old=row, new={"deleted_at": deleted["deleted_at"], "devices_revoked": len(revoked),
                          "enrol_codes_revoked": codes},
            op="delete",
        )  # fmt: skip
    _, zone = readable.time_zone(deleted["timezone"])
    return FestivalDeleted(
        id=fid, slug=rec["slug"], deleted_at=deleted["deleted_at"].astimezone(zone),
        devices_revoked=len(revoked), enrol_codes_revoked=codes,
    )  # fmt: skip
