"""Device endpoints: enrol, push events, long-poll changes, stream a snapshot."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from central import feed, metrics
from central.api.deps import MAX_PUSH_BYTES, AppState, DeviceDep, StateDep, now_ms
from central.api.errors import describe_errors
from central.api.limits import SlotStream, SnapshotSlotsDep, read_body, require_json
from central.auth import DevicePrincipal
from central.enrol import EnrolError, enrol
from central.errors import ApiError
from central.events import Mismatch
from central.ingest import (
    SMALL_PUSH,
    central_hlc,
    ingest_batch,
    pending_set,
    push_response,
    pushed_journal_seq,
    turn_keys,
)
from central.turns import TurnLeft
from config.vocab import Role
from sync.catalog import Change
from sync.device_report import parse_readers, parse_software
from sync.protocol import (
    ACKED_HEADER,
    HISTORY_HEADER,
    JOURNAL_SEQ_HEADER,
    MAX_BIGINT,
    MAX_HISTORY_CHARS,
    PENDING_HEADER,
    READERS_HEADER,
    RETRY_AFTER_HEADER,
    SOFTWARE_HEADER,
    CentralBehindBody,
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    ErrorBody,
    Paths,
    PushRequest,
    PushResponse,
)
from sync.snapshot import MEDIA_TYPE as SNAPSHOT_MEDIA_TYPE
from sync.snapshot import end_line, header_line, rows_line

log = logging.getLogger(__name__)
router = APIRouter(tags=["sync"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 413, 422)
}
# The device's own figures (`sync.protocol`), shown to ops as its pending events.
JournalSeq = Annotated[
    int | None,
    Header(
        alias=JOURNAL_SEQ_HEADER, ge=0, le=MAX_BIGINT,
        description="the highest device_seq the device has journaled",
    ),
]  # fmt: skip

# What the device remembers central acknowledged (`sync.protocol.ACKED_HEADER`).
AckedThrough = Annotated[
    int | None,
    Header(
        alias=ACKED_HEADER, ge=0, le=MAX_BIGINT,
        description="the highest device_seq central acknowledged to this device, as it"
        " remembers; more than central holds is 409 central_behind",
    ),
]  # fmt: skip
# The history the device's cursor belongs to (`sync.protocol.HISTORY_HEADER`).
History = Annotated[
    str | None,
    Header(
        alias=HISTORY_HEADER, max_length=MAX_HISTORY_CHARS,
        description="the history the device's cursor belongs to, as central stated it; another"
        " than central's is 409 central_behind",
    ),
]  # fmt: skip
# Stated on every answer a device keeps a cursor from, and on a 409.
_STATES_HISTORY = {
    HISTORY_HEADER: {
        "description": "the history central serves (changes when it is restored from a backup)",
        "schema": {"type": "string", "maxLength": MAX_HISTORY_CHARS},
    }
}
_BEHIND: dict[int | str, dict[str, Any]] = {
    409: {
        "model": CentralBehindBody,
        "description": "central was restored from a backup",
        "headers": _STATES_HISTORY,
    }
}


async def _behind(
    st: StateDep,
    who: DevicePrincipal,
    acked: int | None,
    cursor: int | None,
    history: str | None = None,
) -> JSONResponse | None:
    """409 central_behind when the device knows of more than central holds: events
    acknowledged beyond central's acked_through, a feed cursor past central's head, or a
    cursor from another history (a restore from a backup). None when central is not behind,
    or the device sends neither `acked` nor `history` (a client from before the signals,
    which would not understand it)."""
    other = history is not None and history != st.history
    if not other and (acked is None or (not acked and not cursor)):
        return None
    async with st.pool.connection() as conn:
        # One round trip: what central holds of this device, and its festival's feed head.
        cur = await conn.execute(
            "SELECT d.acked_through, coalesce((SELECT h.head FROM feed_head h"
            " WHERE h.festival_id = d.festival_id), 0) FROM device d WHERE d.id = %s",
            (who.id,),
        )
        rec = await cur.fetchone()
    held, head = (int(rec[0]), int(rec[1])) if rec is not None else (0, 0)
    if not other and (acked or 0) <= held and (cursor or 0) <= head:
        return None
    body = CentralBehindBody(
        detail=f"central holds this device's events through {held} and its feed through"
        f" {head}"
        + (f" of history {st.history}" if other else "")
        + ": re-send what it lacks, reload the catalog if ahead or from another history",
        acked_through=held,
        head_seq=head,
    )
    return JSONResponse(body.model_dump(), status_code=409, headers=_states(st))


def _states(st: AppState) -> dict[str, str]:
    """The history central serves, as a response header."""
    return {HISTORY_HEADER: st.history}


@router.post(Paths.ENROL, response_model=EnrolResponse, responses=_ERRORS)
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
    Paths.EVENTS,
    response_model=PushResponse,
    responses=_ERRORS | _BEHIND | {code: {"model": ErrorBody} for code in (408, 415)},
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
            le=MAX_BIGINT,
            description="events the device holds unacknowledged, counted before this push"
            f" (read when {JOURNAL_SEQ_HEADER} is not sent)",
        ),
    ] = None,
    journal_seq: JournalSeq = None,
    acked: AckedThrough = None,
) -> PushResponse | JSONResponse:
    """Push a batch of events; answer the highest contiguous device_seq central holds.

    The body is read and validated whole before a database connection is taken: a device
    on a slow link holds a socket while it sends, never a pooled connection.
    """
    require_json(request)
    req = _parse_push(await read_body(request, st.settings.max_push_bytes or MAX_PUSH_BYTES))
    if (behind := await _behind(st, who, acked, None)) is not None:
        return behind  # nothing stored: the device re-sends from central's acked_through
    metrics.count_events(req.events)
    # Pushes that apply presence or balances queue for their festival's ingest lock here,
    # before they take a pooled connection (`central.turns`); a device that leaves while
    # queued leaves the queue, and a wait past `ingest_queue_s` is 503 busy.
    keys = turn_keys(who, req.events, held=acked or 0)
    small = len(req.events) <= SMALL_PUSH
    async with _ingest_turn(request, st, keys, small=small), st.pool.connection() as conn:
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


@asynccontextmanager
async def _ingest_turn(
    request: Request, st: StateDep, keys: list[int], *, small: bool
) -> AsyncIterator[None]:
    """Hold this process's turns of `keys` (`central.turns`, in the `small` lane or the
    large one) for the block. A client that leaves while queued leaves the queue (408,
    which nobody reads); a wait past `ingest_queue_s` is ``503 busy``, as when no pooled
    connection comes free."""
    if not keys:
        yield
        return

    async def disconnected() -> None:
        # The body is read whole, so the next message the server sends is the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    gone = asyncio.ensure_future(disconnected())
    try:
        async with st.turns.hold(keys, st.settings.ingest_queue_s, small=small, gone=gone):
            gone.cancel()  # its turn come, a push goes through as it always did
            yield
    except TurnLeft:
        raise ApiError(408, "request_timeout", "the client left while its push queued") from None
    finally:
        gone.cancel()


@router.get(
    Paths.CHANGES,
    response_model=ChangesResponse,
    responses=_ERRORS | _BEHIND | {200: {"headers": _STATES_HISTORY}},
)
async def changes(
    response: Response,
    st: StateDep,
    who: DeviceDep,
    after: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="the device's cursor")] = 0,
    wait: Annotated[float, Query(ge=0, description="long-poll seconds (capped at 30)")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    journal_seq: JournalSeq = None,
    software: Annotated[
        str | None, Header(alias=SOFTWARE_HEADER, description="the device's festgate version")
    ] = None,
    readers: Annotated[
        str | None,
        Header(alias=READERS_HEADER, description="its readers working, e.g. camera=up,nfc=down"),
    ] = None,
    acked: AckedThrough = None,
    history: History = None,
) -> ChangesResponse | JSONResponse:
    """Changes after a cursor; with `wait`, answer as soon as one exists (long-poll).

    The device's software version and readers are recorded for ops; a value out of bounds
    (`sync.device_report`) is ignored with a warning, and the request is answered as usual.
    """
    if (behind := await _behind(st, who, acked, after, history)) is not None:
        return behind  # a cursor past the head would otherwise wait for ever
    response.headers.update(_states(st))
    fid = str(who.festival_id)
    report = _device_report(who, software, readers)
    deadline = time.monotonic() + min(wait, st.settings.max_wait_s)
    async with st.pool.connection() as conn:
        # A device long-polls every few seconds whether or not it has anything to push: its
        # figures stay current here even when it has nothing left to send.
        await conn.execute(
            "UPDATE device SET cursor = %(after)s, last_seen_at = now(),"
            " software_version = coalesce(%(software)s, software_version),"
            " readers = coalesce(%(readers)s, readers),"
            f" {pending_set('acked_through')} WHERE id = %(id)s",
            {"after": after, "journal": journal_seq, "id": who.id, **report},
        )
        await conn.commit()

    async def read() -> tuple[list[Change], int]:
        async with st.pool.connection() as conn:
            return (
                await feed.read_after(conn, who.festival_id, after, limit),
                await feed.head(conn, who.festival_id),
            )

    while True:
        token = st.waiters.token(fid)  # before reading: a commit after the read still wakes us
        # Waiters woken together that ask the same page share one read (`longpoll`).
        rows, head = await st.waiters.shared(token, (after, limit), read)
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


def _device_report(
    who: DevicePrincipal, software: str | None, readers: str | None
) -> dict[str, object]:
    """What a changes request says of its device, as the UPDATE's parameters (None: keep
    what central knew); a value that is sent but out of bounds is left out, with a warning."""
    version, working = parse_software(software), parse_readers(readers)
    for header, sent, parsed in (
        (SOFTWARE_HEADER, software, version),
        (READERS_HEADER, readers, working),
    ):
        if sent is not None and parsed is None:
            log.warning(
                "ignored a bad %s header from device %s (%d chars)", header, who.id, len(sent)
            )
    return {"software": version, "readers": None if working is None else Jsonb(working)}


async def _snapshot_lines(st: StateDep, who: DevicePrincipal) -> AsyncGenerator[bytes, None]:
    # Rows go out as PostgreSQL's own JSON text of each row, joined into chunk lines: no
    # parse and re-serialise per row here, which would cost more than the whole database
    # read (`sync.snapshot`).
    chunk = st.settings.snapshot_chunk
    fid = who.festival_id
    async with st.pool.connection() as conn, feed.snapshot_view(conn, fid) as seq:
        yield header_line(str(fid), seq)
        total = 0
        async for table, texts in feed.snapshot_text(conn, fid, seq, batch=max(chunk, 5000)):
            for i in range(0, len(texts), chunk):
                part = texts[i : i + chunk]
                yield rows_line(table, part)
                total += len(part)
        yield end_line(seq, total)


@router.get(
    Paths.SNAPSHOT,
    responses={
        200: {"content": {SNAPSHOT_MEDIA_TYPE: {}}, "headers": _STATES_HISTORY},
        429: {
            "model": ErrorBody,
            "description": f"too many snapshot streams; see {RETRY_AFTER_HEADER}",
        },
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
    stream = SlotStream(_snapshot_lines(st, who), slots.release, SNAPSHOT_MEDIA_TYPE)
    stream.headers.update(_states(st))
    return stream
