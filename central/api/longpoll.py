"""Long-poll wake-ups: one LISTEN connection fanned out to every waiting request, and one
feed read shared by the waiters that ask the same thing.

`feed.publish` sends ``NOTIFY festgate_feed, '<festival>:<seq>'``, delivered at commit. A
waiter takes the festival's current `asyncio.Event` *before* it reads the feed, so a commit
between its read and its wait still wakes it. If the listener is down (database restart), waiters
fall back to re-reading every `POLL_S` seconds, so a change is never missed, only seen
later.

Shared reads: a NOTIFY wakes every waiter of the festival at once, and each used to read
the feed on a pooled connection of its own (2,000 waiters woken: 2,000 reads through a
pool of ten, 7.7 s until the last answer). Now waiters holding the same event that ask
the same page (cursor and limit) share one read while it is in flight. That is exact: the
read began after that event was taken, so whatever it cannot show commits later and sets
that event (or a later one, which they take before waiting again); the answer is what the
waiter's own read would have been, its page limit included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

import psycopg

from central import metrics
from central.feed import CHANNEL

POLL_S = 1.0
log = logging.getLogger(__name__)
T = TypeVar("T")


class FeedWaiters:
    """Per-festival wake-up events, set by the listener task, and the reads shared under each."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        # Reads in flight, by the wake-up their waiters hold and what they ask.
        self._reads: dict[tuple[asyncio.Event, Hashable], asyncio.Task[Any]] = {}
        self.listening = asyncio.Event()

    def token(self, festival_id: str) -> asyncio.Event:
        """The event the next change of this festival will set."""
        ev = self._events.get(festival_id)
        if ev is None:
            ev = self._events[festival_id] = asyncio.Event()
        return ev

    def notify(self, festival_id: str) -> None:
        """Wake everyone waiting on this festival; later waiters get a fresh event."""
        ev = self._events.pop(festival_id, None)
        if ev is not None:
            ev.set()

    async def wait(self, token: asyncio.Event, seconds: float) -> None:
        """Wait for a wake-up, at most `seconds` and at most one poll interval."""
        with contextlib.suppress(TimeoutError), metrics.LONGPOLL_WAITERS.track_inprogress():
            async with asyncio.timeout(max(0.0, min(seconds, POLL_S))):
                await token.wait()

    async def shared(
        self, token: asyncio.Event, key: Hashable, read: Callable[[], Awaitable[T]]
    ) -> T:
        """What `read()` returns, read once for every waiter holding `token` that asks `key`
        meanwhile (see the module text): `read` must depend on nothing but the festival,
        `key` and the database. A waiter cancelled while it waits leaves the read to the
        others."""
        at = (token, key)
        task = self._reads.get(at)
        if task is None:
            task = self._reads[at] = asyncio.ensure_future(read())
            task.add_done_callback(lambda done: self._forget(at, done))
        result: T = await asyncio.shield(task)
        return result

    def _forget(self, at: tuple[asyncio.Event, Hashable], done: asyncio.Task[Any]) -> None:
        if self._reads.get(at) is done:
            del self._reads[at]

    async def listen(self, dsn: str) -> None:
        """Run forever: LISTEN and fan out; reconnect with a pause after a failure."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    async for note in conn.notifies():
                        metrics.FEED_NOTIFIES.inc()
                        self.notify(note.payload.partition(":")[0])
            except asyncio.CancelledError:
                raise
            except Exception:  # the database went away: poll until it is back
                log.warning("feed listener lost its connection; retrying", exc_info=True)
            self.listening.clear()
            for ev in list(self._events.values()):  # let waiters re-read now
                ev.set()
            self._events.clear()
            await asyncio.sleep(POLL_S)
