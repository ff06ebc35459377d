"""The server's garbage-collector settings: startup frozen out, cycles still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from psycopg_pool import AsyncConnectionPool

from central import server_gc
from central.app import create_app
from config.central import CentralConfig


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Give the test process its collector back as it was (settle is for a server)."""
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.mark.usefixtures("restored_gc")
def test_settle_freezes_what_is_loaded_and_still_collects_later_cycles() -> None:
    loaded = _Node()
    server_gc.settle()
    assert gc.get_freeze_count() > 0
    # Out of every generation a collection walks: frozen.
    assert not any(o is loaded for g in range(3) for o in gc.get_objects(g))
    assert gc.get_threshold()[0] == server_gc.YOUNG_THRESHOLD
    later = _Node()
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None
    server_gc.settle()  # twice is the same as once
    assert gc.get_threshold()[0] == server_gc.YOUNG_THRESHOLD


@pytest.mark.usefixtures("restored_gc")
async def test_the_app_settles_the_collector_once_started_only_when_asked(
    pg_pool: AsyncConnectionPool,
) -> None:
    default = gc.get_threshold()
    plain = create_app(CentralConfig(), pool=pg_pool)
    async with plain.router.lifespan_context(plain):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == default
    server = create_app(CentralConfig(), pool=pg_pool, settle_gc=True)
    async with server.router.lifespan_context(server):
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == server_gc.YOUNG_THRESHOLD
