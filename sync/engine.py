"""The device's sync engine: bootstrap, a long-poll pull loop and a push loop, side by side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from sync.catalog import Change
from sync.client import (
    CentralBehind,
    CentralClient,
    CentralError,
    CentralRefused,
    ProtocolMismatch,
)
from sync.hlc import wall_ms_of
from sync.protocol import MAX_BATCH, Event
from sync.snapshot import SnapshotPart

log = logging.getLogger("festgate.sync")
_PRUNE_EVERY_S = 3600.0


class Replica(Protocol):
    """Where catalog changes land (the device's SQLite replica)."""

    @property
    def cursor(self) -> int:
        """Highest change-feed seq applied."""
        ...

    @property
    def history(self) -> str | None:
        """The history of central's that `cursor` belongs to (None: not known)."""
        ...

    async def apply_changes(self, changes: Sequence[Change]) -> int:
        """Apply a page with its cursor in one transaction; return the new cursor."""
        ...

    async def apply_snapshot_parts(
        self, parts: AsyncIterator[SnapshotPart], history: Callable[[], str | None] = ...
    ) -> int:
        """Replace the catalog from a snapshot stream in one transaction, with the stream's
        `history()` (read once the stream has ended) as the cursor's; return rows."""
        ...

    async def adopt_history(self, history: str) -> None:
        """Take `history` as the cursor's, if none is known yet."""
        ...


class Outbox(Protocol):
    """Where events wait for central (the device's journal)."""

    async def pending_batch(self, limit: int) -> list[Event]:
        """Unacknowledged events in device_seq order."""
        ...

    async def pending_count(self) -> int:
        """How many events central does not hold yet."""
        ...

    async def last_seq(self) -> int:
        """The highest device_seq journaled (0 before the first event)."""
        ...

    async def mark_acked(self, through: int, head_seq: int) -> int:
        """Central holds events up to `through`; its feed head was `head_seq`."""
        ...

    async def observe_central(self, central_hlc: int, wall_ms: int) -> None:
        """Central answered with its clock: advance the HLC past it and note the contact."""
        ...

    async def acked_through(self) -> int:
        """The highest device_seq central acknowledged, as remembered here."""
        ...

    async def rewind(self, acked_through: int, head_seq: int) -> int:
        """Central (restored) holds events only up to `acked_through` and its feed only up to
        `head_seq`: make the later ones pending again; return how many."""
        ...

    async def save_status(self, status: dict[str, Any]) -> None:
        """Persist the sync status for `festgate status`."""
        ...

    async def prune(self, older_than_ms: int) -> int:
        """Forget events central holds and reflects, recorded before `older_than_ms`."""
        ...


@dataclass
class SyncStatus:
    """What `festgate status` shows about sync."""

    cursor: int = 0
    head_seq: int = 0
    pending_events: int = 0
    last_success_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None
    clock_offset_ms: int | None = None
    refused: str | None = None  # central's plain refusal (protocol version, revoked device)

    @property
    def lag(self) -> int:
        """Changes central has that this device has not applied."""
        return max(0, self.head_seq - self.cursor)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SyncEngine:
    """Keeps one device's replica and journal in step with central."""

    def __init__(
        self,
        client: CentralClient,
        replica: Replica,
        outbox: Outbox,
        *,
        long_poll_s: float = 25.0,
        push_interval_s: float = 2.0,
        batch: int = 500,
        max_backoff_s: float = 30.0,
        refused_backoff_s: float = 60.0,
        keep_acked_s: float | None = None,
        clock: Callable[[], int] = _wall_ms,
    ) -> None:
        self.client = client
        self.replica = replica
        self.outbox = outbox
        self.long_poll_s = long_poll_s
        self.push_interval_s = push_interval_s
        self.batch = min(batch, MAX_BATCH)
        self.max_backoff_s = max_backoff_s
        self.refused_backoff_s = refused_backoff_s
        # None: acknowledged events are kept for ever. Kept long enough, they are there to
        # send again to a central restored from a backup (`rebase`).
        self.keep_acked_s = keep_acked_s
        self._pruned_at: float | None = None  # monotonic
        self.clock = clock
        self.status = SyncStatus(cursor=replica.cursor)
        # Full jitter: devices that lost central together do not come back in lockstep.
        self._backoff = wait_random_exponential(multiplier=0.2, max=max_backoff_s)
        self.wake_push = asyncio.Event()

    def notify_event(self, _event: Event | None = None) -> None:
        """A new event was journaled: push now rather than on the next timer tick."""
        self.wake_push.set()

    async def _contact(self, central_hlc: int) -> None:
        now = self.clock()
        await self.outbox.observe_central(central_hlc, now)
        # Round-trip time is ignored: milliseconds on a festival LAN, against a bound of minutes.
        self.status.clock_offset_ms = wall_ms_of(central_hlc) - now
        self.status.last_success_ms = now
        self.status.last_error = self.status.refused = None

    async def record_status(self) -> None:
        """Persist the current status where `festgate status` reads it."""
        self.status.cursor = self.replica.cursor
        self.status.pending_events = await self.outbox.pending_count()
        await self.outbox.save_status(asdict(self.status) | {"lag": self.status.lag})

    async def bootstrap(self, progress: Callable[[int], None] | None = None) -> int:
        """Replace the catalog with central's snapshot; return rows applied."""

        stream = self.client.snapshot()

        async def counted() -> AsyncIterator[SnapshotPart]:
            rows = 0
            async for part in stream:
                rows += len(part.rows)
                if progress is not None and part.rows:
                    progress(rows)
                if part.kind == "end":
                    self.status.head_seq = max(self.status.head_seq, part.seq)
                yield part

        rows = await self.replica.apply_snapshot_parts(counted(), lambda: stream.history)
        await self.record_status()
        return rows

    async def pull_once(self, wait_s: float = 0.0) -> int:
        """Fetch and apply one page of changes (waiting up to `wait_s`); return how many."""
        try:
            page, history = await self.client.changes_page(
                self.replica.cursor,
                wait_s=wait_s,
                journal_seq=await self.outbox.last_seq(),
                acked_through=await self.outbox.acked_through(),
                history=self.replica.history,
            )
        except CentralBehind as behind:
            await self.rebase(behind)
            return 0
        if history is not None and self.replica.history is None:
            # A device from before the signal: its cursor is taken on trust, as it was.
            await self.replica.adopt_history(history)
        if page.changes:
            await self.replica.apply_changes(page.changes)
        self.status.head_seq = page.head_seq
        await self._contact(page.central_hlc)
        await self.record_status()
        return len(page.changes)

    async def push_once(self) -> int:
        """Push pending events in batches until none are left; return how many were acked."""
        acked = 0
        while True:
            events = await self.outbox.pending_batch(self.batch)
            if not events:
                break
            # Counted after the batch was read: they cover it, and the seq bounds it.
            pending, last = await self.outbox.pending_count(), await self.outbox.last_seq()
            try:
                answer = await self.client.push(
                    events,
                    pending=pending,
                    journal_seq=last,
                    acked_through=await self.outbox.acked_through(),
                )
            except CentralBehind as behind:
                await self.rebase(behind)
                continue  # the rewound events are pending again: send them now
            acked += await self.outbox.mark_acked(answer.acked_through, answer.head_seq)
            self.status.head_seq = max(self.status.head_seq, answer.head_seq)
            await self._contact(answer.central_hlc)
            if answer.acked_through < events[-1].device_seq:
                # Central holds less than we sent (a hole it is waiting to fill, or it lost
                # data): try again on the next round instead of spinning.
                break
        await self.record_status()
        return acked

    async def rebase(self, behind: CentralBehind) -> None:
        """Central was restored from a backup: make pending again every event it lost that
        this journal still holds (re-sent by the push loop; idempotent by device_seq), and
        reload the catalog from a snapshot when central lost events, this replica is past its
        head or its cursor is from another history (its rows may hold changes central no
        longer has, and miss some it made since)."""
        # Events lost mean central went back in time: feed seqs after its backup were given
        # again to other changes, so a cursor at or below its head is no proof of being in
        # step. A cursor past the head would otherwise wait for ever. Another history says
        # the same of a device that pushed nothing since the backup.
        lost = await self.outbox.acked_through() > behind.acked_through
        mine = self.replica.history
        moved = None not in (behind.history, mine) and behind.history != mine
        reload = lost or moved or self.replica.cursor > behind.head_seq
        resent = await self.outbox.rewind(behind.acked_through, behind.head_seq)
        log.warning(
            "sync: central holds this device's events through %d and its feed through %d"
            " (restored from a backup?): %d events to send again%s%s",
            behind.acked_through, behind.head_seq, resent,
            f"; its history is {behind.history}, this cursor's {mine}" if moved else "",
            "; reloading the catalog" if reload else "",
        )  # fmt: skip
        self.status.head_seq = behind.head_seq
        if reload:
            await self.bootstrap()
        self.wake_push.set()

    async def sync_round(self) -> tuple[int, int]:
        """One full round now: push everything pending, then pull until a page comes back
        empty (that last request also tells central the cursor the device reached, so ops
        do not see it behind by the changes it just applied)."""
        pushed = await self.push_once()
        pulled = 0
        while got := await self.pull_once(0.0):
            pulled += got
        return pushed, pulled

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, CentralRefused):
            return self.refused_backoff_s
        return float(self._backoff(state))

    async def _record_failure(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.status.last_error = str(exc)
        self.status.last_error_ms = self.clock()
        if isinstance(exc, ProtocolMismatch):
            self.status.refused = f"central refuses this device's protocol version: {exc.detail}"
        elif isinstance(exc, CentralRefused):
            self.status.refused = f"central refused: {exc.error} ({exc.detail})"
        if isinstance(exc, CentralError):
            log.warning("sync: %s", self.status.refused or self.status.last_error)
        else:  # a bug or a bad page: keep the device running and say so loudly
            log.error("sync failed unexpectedly", exc_info=exc)
        try:
            await self.record_status()
        except Exception:  # the status is best effort; the loop must go on
            log.exception("could not save sync status")

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            # Any failure, not only central's: a sync bug must never stop the device deciding.
            retry=retry_if_exception_type(Exception),
            wait=self._wait,
            before_sleep=self._record_failure,
            reraise=True,
        )

    async def pull_loop(self) -> None:
        """Long-poll the change feed forever, backing off while central is unreachable."""
        while True:
            async for attempt in self._retrying():
                with attempt:
                    await self.pull_once(self.long_poll_s)

    async def push_loop(self) -> None:
        """Push on every new event, and on a timer for retries, forever."""
        while True:
            async for attempt in self._retrying():
                with attempt:
                    await self.push_once()
            await self.prune_acked()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
            # lands as the event fires (a scan just before shutdown), and the loop never ends.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.push_interval_s):
                    await self.wake_push.wait()
            self.wake_push.clear()

    async def prune_acked(self) -> None:
        """Forget acknowledged, reflected events older than `keep_acked_s` (hourly at most:
        the delete reads the journal, on the writer that scans also wait for)."""
        if self.keep_acked_s is None:
            return
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        await self.outbox.prune(self.clock() - int(self.keep_acked_s * 1000))

    async def run(self) -> None:
        """Both loops side by side: downloads keep flowing while uploads are pending."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.pull_loop(), name="sync-pull")
            group.create_task(self.push_loop(), name="sync-push")
