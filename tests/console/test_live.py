"""The live stream's shared renders (pure asyncio): one render per view and wake-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from central.console.live import SharedRenders, sse


class FakePool:
    """Hands out a stand-in connection; counts how often."""

    def __init__(self) -> None:
        self.taken = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[object]:
        self.taken += 1
        yield object()


async def test_screens_of_one_view_share_a_render_until_the_next_change() -> None:
    shared, pool = SharedRenders(), FakePool()
    renders: list[int] = []
    gate = asyncio.Event()

    async def render(_: Any) -> str:
        renders.append(len(renders))
        await gate.wait()  # every screen asks while the first render runs
        return f"html {len(renders)}"

    wake = asyncio.Event()
    asking = [asyncio.create_task(shared.get("now", wake, pool, render)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert set(await asyncio.gather(*asking)) == {"html 1"}
    assert renders == [0] and pool.taken == 1
    # Another view renders on its own; a new wake-up (a change) renders again.
    assert await shared.get("other", wake, pool, render) == "html 2"
    assert await shared.get("now", asyncio.Event(), pool, render) == "html 3"


async def test_a_failed_render_is_not_shared() -> None:
    shared, pool = SharedRenders(), FakePool()
    calls = 0

    async def render(_: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database went away")
        return "html"

    wake = asyncio.Event()
    with pytest.raises(RuntimeError):
        await shared.get("now", wake, pool, render)
    assert await shared.get("now", wake, pool, render) == "html"


def test_an_event_carries_every_line_of_its_fragment() -> None:
    assert sse("now", "<p>a</p>\n<p>b</p>") == "event: now\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    assert sse("ended", "") == "event: ended\ndata: \n\n"
