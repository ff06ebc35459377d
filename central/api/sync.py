"""Device endpoints: enrol, push events, long-poll changes, stream a snapshot."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from central import feed, metrics
from central.api.deps import MAX_PUSH_BYTES, DeviceDep, StateDep, now_ms
from central.api.errors import describe_errors
from central.api.limits import SlotStream, SnapshotSlotsDep, read_body, require_json
from central.api.text import PgText
from central.auth import DevicePrincipal
from central.enrol import EnrolError, enrol
from central.errors import ApiError
from central.events import Mismatch
from central.ingest import (
    central_hlc,
    ingest_batch,
    pending_set,
    push_response,
    pushed_journal_seq,
)
from central.pg import BIGINT_MAX
from config.vocab import Role
from sync.protocol import (
    JOURNAL_SEQ_HEADER,
    PENDING_HEADER,
    ChangesResponse,
    ErrorBody,
    PushRequest,
    PushResponse,
)

router = APIRouter(prefix="/v1", tags=["sync"])
SNAPSHOT_FORMAT = "festgate-snapshot/1"
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422)
}
# The device's own figures (`sync.protocol`), shown to ops as its pending events.
JournalSeq = Annotated[
    int | None,
    Header(
        alias=JOURNAL_SEQ_HEADER, ge=0, le=BIGINT_MAX,
        description="the highest device_seq the device has journaled",
    ),
]  # fmt: skip


class EnrolRequest(BaseModel):
    """A device trading its one-time enrol code for credentials."""

    model_config = ConfigDict(extra="forbid")
    code: PgText = Field(min_length=4, max_length=64)
    name: PgText = Field("", max_length=200, description="how ops will see this device")


class EnrolResponse(BaseModel):
    """The device's id and bearer token (shown once), and what it is enrolled as."""

    device_id: uuid.UUID
    token: str
    festival_id: uuid.UUID
    role: Role
    zone_id: uuid.UUID | None
    vendor_id: uuid.UUID | None


@router.post("/devices/enroll", response_model=EnrolResponse, responses=_ERRORS)
async def enroll(body: EnrolRequest, st: StateDep) -> EnrolResponse:
    """Enrol a device with a one-time code (no bearer token needed)."""
    async with st.pool.connection() as conn:
        try:
            got = await enrol(conn, code=body.code, name=body.name)
        except EnrolError as exc:
            raise ApiError(403, "enrol_code_invalid", str(exc)) from None
    return EnrolResponse(
        device_id=got.device_id,
        token=got.token,
        festival_id=got.festival_id,
        role=Role(got.role),
        zone_id=got.zone_id,
        vendor_id=got.vendor_id,
    )


def _parse_push(body: bytes) -> PushRequest:
    try:
        return PushRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["type"] == "too_long" and tuple(e["loc"]) == ("events",) for e in errors):
            raise ApiError(413, "batch_too_large", "too many events in one push") from None
        raise ApiError(422, "invalid_request", describe_errors(list(errors))) from None


@router.post(
    "/sync/events",
    response_model=PushResponse,
    responses=_ERRORS | {code: {"model": ErrorBody} for code in (408, 415)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PushRequest"}}
            },
        }
    },
)
async def push_events(
    request: Request,
    st: StateDep,
    who: DeviceDep,
    pending: Annotated[
        int | None,
        Header(
            alias=PENDING_HEADER,
            ge=0,
            le=BIGINT_MAX,
            description="events the device holds unacknowledged, counted before this push"
            f" (read when {JOURNAL_SEQ_HEADER} is not sent)",
        ),
    ] = None,
    journal_seq: JournalSeq = None,
) -> PushResponse:
    """Push a batch of events; answer the highest contiguous device_seq central holds.

    The body is read and validated whole before a database connection is taken: a device
    on a slow link holds a socket while it sends, never a pooled connection.
    """
    require_json(request)
    req = _parse_push(await read_body(request, st.settings.max_push_bytes or MAX_PUSH_BYTES))
    metrics.count_events(req.events)
    async with st.pool.connection() as conn:
        try:
            result = await ingest_batch(
                conn,
                who,
                list(req.events),
                received_ms=now_ms(),
                skew_bound_ms=st.settings.clock_skew_bound_ms,
                journal_seq=pushed_journal_seq(
                    req.events, pending=pending, journal_seq=journal_seq
                ),
            )
        except Mismatch as exc:
            raise ApiError(403, "device_mismatch", str(exc)) from None
    return push_response(result, now_ms())


@router.get("/sync/changes", response_model=ChangesResponse, responses=_ERRORS)
async def changes(
    st: StateDep,
    who: DeviceDep,
    after: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="the device's cursor")] = 0,
    wait: Annotated[float, Query(ge=0, description="long-poll seconds (capped at 30)")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    journal_seq: JournalSeq = None,
) -> ChangesResponse:
    """Changes after a cursor; with `wait`, answer as soon as one exists (long-poll)."""
    fid = str(who.festival_id)
    deadline = time.monotonic() + min(wait, st.settings.max_wait_s)
    async with st.pool.connection() as conn:
        # A device long-polls every few seconds whether or not it has anything to push: its
        # figures stay current here even when it has nothing left to send.
        await conn.execute(
            "UPDATE device SET cursor = %(after)s, last_seen_at = now(),"
            f" {pending_set('acked_through')} WHERE id = %(id)s",
            {"after": after, "journal": journal_seq, "id": who.id},
        )
        await conn.commit()
    while True:
        token = st.waiters.token(fid)  # before reading: a commit after the read still wakes us
        async with st.pool.connection() as conn:
            rows = await feed.read_after(conn, who.festival_id, after, limit)
            head = await feed.head(conn, who.festival_id)
        remaining = deadline - time.monotonic()
        if rows or remaining <= 0:
            break
        await st.waiters.wait(token, remaining)
    return ChangesResponse(
        changes=rows,
        next_cursor=rows[-1].seq if rows else after,
        head_seq=max(head, rows[-1].seq if rows else 0),
        central_hlc=central_hlc(now_ms()),
    )


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


async def _snapshot_lines(st: StateDep, who: DevicePrincipal) -> AsyncGenerator[bytes, None]:
    # Rows go out as PostgreSQL's own JSON text of each row, joined into chunk lines: no
    # parse and re-serialise per row here, which would cost more than the whole database
    # read. Each rows line names its row count, so a device can check and count a chunk
    # without parsing it first.
    chunk = st.settings.snapshot_chunk
    fid = who.festival_id
    async with st.pool.connection() as conn, feed.snapshot_view(conn, fid) as seq:
        yield _line({"type": "header", "format": SNAPSHOT_FORMAT,
                     "festival_id": str(fid), "seq": seq})  # fmt: skip
        total = 0
        async for table, texts in feed.snapshot_text(conn, fid, seq, batch=max(chunk, 5000)):
            for i in range(0, len(texts), chunk):
                part = texts[i : i + chunk]
                head = f'{{"type":"rows","table":"{table}","count":{len(part)},"rows":['
                yield (head + ",".join(part) + "]}\n").encode()
                total += len(part)
        yield _line({"type": "end", "seq": seq, "rows": total})


@router.get(
    "/sync/snapshot",
    responses={
        200: {"content": {"application/x-ndjson": {}}},
        429: {"model": ErrorBody, "description": "too many snapshot streams; see Retry-After"},
        **_ERRORS,
    },
    response_class=StreamingResponse,
)
async def snapshot(st: StateDep, who: DeviceDep, slots: SnapshotSlotsDep) -> Response:
    """The whole catalog as NDJSON: a header, rows per table in chunks, an end line with seq.

    Continue with ``/v1/sync/changes?after=<seq>``. A stream without its end line is cut.
    Each stream holds a pooled connection for its REPEATABLE READ view, so only a few run
    at once; a request that finds no free stream within a few seconds gets 429.
    """
    if not await slots.acquire():
        return slots.refusal("snapshot")
    return SlotStream(_snapshot_lines(st, who), slots.release, "application/x-ndjson")
