"""A real central on loopback: uvicorn serving the app over HTTP, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from psycopg import AsyncConnection
from pydantic import SecretStr

from central.app import create_app
from central.enrol import create_enrol_code
from central.http_server import server_config
from central.sample import SampleFestival, create_sample_festival
from config.central import CentralConfig
from config.vocab import Role
from edge.cli_sync import enrol_device
from edge.device import Device
from edge.sync_link import Credentials, engine_for, load_credentials
from sync.client import CentralClient
from sync.engine import SyncEngine


class CentralServer:
    """uvicorn in a thread of its own, on a loopback port that survives restarts, configured
    as `festgate-central serve` configures it (`settings`: CentralConfig fields to change)."""

    def __init__(self, dsn: str, **settings: Any) -> None:
        self.dsn = dsn
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = settings
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = CentralConfig(
            dsn=SecretStr(self.dsn), host="127.0.0.1", port=self.port, **self.settings
        )
        server = uvicorn.Server(server_config(create_app(config), config, log_level="warning"))
        self._server = server
        self._thread = threading.Thread(target=server.run, name="central", daemon=True)
        self._thread.start()
        for _ in range(500):
            if server.started:
                return
            threading.Event().wait(0.01)
        raise RuntimeError("central did not start")

    def requests_in_flight(self) -> int:
        """Requests whose headers central has read and that it has not answered yet."""
        assert self._server is not None
        return len(self._server.server_state.tasks)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
        self._server = self._thread = None


@contextmanager
def serving(dsn: str, **settings: Any) -> Iterator[CentralServer]:
    """A started CentralServer (`settings` as for CentralServer), stopped on exit."""
    server = CentralServer(dsn, **settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def central(pg_dsn: str) -> Iterator[CentralServer]:
    with serving(pg_dsn) as server:
        yield server


@pytest.fixture
async def fest(pg_dsn: str) -> SampleFestival:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        return await create_sample_festival(conn, signed_tickets=6, opaque_tickets=1, wristbands=2)


async def enrol_code(dsn: str, fest: SampleFestival, role: str) -> str:
    """A one-time enrol code for a gate (the sample zone) or a bar (the sample vendor)."""
    async with await AsyncConnection.connect(dsn) as conn:
        code = await create_enrol_code(
            conn, festival_id=fest.festival_id, role=role,
            zone_id=fest.zone_id if role == "gate" else None,
            vendor_id=fest.vendor_id if role == "bar" else None, ttl_s=600,
        )  # fmt: skip
        await conn.commit()
        return code


@dataclass
class Node:
    """An enrolled device with its sync engine (not running unless a test starts it)."""

    device: Device
    engine: SyncEngine
    client: CentralClient
    creds: Credentials

    async def close(self) -> None:
        await self.client.aclose()
        await self.device.close()


async def open_node(data_dir: Path, *, url: str | None = None, **engine_kw: Any) -> Node:
    """Open an enrolled device's data dir with a sync engine to its central (or `url`)."""
    creds = load_credentials(data_dir)
    assert creds is not None
    device = await Device.open(
        data_dir, role=Role(creds.role), zone=creds.zone_id, vendor=creds.vendor_id
    )
    client = CentralClient(url or creds.central_url, token=creds.token)
    return Node(device, engine_for(device, client, **engine_kw), client, creds)


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    opened: list[Node] = []
    yield opened
    for node in opened:
        await node.close()


def new_dir(tmp_path: Path) -> Path:
    return tmp_path / f"dev-{uuid.uuid4().hex[:6]}"


async def enrolled_dir(
    central: CentralServer, dsn: str, fest: SampleFestival, role: str, tmp: Path
) -> Path:
    """A device data dir enrolled at `central` (`festgate init`: snapshot and catch-up)."""
    data = new_dir(tmp)
    await enrol_device(central.url, await enrol_code(dsn, fest, role), name=role, data_dir=data)
    return data


PATIENCE_S = 30.0  # how long a test waits for what must happen: a bound, not a measure


async def until(test: Callable[[], bool]) -> None:
    """Wait until `test()` holds (at most PATIENCE_S)."""
    async with asyncio.timeout(PATIENCE_S):
        while not test():  # noqa: ASYNC110 - it reads state of another thread or process
            await asyncio.sleep(0.01)


async def closed_by_central(reader: asyncio.StreamReader) -> bytes:
    """Everything central sends on a raw connection until it closes it (at most PATIENCE_S)."""
    try:
        async with asyncio.timeout(PATIENCE_S):
            return await reader.read()
    except ConnectionResetError:
        return b""


async def run_for(engine: SyncEngine, seconds: float) -> None:
    """Run an engine's loops for a while, then cancel them."""
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
