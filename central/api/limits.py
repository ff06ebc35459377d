"""What a request may cost central: a body read whole before any database work, and a
cap on the streams that each hold a pooled connection.

The server bounds how long a client may take (``central.http_server``); these keep a
client's slowness off the database pool while it takes that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Callable
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from central.api.errors import error_response
from central.errors import ApiError
from sync.protocol import RETRY_AFTER_HEADER


def require_json(request: Request) -> None:
    """A body declared as anything but JSON is 415 (no Content-Type: taken as JSON)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.partition(";")[0].strip().lower()
    if media != "application/json":
        raise ApiError(415, "unsupported_media_type", f"send application/json, not {media!r}")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, at most `limit` bytes (else 413).

    A client gone before its body ended (the server's body deadline cut it, or it left)
    is 408: nobody reads that answer, but the request ends there with nothing stored.
    """
    too_large = ApiError(413, "payload_too_large", f"request body over {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    try:
        async with contextlib.aclosing(request.stream()) as chunks:
            async for chunk in chunks:  # read no more than the limit, declared or not
                body += chunk
                if len(body) > limit:
                    raise too_large
    except ClientDisconnect:
        raise ApiError(408, "request_timeout", "the request body did not arrive") from None
    return bytes(body)


class StreamSlots:
    """At most `size` streams at once; a request waits up to `queue_s` for a free one."""

    def __init__(self, size: int, queue_s: float) -> None:
        self.size = size
        self.queue_s = queue_s
        self._free = asyncio.Semaphore(size)

    async def acquire(self) -> bool:
        """Take a slot, waiting up to `queue_s`; False if none came free."""
        try:
            async with asyncio.timeout(self.queue_s):
                await self._free.acquire()
        except TimeoutError:
            return False
        return True

    def release(self) -> None:
        """Give a slot back."""
        self._free.release()

    def refusal(self, what: str) -> JSONResponse:
        """429 too_many_requests with Retry-After: by then a stream has likely ended."""
        response = error_response(
            429, "too_many_requests", f"{self.size} {what} streams are running; retry later"
        )
        response.headers[RETRY_AFTER_HEADER] = str(max(1, math.ceil(self.queue_s)))
        return response


def snapshot_slots(request: Request) -> StreamSlots:
    """The app's snapshot stream slots (set up by the lifespan, with the app state)."""
    return cast(StreamSlots, request.app.state.snapshot_slots)


SnapshotSlotsDep = Annotated[StreamSlots, Depends(snapshot_slots)]


class SlotStream(StreamingResponse):
    """A streamed answer holding a slot: when it ends, however it ends (done, cut by the
    server's send deadline, client gone), its source is closed and the slot given back."""

    def __init__(
        self, lines: AsyncGenerator[bytes, None], release: Callable[[], None], media_type: str
    ) -> None:
        super().__init__(lines, media_type=media_type)
        self._lines = lines
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream, then close the source now (not when it is collected): that returns its
        pooled connection."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self._lines.aclose()
            finally:
                self._release()
