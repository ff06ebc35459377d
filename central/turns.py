"""Turns: in-process queues per key, so waiting for a festival's ingest lock costs no
pooled database connection.

Pushes of one festival that apply presence or balances go one at a time through the
festival's advisory ingest lock (`central.ingest`). Before turns, every such push took a
pooled connection first and then waited on the lock inside PostgreSQL: 200 devices back at
once held the whole pool while they queued, and every other request (a device's token
check, a long-poll, ops) waited for a connection, up to the pool's timeout and then ``503
busy``. A push now queues here, holding nothing but its request, and takes a connection
only when its turn comes; the advisory lock still orders pushes across central's processes.

A key admits `depth` holders at once (three by default): one applies under the advisory
lock while the next ones store their batches and then wait on the lock, the overlap
ingest had before (a batch stores before it takes the lock). A batch of 500 events takes
about as long to store as to apply, so with two holders the lock idled between batches
(drain bench, 200 devices x 1,000 events, two runs each: 158-180 s with two, 142-151 s
with three, 137-146 s before turns). Within one process at most two connections per key
wait on the lock, however many pushes queue.

Fairness: waiters queue in two lanes, small pushes (a device keeping up sends what it
scanned since its last push) and large ones (a device catching up on a backlog), each in
arrival order. While both lanes wait, turns alternate between them: a live gate's push
of a few entries waits for at most a couple of backlog batches, not for every device that
came back before it (drain bench, 200 devices back at once: live pushes' p99 was the whole
drain), and a backlog push is overtaken by at most one small push per turn it waits.

A waiter that leaves (cancelled, its client gone, or its deadline passed) leaves its
lane, and a turn granted to it as it left goes on to the next: a turn is never lost.
"""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import PoolTimeout

DEPTH = 3  # holders per key at once (see the module text)
SMALL, LARGE = 0, 1  # the lanes


class TurnTimeout(PoolTimeout):
    """No turn came within the wait's bound: central is as busy as when no pooled connection
    comes free, and answers as then (``503 busy`` with Retry-After, `central.api.errors`)."""


class TurnLeft(Exception):
    """The waiter's `gone` completed first (its client left): it holds no turn."""


@dataclass
class _Queue:
    """One key's holders and its waiters by lane, each in arrival order (each waiter is
    granted through its future)."""

    holders: int = 0
    lanes: tuple[deque[asyncio.Future[None]], ...] = field(
        default_factory=lambda: (deque(), deque())
    )
    last: int = LARGE  # the lane granted last: the other goes first

    def idle(self) -> bool:
        return not self.holders and not any(self.lanes)

    def next_waiter(self) -> asyncio.Future[None] | None:
        """Take the next waiter still waiting, from the lane not granted last if it has one."""
        for lane in (1 - self.last, self.last):
            waiting = self.lanes[lane]
            while waiting:
                nxt = waiting.popleft()
                if not nxt.done():
                    self.last = lane
                    return nxt
        return None


class Turns:
    """Per-key queues admitting `depth` holders at once (see the module text)."""

    def __init__(self, depth: int = DEPTH) -> None:
        if depth < 1:
            raise ValueError("a turn admits at least one holder")
        self.depth = depth
        self._queues: dict[int, _Queue] = {}

    def waiting(self, key: int) -> int:
        """How many wait for a turn of `key` (not counting its holders)."""
        queue = self._queues.get(key)
        return 0 if queue is None else sum(map(len, queue.lanes))

    def holding(self, key: int) -> int:
        """How many hold a turn of `key` now."""
        queue = self._queues.get(key)
        return 0 if queue is None else queue.holders

    @asynccontextmanager
    async def hold(
        self,
        keys: Sequence[int],
        timeout_s: float,
        *,
        small: bool = False,
        gone: asyncio.Future[Any] | None = None,
    ) -> AsyncIterator[None]:
        """Hold a turn of each key (taken in the order given) for the block, queued in the
        small lane or the large one.

        Waits at most `timeout_s` for them all (else `TurnTimeout`), and no longer than
        `gone` takes to complete (else `TurnLeft`); either way, or cancelled, it holds none.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        lane = SMALL if small else LARGE
        taken: list[int] = []
        try:
            for key in keys:
                await self._take(key, lane, deadline, gone)
                taken.append(key)
        except TimeoutError:
            raise TurnTimeout(f"no ingest turn within {timeout_s:g} s") from None
        finally:
            if len(taken) < len(keys):  # left the queue: give back what it had
                for key in reversed(taken):
                    self._give(key)
        try:
            yield
        finally:
            for key in reversed(taken):
                self._give(key)

    async def _take(
        self, key: int, lane: int, deadline: float, gone: asyncio.Future[Any] | None
    ) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        if queue.holders < self.depth and not any(queue.lanes):
            queue.holders += 1
            return
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        queue.lanes[lane].append(granted)
        ends = {granted} if gone is None else {granted, gone}
        try:
            # `asyncio.wait` cancels nothing: whatever ended the wait, the outcome is read
            # from `granted` after it, with no await in between.
            await asyncio.wait(ends, timeout=deadline - loop.time(), return_when=FIRST_COMPLETED)
        except BaseException:  # cancelled
            self._leave(key, queue, lane, granted)
            raise
        if granted.done() and (gone is None or not gone.done()):
            return
        self._leave(key, queue, lane, granted)
        if gone is not None and gone.done():
            raise TurnLeft("the waiter left before its turn")
        raise TimeoutError

    def _leave(self, key: int, queue: _Queue, lane: int, granted: asyncio.Future[None]) -> None:
        if granted.done() and not granted.cancelled():
            self._give(key)  # granted as it left: the turn goes on to the next in line
        else:
            granted.cancel()
            queue.lanes[lane].remove(granted)
            self._drop_if_idle(key, queue)

    def _give(self, key: int) -> None:
        queue = self._queues[key]
        nxt = queue.next_waiter()
        if nxt is not None:
            nxt.set_result(None)  # the holder's place passes to it: holders unchanged
            return
        queue.holders -= 1
        self._drop_if_idle(key, queue)

    def _drop_if_idle(self, key: int, queue: _Queue) -> None:
        if queue.idle() and self._queues.get(key) is queue:
            del self._queues[key]
