"""Central's HTTP rig: the real app (lifespan included) on a test database, over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from central.sample import SampleFestival
from tests.central.sync_helpers import Rig, open_rig


@pytest.fixture
def rig_festival() -> dict[str, Any]:
    """Demo festival options for `rig`; a module overrides this fixture to change them."""
    return {}


@pytest.fixture
async def rig(
    pg_pool: AsyncConnectionPool,
    festival: Callable[..., Awaitable[SampleFestival]],
    rig_festival: dict[str, Any],
) -> AsyncIterator[Rig]:
    """The app on a fresh database with a sample festival, and an HTTP client on it."""
    async with open_rig(pg_pool, festival, **rig_festival) as r:
        yield r
