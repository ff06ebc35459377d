"""The event journal: every verdict appended and committed before it is shown."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiosqlite

from edge.clock import CentralContact, DeviceClock
from sync.facts import spends_sql
from sync.hlc import MAX_WALL_MS, HybridClock, wall_ms_of
from sync.ids import uuid7_text
from sync.protocol import Event
from sync.trusted import trusted
from sync.vocab import EventKind

# Run inside the catalog-apply transaction when the cursor moves to :cursor: events central
# acknowledged at a feed head we have now applied are part of central's rows, so they stop
# counting as pending here.
# Each pending scope, the journal column it is keyed by and an event's part in it (what the
# journal's insert triggers add, `edge.schema`).
_EFFECTS = (
    ("zone", "zone_id", "j.delta"),
    ("account", "account_id", "j.delta"),
    ("spent", "account_id", f"CASE WHEN {spends_sql('j.kind')} THEN -j.delta END"),
)
REFLECT_SQL: tuple[str, ...] = (
    *(
        f"""
    UPDATE pending SET delta = delta - (
        SELECT coalesce(sum({expr}), 0) FROM journal j
         WHERE j.reflected = 0 AND j.acked = 1 AND j.ack_seq <= :cursor AND j.{col} = pending.ref)
     WHERE scope = '{scope}'
    """
        for scope, col, expr in _EFFECTS
    ),
    "UPDATE journal SET reflected = 1 WHERE reflected = 0 AND acked = 1 AND ack_seq <= :cursor",
    "DELETE FROM pending WHERE delta = 0",
)

# Central was restored from a backup (`sync.protocol.CentralBehindBody`): events after
# :acked are pending again (their effects count here again if central's rows had shown
# them), and those it still holds are reflected once the cursor reaches its head :head.
_REWIND_EFFECTS = tuple(
    f"""
    INSERT INTO pending
    SELECT '{scope}', j.{col}, sum({expr}) FROM journal j
     WHERE j.device_seq > :acked AND j.reflected = 1 AND j.{col} IS NOT NULL
     GROUP BY j.{col} HAVING coalesce(sum({expr}), 0) != 0
    ON CONFLICT (scope, ref) DO UPDATE SET delta = delta + excluded.delta
    """
    for scope, col, expr in _EFFECTS
)
_UNACK = (
    "UPDATE journal SET acked = 0, ack_seq = NULL, reflected = 0"
    " WHERE device_seq > :acked AND acked = 1"
)
_REWIND_AFTER = (
    "UPDATE journal SET ack_seq = :head WHERE acked = 1 AND reflected = 0 AND ack_seq > :head",
    "DELETE FROM pending WHERE delta = 0",
)

_INSERT = """
INSERT INTO journal (device_seq, event_id, kind, verdict, hlc, wall_ms, catalog_seq, payload,
                     ticket_id, zone_id, account_id, delta)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_COLUMNS = "device_seq, event_id, kind, verdict, hlc, wall_ms, catalog_seq, payload"
# json.dumps with options builds an encoder per call; a verdict's append reuses this one.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class JournalStats:
    """Counts for `status`."""

    events: int
    pending: int
    last_seq: int


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class Journal:
    """Appends events with a gap-free device_seq and an HLC; gives sync its batches."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        device_id: str,
        last_seq: int,
        last_hlc: int,
        inline: sqlite3.Connection | None = None,
        write_lock: asyncio.Lock | None = None,
        time: DeviceClock | None = None,
    ):
        self.conn = conn
        # The store's lock over multi-statement writer transactions (see Store.write_lock).
        self.write_lock = write_lock or asyncio.Lock()
        # A second connection to the same file, used on the caller's thread with no busy wait
        # (busy_timeout 0): an append commits inline when no other write holds the lock.
        # The insert and its fsync cost less than the two thread wakeups of a trip through
        # the aiosqlite writer; while the writer holds the lock (a catalog page, an ack), the
        # append queues behind it on the writer instead of waiting on the event loop.
        self.inline = inline
        self.device_id = device_id
        self.hlc = HybridClock(last_hlc)
        # Central's time as last learned bounds the HLC (see `sync.hlc`); the contact is kept
        # in sync_state with the HLC, so a restart on the same boot still has it.
        self.time = time or DeviceClock()
        self._last_seq = last_seq  # advanced only once a row commits: a failure leaves no gap
        self._pending: asyncio.Future[Any] | None = None
        # Called with each event right after its commit (the sync engine pushes at once).
        self.listeners: list[Callable[[Event], None]] = []

    @classmethod
    async def open(
        cls,
        conn: aiosqlite.Connection,
        device_id: str,
        inline: sqlite3.Connection | None = None,
        write_lock: asyncio.Lock | None = None,
        time: DeviceClock | None = None,
    ) -> Journal:
        """Resume after the last committed event, with the HLC and central's last contact."""
        rows = list(await conn.execute_fetchall("SELECT max(device_seq), max(hlc) FROM journal"))
        state = {
            str(key): str(value)
            for key, value in await conn.execute_fetchall(
                "SELECT key, value FROM sync_state WHERE key IN ('hlc', 'central_contact')"
            )
        }
        last_hlc = max(int(rows[0][1] or 0), int(state.get("hlc") or 0))
        time = time or DeviceClock()
        time.last_contact = CentralContact.from_json(state.get("central_contact"))
        return cls(conn, device_id, int(rows[0][0] or 0), last_hlc, inline, write_lock, time)

    async def _insert(self, seq: int, params: tuple[Any, ...]) -> None:
        """Commit one row and advance the last seq: inline, or through the writer when busy."""
        if self.inline is not None:
            try:
                self.inline.execute(_INSERT, params)
                self._last_seq = seq
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
        async with self.write_lock:
            # Once queued, the writer commits the row even if this task is cancelled (a log
            # line's append at shutdown): the seq must advance when it does, or the next
            # append would reuse it. The next append waits for it (`_pending`).
            op = asyncio.ensure_future(self._write(params))
            op.add_done_callback(lambda done: self._settle(seq, done))
            self._pending = op
            await asyncio.shield(op)
            self._last_seq = seq

    async def _write(self, params: tuple[Any, ...]) -> None:
        await self.conn.execute(_INSERT, params)

    def _settle(self, seq: int, op: asyncio.Future[Any]) -> None:
        if self._pending is op:
            self._pending = None
        if not op.cancelled() and op.exception() is None:
            self._last_seq = max(self._last_seq, seq)

    @property
    def last_seq(self) -> int:
        """device_seq of the last committed event."""
        return self._last_seq

    async def append(
        self,
        kind: EventKind,
        verdict: str,
        payload: dict[str, Any],
        *,
        wall_ms: int,
        catalog_seq: int,
        ticket_id: str | None = None,
        zone_id: str | None = None,
        account_id: str | None = None,
        delta: int = 0,
    ) -> Event:
        """Commit one event (one synced transaction) and return it. Callers serialise appends."""
        if self._pending is not None:  # a cancelled append's row is still on the writer
            await asyncio.wait([self._pending])
        seq = self._last_seq + 1
        wall_ms = min(max(wall_ms, 0), MAX_WALL_MS)  # what the wire and an HLC can carry
        hlc = self.hlc.now(wall_ms, self.time.central_ms())
        event_id = uuid7_text(wall_ms)
        await self._insert(
            seq,
            (
                seq,
                event_id,
                kind.value,
                verdict,
                hlc,
                wall_ms,
                catalog_seq,
                _COMPACT.encode(payload),
                ticket_id,
                zone_id,
                account_id,
                delta,
            ),
        )
        # Every field was made just above: construct without re-validating (hot path).
        event = trusted(
            Event,
            {"event_id": event_id, "device_id": self.device_id, "device_seq": seq, "hlc": hlc,
             "wall_ms": wall_ms, "catalog_seq": catalog_seq, "kind": kind, "verdict": verdict,
             "payload": payload},
        )  # fmt: skip
        for listener in self.listeners:
            listener(event)
        return event

    async def pending_batch(self, limit: int) -> list[Event]:
        """Unacknowledged events in device_seq order, at most `limit`."""
        rows = await self.conn.execute_fetchall(
            f"SELECT {_COLUMNS} FROM journal WHERE acked = 0 ORDER BY device_seq LIMIT ?", (limit,)
        )
        return [
            Event(
                device_seq=r[0],
                event_id=r[1],
                kind=EventKind(r[2]),
                verdict=r[3],
                hlc=r[4],
                wall_ms=r[5],
                catalog_seq=r[6],
                payload=json.loads(r[7]),
                device_id=self.device_id,
            )
            for r in rows
        ]

    async def mark_acked(self, through: int, head_seq: int) -> int:
        """Central holds every event up to `through`; its feed head then was `head_seq`."""
        cur = await self.conn.execute(
            "UPDATE journal SET acked = 1, ack_seq = ? WHERE acked = 0 AND device_seq <= ?",
            (head_seq, through),
        )
        return cur.rowcount

    async def acked_through(self) -> int:
        """The highest device_seq central acknowledged (0 before the first)."""
        rows = list(
            await self.conn.execute_fetchall(
                # Backwards from the newest: only the unacknowledged tail is read.
                "SELECT device_seq FROM journal WHERE acked = 1 ORDER BY device_seq DESC LIMIT 1"
            )
        )
        return int(rows[0][0]) if rows else 0

    async def rewind(self, acked_through: int, head_seq: int) -> int:
        """Central holds this device's events only through `acked_through` and its feed only
        through `head_seq` (restored from a backup): events after it are pending again, in
        one transaction; returns how many. Events already pruned are not here to re-send:
        `keep_acked_hours` must cover the age of the backups a restore may use."""
        params = {"acked": acked_through, "head": head_seq}
        async with self.write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                for sql in _REWIND_EFFECTS:  # before _UNACK: it reads the reflected flags
                    await self.conn.execute(sql, params)
                count = (await self.conn.execute(_UNACK, params)).rowcount
                for sql in _REWIND_AFTER:
                    await self.conn.execute(sql, params)
                await self.conn.execute("COMMIT")
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
        return count

    async def observe_central(self, central_hlc: int, wall_ms: int) -> None:
        """Central answered: advance the HLC past its clock, note the contact on the monotonic
        clock, and persist both, so they survive a restart."""
        hlc = self.hlc.observe(central_hlc, wall_ms)
        contact = self.time.record_contact(wall_ms_of(central_hlc))
        await self.conn.execute(
            "INSERT INTO sync_state VALUES ('hlc', ?), ('central_contact', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(hlc), contact.to_json()),
        )

    async def prune(self, older_than_ms: int) -> int:
        """Delete events central holds and reflects, recorded before `older_than_ms`."""
        cur = await self.conn.execute(
            "DELETE FROM journal WHERE acked = 1 AND reflected = 1 AND wall_ms < ? "
            "AND device_seq < (SELECT max(device_seq) FROM journal)",  # keep seq continuity
            (older_than_ms,),
        )
        return cur.rowcount

    async def pending_count(self) -> int:
        """Events central does not hold yet."""
        rows = list(
            await self.conn.execute_fetchall("SELECT count(*) FROM journal WHERE acked = 0")
        )
        return int(rows[0][0])

    async def stats(self) -> JournalStats:
        """Events held, events not yet acknowledged, last device_seq."""
        rows = list(
            await self.conn.execute_fetchall(
                "SELECT count(*), coalesce(sum(acked = 0), 0) FROM journal"
            )
        )
        return JournalStats(int(rows[0][0]), int(rows[0][1]), self._last_seq)
