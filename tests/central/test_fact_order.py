"""`sync.hlc.fact_order` is the order central's SQL spells as ``(hlc, device_id, device_seq)``."""

from __future__ import annotations

import uuid

from psycopg import AsyncConnection

from sync.hlc import fact_order

# Equal HLCs and device ids that differ in digits, letters and at every nibble's extremes, so
# a key that compared ids other than as PostgreSQL's uuid does would reorder some of them.
_DEVICES = [
    "00000000-0000-7000-8000-000000000000",
    "0000000a-0000-7000-8000-000000000000",
    "00000009-0000-7000-8000-000000000000",
    "a0000000-0000-7000-8000-000000000000",
    "90000000-0000-7000-8000-00000000000f",
    "90000000-0000-7000-8000-0000000000f0",
    "ffffffff-ffff-7fff-bfff-ffffffffffff",
]
_FACTS = [(hlc, dev, seq) for hlc in (7, 1 << 40) for dev in _DEVICES for seq in (2, 10)]


async def test_fact_order_sorts_as_postgresql_compares_the_rows(pg_admin_dsn: str) -> None:
    async with await AsyncConnection.connect(pg_admin_dsn) as conn:
        cur = await conn.execute(
            "SELECT h, d::text, s FROM unnest(%s::bigint[], %s::uuid[], %s::bigint[]) AS f(h, d, s)"
            " ORDER BY (h, d, s)",
            (
                [f[0] for f in _FACTS],
                [uuid.UUID(f[1]) for f in _FACTS],
                [f[2] for f in _FACTS],
            ),
        )
        central = [(h, d, s) for h, d, s in await cur.fetchall()]
    assert central == sorted(_FACTS, key=lambda f: fact_order(*f))
    assert len(set(central)) == len(_FACTS)
