"""Turns: in-process FIFO queues per key, so waiting for a festival's ingest lock costs no
pooled database connection.

Pushes of one festival that apply presence or balances go one at a time through the
festival's advisory ingest lock (`central.ingest`). Before turns, every such push took a
pooled connection first and then waited on the lock inside PostgreSQL: 200 devices back at
once held the whole pool while they queued, and every other request (a device's token
check, a long-poll, ops) waited for a connection until the pool's timeout, then got ``503
busy``. A push now queues here, holding nothing but its request, and takes a connection
only when its turn comes; the advisory lock still orders pushes across central's processes.

A key admits `depth` holders at once (two by default): one applies under the advisory lock
while the next stores its batch and then waits on the lock, the overlap ingest had before
(a batch stores before it takes the lock), and within one process at most one connection
per key waits on the lock. The others wait in arrival order, which is fair: a device's
small push waits behind the pushes that came before it, never behind later ones.

A waiter that leaves (cancelled, or its deadline passed) leaves the queue, and a turn
granted to it as it left goes to the next in line: a turn is never lost.
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

DEPTH = 2  # holders per key at once (see the module text)


class TurnTimeout(PoolTimeout):
    """No turn came within the wait's bound: central is as busy as when no pooled connection
    comes free, and answers as then (``503 busy`` with Retry-After, `central.api.errors`)."""


class TurnLeft(Exception):
    """The waiter's `gone` completed first (its client left): it holds no turn."""


@dataclass
class _Queue:
    """One key's holders and, in arrival order, its waiters (each granted by its future)."""

    holders: int = 0
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class Turns:
    """Per-key FIFO queues admitting `depth` holders at once (see the module text)."""

    def __init__(self, depth: int = DEPTH) -> None:
        if depth < 1:
            raise ValueError("a turn admits at least one holder")
        self.depth = depth
        self._queues: dict[int, _Queue] = {}

    def waiting(self, key: int) -> int:
        """How many wait for a turn of `key` (not counting its holders)."""
        queue = self._queues.get(key)
        return 0 if queue is None else len(queue.waiting)

    def holding(self, key: int) -> int:
        """How many hold a turn of `key` now."""
        queue = self._queues.get(key)
        return 0 if queue is None else queue.holders

    @asynccontextmanager
    async def hold(
        self, keys: Sequence[int], timeout_s: float, *, gone: asyncio.Future[Any] | None = None
    ) -> AsyncIterator[None]:
        """Hold a turn of each key (taken in the order given) for the block.

        Waits at most `timeout_s` for them all (else `TurnTimeout`), and no longer than
        `gone` takes to complete (else `TurnLeft`); either way, or cancelled, it holds none.
        """
        deadline = asyncio.get_running_loop().time() + timeout_s
        taken: list[int] = []
        try:
            for key in keys:
                await self._take(key, deadline, gone)
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

    async def _take(self, key: int, deadline: float, gone: asyncio.Future[Any] | None) -> None:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        if queue.holders < self.depth and not queue.waiting:
            queue.holders += 1
            return
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()
        queue.waiting.append(granted)
        ends = {granted} if gone is None else {granted, gone}
        try:
            # `asyncio.wait` cancels nothing: whatever ended the wait, the outcome is read
            # from `granted` after it, with no await in between.
            await asyncio.wait(ends, timeout=deadline - loop.time(), return_when=FIRST_COMPLETED)
        except BaseException:  # cancelled
            self._leave(key, queue, granted)
            raise
        if granted.done() and (gone is None or not gone.done()):
            return
        self._leave(key, queue, granted)
        if gone is not None and gone.done():
            raise TurnLeft("the waiter left before its turn")
        raise TimeoutError

    def _leave(self, key: int, queue: _Queue, granted: asyncio.Future[None]) -> None:
        if granted.done() and not granted.cancelled():
            self._give(key)  # granted as it left: the turn goes on to the next in line
        else:
            granted.cancel()
            queue.waiting.remove(granted)
            self._drop_if_idle(key, queue)

    def _give(self, key: int) -> None:
        queue = self._queues[key]
        while queue.waiting:
            nxt = queue.waiting.popleft()
            if not nxt.done():
                nxt.set_result(None)  # the holder's place passes to it: holders unchanged
                return
        queue.holders -= 1
        self._drop_if_idle(key, queue)

    def _drop_if_idle(self, key: int, queue: _Queue) -> None:
        if not queue.holders and not queue.waiting and self._queues.get(key) is queue:
            del self._queues[key]
