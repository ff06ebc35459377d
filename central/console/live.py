"""Live pages: server-sent events woken by the change feed's NOTIFY.

Each central process has one LISTEN connection (`central.api.longpoll.FeedWaiters`, the
long-poll's), which wakes every waiter of a festival when a device's sync or an ops write
changes it; so a browser watching any central process sees a change made through any other.
A stream re-renders its fragment when woken (at most every MIN_GAP_S: a busy ingest wakes
it many times a second), and at least every REFRESH_S (what changes without a feed change:
a device going offline, the clock), and sends it only when it differs from the last one
sent. Browsers watching the same festival in the same view share
one render per wake-up (`SharedRenders`), so fifty open screens cost one render, not fifty.
The stream re-checks its session every REFRESH_S: a logout or a revoked session ends it
within that (the page then stops reconnecting: ``sse-close="ended"``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from functools import lru_cache
from typing import Any

from psycopg import AsyncConnection

from central.api.deps import AppState
from central.console import sessions

REFRESH_S = 10.0  # a view re-rendered at least this often, changed or not
MIN_GAP_S = 0.5  # a view rendered at most this often, however often the feed changes
KEEPALIVE_S = 15.0  # a comment line this often on a quiet stream (proxies close idle ones)
# A stream ends after STREAM_S and the browser reconnects RETRY_MS later (getting the view
# as of then at once): uvicorn's graceful shutdown waits for every open response, so an
# endless stream would hold a stopping central forever. The long-poll has the same bound.
STREAM_S = 30.0
RETRY_MS = 500
Render = Callable[[AsyncConnection[Any]], Awaitable[str]]


@lru_cache(maxsize=16)
def sse(event: str, data: str) -> str:
    """One server-sent event: every line of `data` prefixed (a fragment spans lines).

    Cached: every stream showing a view sends the same shared render (`SharedRenders`), so
    fifty screens cost one formatting of it, not fifty."""
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n"


class SharedRenders:
    """One render per (view, wake-up) shared by every stream showing that view.

    A view's key names everything its HTML depends on (festival, language, which sections
    the role sees). A render is reused while the festival's wake-up event is the same
    object (no change since) and it is younger than REFRESH_S."""

    def __init__(self) -> None:
        self._done: dict[Hashable, tuple[asyncio.Event, float, asyncio.Task[str]]] = {}

    async def get(self, key: Hashable, wake: asyncio.Event, pool: Any, render: Render) -> str:
        """The view's HTML as of `wake`, rendered once for everyone asking."""
        loop = asyncio.get_running_loop()
        held = self._done.get(key)
        if held is not None and held[0] is wake and loop.time() - held[1] < REFRESH_S:
            return await asyncio.shield(held[2])

        async def make() -> str:
            async with pool.connection() as conn:
                return await render(conn)

        task = loop.create_task(make())
        self._done[key] = (wake, loop.time(), task)
        try:
            return await asyncio.shield(task)
        except Exception:  # the render failed (a caller's cancellation leaves it running)
            if self._done.get(key, (None, 0.0, None))[2] is task:
                del self._done[key]  # not shared: the next caller retries
            raise


async def stream(
    st: AppState,
    shared: SharedRenders,
    *,
    festival_id: object,
    key: Hashable,
    event: str,
    token: str,
    render: Render,
) -> AsyncIterator[str]:
    """The events of one browser's stream: `event` with the view's HTML when it changes."""
    yield f"retry: {RETRY_MS}\n\n"
    sent: str | None = None
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    end = quiet_since + STREAM_S
    checked = -REFRESH_S
    while loop.time() < end:
        wake = st.waiters.token(str(festival_id))  # before reading: a change after it wakes
        # The session every REFRESH_S, not on every wake-up: fifty open screens would ask
        # the pool fifty times for each device's push.
        if loop.time() - checked >= REFRESH_S:
            checked = loop.time()
            async with st.pool.connection() as conn:
                alive = await sessions.session_of(conn, token)
            if alive is None:
                yield sse("ended", "")
                return
        html = await shared.get(key, wake, st.pool, render)
        if html != sent:
            sent = html
            quiet_since = loop.time()
            yield sse(event, html)
        elif loop.time() - quiet_since >= KEEPALIVE_S:
            quiet_since = loop.time()
            yield ": keepalive\n\n"
        rendered = loop.time()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min(REFRESH_S, KEEPALIVE_S, end - loop.time()))):
                await wake.wait()
        # A busy ingest notifies many times a second: render at most every MIN_GAP_S, taking
        # in every change made meanwhile (the next token is taken after this pause).
        await asyncio.sleep(max(0.0, rendered + MIN_GAP_S - loop.time()))
