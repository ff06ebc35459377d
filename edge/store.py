"""The device's local replica: one aiosqlite writer connection, WAL, catalog apply and lookups."""

from __future__ import annotations

import asyncio
import logging
import shlex
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import aiosqlite

from edge import datadir, journal
from edge.bulkload import after_load, replace_catalog
from edge.decide import BadInput, Movement, Presence, merge_presence
from edge.replica import SPECS, validate_rows
from edge.schema import migrate
from sync.catalog import (
    AccountRow,
    CategoryRow,
    Change,
    FestivalRow,
    ProductRow,
    SigningKeyRow,
    Snapshot,
    TicketRow,
    VendorRow,
    ZoneRow,
)
from sync.facts import FACTS, GATE_ADMITTING, sql_in
from sync.hlc import fact_order
from sync.snapshot import SnapshotPart
from sync.trusted import trusted
from sync.vocab import TicketStatus

DB_NAME = "replica.sqlite3"
log = logging.getLogger(__name__)
_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default
_SMALL_TABLES = ("festival", "signing_key", "zone", "vendor", "product", "category")
_SET_STATE = (
    "INSERT INTO sync_state VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


def _pragmas(conn: sqlite3.Connection) -> None:
    # WAL lets readers (status, sync) run beside the writer; FULL syncs the WAL on every
    # commit, so a verdict shown after commit survives a power cut.
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")


def _checkpoint(path: Path) -> None:
    # Its own short-lived connection: the writer and the event loop go on meanwhile (a
    # PASSIVE checkpoint runs beside readers and writers of a WAL database).
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    finally:
        conn.close()


def _open_and_migrate(data_dir: Path) -> Path:
    path = datadir.prepare(data_dir, DB_NAME)  # created private, or refused when not private
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _pragmas(conn)
        migrate(conn)
    finally:
        conn.close()
    return path


class NoDevice(BadInput):
    """A command that uses a device found none where it was pointed; nothing was created."""

    def __init__(self, data_dir: Path, why: str, config: Path | None = None) -> None:
        where = "" if data_dir.is_absolute() else f" ({data_dir.absolute()})"
        target = f"-c {shlex.quote(str(config))}" if config else f"-d {shlex.quote(str(data_dir))}"
        super().__init__(
            "no_data_dir",
            f"no device at {data_dir}{where}: {why}; check the path, or set a device up there "
            f"with `festgate catalog load FILE {target}` or `festgate init ... -d {data_dir}`",
        )
        self.data_dir = data_dir


def require_device(data_dir: Path, *, config: Path | None = None) -> None:
    """Raise NoDevice unless `data_dir` holds a device (its replica, or the credentials of an
    enrolment whose snapshot never came). Only `init` and `catalog load` create a device;
    every other command checks here first, so a mistyped `-d` creates nothing. A directory
    that exists is checked for privacy first (`edge.datadir`), as an open would. `config`:
    the config file that names `data_dir`, for the advice."""
    if not data_dir.is_dir():
        raise NoDevice(data_dir, "no such directory", config)
    datadir.check_private(data_dir, DB_NAME)
    if not any((data_dir / name).is_file() for name in (DB_NAME, datadir.CREDENTIALS)):
        raise NoDevice(data_dir, f"the directory holds no {DB_NAME}", config)


@dataclass(frozen=True, slots=True)
class GateLookup:
    """What the replica and this device's journal know about one ticket in one zone."""

    ticket: TicketRow | None
    category: CategoryRow | None
    blocked: bool
    presence: Presence
    pending_occupancy: int


@dataclass(frozen=True, slots=True)
class BarLookup:
    """What the replica and this device's journal know about one wristband."""

    account: AccountRow | None
    tag_blocked: bool
    pending: int
    offline_spent: int


@dataclass
class Catalog:
    """The small replicated tables, held in memory and reloaded whenever the catalog changes."""

    festival: FestivalRow | None
    keys: dict[int, SigningKeyRow]
    zones: dict[str, ZoneRow]
    vendors: dict[str, VendorRow]
    products: dict[str, ProductRow]
    categories: dict[str, CategoryRow]

    def find_zone(self, ref: str) -> ZoneRow | None:
        """A zone by id, or by name ignoring case (site techs type names)."""
        return self.zones.get(ref) or next(
            (z for z in self.zones.values() if z.name.casefold() == ref.casefold()), None
        )

    def find_vendor(self, ref: str) -> VendorRow | None:
        """A vendor by id, or by name ignoring case."""
        return self.vendors.get(ref) or next(
            (v for v in self.vendors.values() if v.name.casefold() == ref.casefold()), None
        )


# One query per scan: the ticket (by id or by keyed hash), its category, block-list entry,
# central's presence and this device's last admitted movement in the zone (its verdict test
# is the `journal_ticket` index's, so that index serves it: `edge.schema.FACT_FRAGMENTS`).
_GATE_SQL = f"""
WITH k(id) AS ({{anchor}})
SELECT k.id, t.seq, t.festival_id, t.category_id, t.status, t.code_hash, t.code_version,
       t.suspicious,
       EXISTS (SELECT 1 FROM block b WHERE b.kind = 'ticket' AND b.ref = k.id),
       p.inside, p.hlc, p.device_id, p.device_seq,
       (SELECT j.kind || ':' || j.hlc || ':' || j.device_seq FROM journal j
         WHERE j.ticket_id = k.id AND j.zone_id = :zone
           AND {sql_in("j.verdict", GATE_ADMITTING)}
         ORDER BY j.device_seq DESC LIMIT 1),
       (SELECT delta FROM pending WHERE scope = 'zone' AND ref = :zone)
FROM k
LEFT JOIN ticket t ON t.id = k.id
LEFT JOIN presence p ON p.ticket_id = k.id AND p.zone_id = :zone
"""
_GATE_BY_ID = _GATE_SQL.format(anchor="SELECT :ticket_id")
_GATE_BY_HASH = _GATE_SQL.format(anchor="SELECT id FROM ticket WHERE code_hash = :code_hash")
_BAR_SQL = """
SELECT a.seq, a.id, a.festival_id, a.tag_hash, a.balance, a.blocked,
       EXISTS (SELECT 1 FROM block b WHERE b.kind = 'tag' AND b.ref = :tag_hash),
       (SELECT delta FROM pending WHERE scope = 'account' AND ref = a.id),
       (SELECT delta FROM pending WHERE scope = 'spent' AND ref = a.id)
FROM (SELECT :tag_hash AS h) q LEFT JOIN account a ON a.tag_hash = q.h
"""


# Sorts after every device id (uuid text, or "local-..." before enrolment).
_AFTER_EVERY_ID = "~"


def _presence(
    central: tuple[int, int, str | None, int | None] | None, local: str | None, device_id: str
) -> Presence:
    """Merge central's presence row (inside, hlc, device, seq) and this device's last
    movement ("kind:hlc:seq" from its journal) by the one order of facts."""
    movements: list[Movement] = []
    if central is not None:
        inside, hlc, by, seq = central
        # A row without its device (an older central) wins a tie, as it always did.
        place = fact_order(hlc, by, seq or 0) if by is not None else (hlc, _AFTER_EVERY_ID, 0)
        movements.append(Movement(place, bool(inside)))
    if local is not None:
        kind, at, nth = local.split(":")
        place = fact_order(int(at), device_id, int(nth))
        movements.append(Movement(place, bool(FACTS[kind].inside)))
    return merge_presence(*movements)


class Store:
    """The replica and journal file of one device; all writes go through this one connection."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        # A decision's path, run inline on the event loop (no thread hop): its lookup, an
        # indexed point read of tens of microseconds, and its journal append (see Journal).
        # One connection for both, because a commit by another connection empties a
        # connection's page cache, and its own commits do not. Same durability as the
        # writer; busy_timeout 0 so a held write lock sends the append to the writer instead
        # of blocking the loop. Everything else writes through the one writer (`conn`).
        self.inline = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        _pragmas(self.inline)
        self.inline.execute("PRAGMA busy_timeout = 0")
        self.catalog = Catalog(None, {}, {}, {}, {}, {})
        self._cursor = 0
        self._history: str | None = None
        # Held across every multi-statement transaction on the writer: a statement queued on
        # the writer meanwhile (a journal append) would join that transaction, be reported
        # committed before it is, and roll back with it.
        self.write_lock = asyncio.Lock()
        self._housekeeping: asyncio.Task[None] | None = None  # a checkpoint after a bulk load

    @classmethod
    async def open(cls, data_dir: Path) -> Store:
        """Open (creating and migrating) the replica in `data_dir`; every entry point (CLI,
        daemon, enrolment) comes through here, so here a data dir that is not private to
        this user is refused (`edge.datadir.DataDirNotPrivate`, a config error)."""
        path = await asyncio.to_thread(_open_and_migrate, data_dir)
        # isolation_level=None: a lone INSERT is its own transaction, committed (and synced)
        # before the call returns; multi-statement writes use explicit BEGIN IMMEDIATE.
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA synchronous = FULL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA busy_timeout = 5000")
        store = cls(conn, path)
        await store._reload()
        return store

    async def close(self) -> None:
        """Close the connections (the WAL is checkpointed by SQLite)."""
        try:
            if self._housekeeping is not None:
                await self._housekeeping
            self.inline.close()
        finally:
            # Always: the writer's thread is not a daemon thread, and an open one keeps the
            # process from exiting.
            await self.conn.close()

    @property
    def cursor(self) -> int:
        """Highest change-feed seq applied; recorded on every event as `catalog_seq`."""
        return self._cursor

    @property
    def history(self) -> str | None:
        """The history of central's that `cursor` belongs to (`sync.protocol.HISTORY_HEADER`);
        None when not known (a replica from before it, or loaded from a file)."""
        return self._history

    async def adopt_history(self, history: str) -> None:
        """Take `history` as the cursor's, if none is known yet."""
        async with self.write_lock:  # a lone statement, never inside another's transaction
            await self.conn.execute(
                "INSERT INTO sync_state VALUES ('history', ?) ON CONFLICT (key) DO NOTHING",
                (history,),
            )
        self._history = await self.get_state("history")

    async def _reload(self) -> None:
        rows: dict[str, list[Any]] = {}
        for name in _SMALL_TABLES:
            spec = SPECS[name]
            rows[name] = [spec.load(r) for r in await self.conn.execute_fetchall(spec.select_sql)]
        self.catalog = Catalog(
            festival=rows["festival"][0] if rows["festival"] else None,
            keys={r.key_id: r for r in rows["signing_key"]},
            zones={r.id: r for r in rows["zone"]},
            vendors={r.id: r for r in rows["vendor"]},
            products={r.id: r for r in rows["product"]},
            categories={r.id: r for r in rows["category"]},
        )
        self._cursor = int(await self.get_state("cursor") or 0)
        self._history = await self.get_state("history")

    async def get_state(self, key: str) -> str | None:
        """A sync_state value."""
        rows = list(
            await self.conn.execute_fetchall("SELECT value FROM sync_state WHERE key = ?", (key,))
        )
        return str(rows[0][0]) if rows else None

    async def set_state(self, key: str, value: str) -> None:
        """Set a sync_state value (its own transaction)."""
        await self.conn.execute(_SET_STATE, (key, value))

    async def apply_snapshot(self, snapshot: Snapshot) -> int:
        """Replace the whole catalog with a snapshot file's contents; returns rows applied."""

        async def parts() -> AsyncIterator[SnapshotPart]:
            # The same path as a bootstrap from central: one transaction, same checks.
            yield SnapshotPart("header", seq=snapshot.seq, festival_id=snapshot.festival_id)
            for table, rows in snapshot.tables.items():
                if rows:
                    yield SnapshotPart("rows", table=table, rows=rows)
            yield SnapshotPart("end", seq=snapshot.seq)

        return await self.apply_snapshot_parts(parts())

    async def apply_snapshot_parts(
        self, parts: AsyncIterator[SnapshotPart], history: Callable[[], str | None] = lambda: None
    ) -> int:
        """Replace the catalog from a snapshot stream in one transaction, the cursor's history
        with `history()` (the stream's, read once it has ended); returns rows applied."""
        async with self.write_lock:  # scans meanwhile wait, they never join the load
            return await self._load_snapshot(parts, history)

    async def _load_snapshot(
        self, parts: AsyncIterator[SnapshotPart], history: Callable[[], str | None]
    ) -> int:
        """Replace the catalog from a snapshot stream in one transaction; returns rows applied.

        Nothing is visible until the end line arrives: a cut stream rolls back whole, and a
        crash mid-stream leaves the previous catalog and cursor in place. The rows go in by
        `edge.bulkload.replace_catalog`, inside that one transaction; the commit syncs as
        always (synchronous=FULL).
        """
        if self._housekeeping is not None:
            await self._housekeeping
        # The commit leaves the whole catalog in the WAL; copying it into the database file
        # (over a second at a million rows) is left to a background checkpoint, so the
        # device is ready as soon as the load is durable. Until then no commit checkpoints.
        self._autocheckpoint(0)
        await self.conn.execute_fetchall("PRAGMA wal_autocheckpoint = 0")
        loaded = False
        try:
            # In the try: a cancel while BEGIN runs on the thread still rolls it back.
            await self.conn.execute("BEGIN IMMEDIATE")
            count, seq = await replace_catalog(self.conn, parts)
            await self._set_cursor(seq)
            await self._set_history(history())
            await self.conn.execute("COMMIT")
            loaded = True
        except sqlite3.IntegrityError as exc:
            await self._rollback()
            raise ValueError(f"snapshot repeats a key: {exc}") from None
        except BaseException:
            await self._rollback()
            raise
        finally:
            await after_load(self.conn)
            if not loaded:
                await self._resume_autocheckpoint()
        self._housekeeping = asyncio.create_task(self._checkpoint_in_background())
        await self._reload()
        return count

    def _autocheckpoint(self, pages: int) -> None:
        # This pragma answers a row: fetched, so no statement stays active on the connection.
        self.inline.execute(f"PRAGMA wal_autocheckpoint = {pages}").fetchall()

    async def _resume_autocheckpoint(self) -> None:
        self._autocheckpoint(_AUTOCHECKPOINT_PAGES)
        await self.conn.execute_fetchall(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_PAGES}")

    async def _checkpoint_in_background(self) -> None:
        try:
            await asyncio.to_thread(_checkpoint, self.path)
        except sqlite3.Error as exc:  # harmless: the next commits checkpoint instead
            log.warning("checkpoint after bulk load failed: %s", exc)
        finally:
            await self._resume_autocheckpoint()

    async def apply_changes(self, changes: Iterable[Change]) -> int:
        """Apply a page of the change feed in one transaction with the new cursor; returns it.

        Changes at or below the cursor are skipped, so replaying a page is harmless.
        """
        todo = sorted((c for c in changes if c.seq > self._cursor), key=lambda c: c.seq)
        if not todo:
            return self._cursor
        # Validate the whole page before touching anything: a bad row rejects the page.
        batches: list[tuple[str, list[tuple[Any, ...]]]] = []
        for (table, op), group in groupby(todo, key=lambda c: (c.table, c.op)):
            spec = SPECS[table]
            rows = [c.row | {"seq": c.seq} for c in group]
            if op == "upsert":
                batches.append((spec.upsert_sql, validate_rows(spec, rows)))
            else:
                batches.append((spec.delete_sql, [spec.key_params(r) for r in rows]))
        async with self.write_lock:
            try:  # BEGIN in the try, as in `apply_snapshot_parts`
                await self.conn.execute("BEGIN IMMEDIATE")
                for sql, params in batches:
                    await self.conn.executemany(sql, params)
                await self._set_cursor(todo[-1].seq)
                await self.conn.execute("COMMIT")
            except BaseException:
                await self._rollback()
                raise
        await self._reload()
        return self._cursor

    async def _rollback(self) -> None:
        """Roll back the open transaction, if there still is one.

        A cancel (the daemon stopping) that lands while COMMIT runs on the connection's
        thread finds the transaction committed: a plain ROLLBACK would then fail and its
        error replace the CancelledError, and a sync loop that lost its cancel never stops.
        """
        try:
            await self.conn.execute("ROLLBACK")
        except sqlite3.OperationalError:
            if self.conn.in_transaction:
                raise

    async def _set_cursor(self, seq: int) -> None:
        # Inside the caller's transaction: the cursor moves with the rows it covers.
        await self.conn.execute(
            "INSERT INTO sync_state VALUES ('cursor', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(seq),),
        )
        for sql in journal.REFLECT_SQL:
            await self.conn.execute(sql, {"cursor": seq})

    async def _set_history(self, history: str | None) -> None:
        # Inside the caller's transaction, with the cursor it belongs to.
        if history is None:
            await self.conn.execute("DELETE FROM sync_state WHERE key = 'history'")
        else:
            await self.conn.execute(_SET_STATE, ("history", history))

    def gate_lookup(
        self,
        *,
        zone_id: str,
        device_id: str,
        ticket_id: str | None = None,
        code_hash: str | None = None,
    ) -> GateLookup:
        """The ticket named by id (signed code) or keyed hash (opaque code), as seen from a zone
        by device `device_id` (whose journal holds its own movements)."""
        params: dict[str, str | None] = {"zone": zone_id}
        if ticket_id is not None:
            sql, params["ticket_id"] = _GATE_BY_ID, ticket_id
        else:
            sql, params["code_hash"] = _GATE_BY_HASH, code_hash
        rows = self.inline.execute(sql, params).fetchall()
        if not rows:
            return GateLookup(None, None, False, Presence.NEVER, 0)
        (tid, seq, fest, cat, status, chash, cver, susp, blocked, inside, phlc, pdev, pseq,
         local, pocc) = rows[0]  # fmt: skip
        ticket = None
        if seq is not None:
            # Validated when it was written to the replica; only the enum needs rebuilding.
            ticket = trusted(
                TicketRow,
                {"seq": seq, "id": tid, "festival_id": fest, "category_id": cat,
                 "status": TicketStatus(status), "code_hash": chash, "code_version": cver,
                 "suspicious": bool(susp)},
            )  # fmt: skip
        central = (inside, phlc, pdev, pseq) if inside is not None else None
        return GateLookup(
            ticket=ticket,
            category=self.catalog.categories.get(cat) if cat is not None else None,
            blocked=bool(blocked),
            presence=_presence(central, local, device_id),
            pending_occupancy=int(pocc or 0),
        )

    def bar_lookup(self, tag_hash: str) -> BarLookup:
        """The wristband account for a keyed tag hash, with this device's pending effects."""
        rows = self.inline.execute(_BAR_SQL, {"tag_hash": tag_hash}).fetchall()
        seq, aid, fest, thash, balance, blocked, tag_blocked, pending, spent = rows[0]
        account = None
        if aid is not None:
            account = AccountRow.model_construct(
                seq=seq,
                id=aid,
                festival_id=fest,
                tag_hash=thash,
                balance=balance,
                blocked=bool(blocked),
            )
        return BarLookup(account, bool(tag_blocked), int(pending or 0), int(spent or 0))

    async def table_counts(self) -> dict[str, int]:
        """Rows per replicated table, for `status`."""
        counts = {}
        for name in SPECS:
            rows = list(await self.conn.execute_fetchall(f"SELECT count(*) FROM {name}"))
            counts[name] = int(rows[0][0])
        return counts
