"""The demo's stage: central's HTTP API on loopback, and the exit lane."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from config.central import CentralConfig
from festdemo.proxy import LinkProxy
from festdemo.view import DeviceView


@contextlib.contextmanager
def central_server(dsn: str) -> Iterator[int]:
    """Central's HTTP API: uvicorn in a thread on a loopback port."""
    import uvicorn

    from central.app import create_app
    from central.http_server import server_config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = CentralConfig(dsn=SecretStr(dsn), host="127.0.0.1", port=port)
    server = uvicorn.Server(server_config(create_app(config), config, log_level="warning"))
    thread = threading.Thread(target=server.run, name="central", daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            if not thread.is_alive():
                raise RuntimeError("central did not start")
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(15)


@dataclass
class ExitLane:
    """The General zone's exit lane. The daemon has no exit direction yet, so this device
    runs in the demo's process: the same Device and sync engine `festgate scan --exit` and
    `festgate sync` use, journaling to its own SQLite and syncing through its own link."""

    view: DeviceView
    proxy: LinkProxy
    device: Any = None
    client: Any = None
    task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the device and run its sync loops."""
        from config.vocab import Role
        from edge.device import Device
        from edge.sync_link import engine_for, load_credentials
        from sync.client import CentralClient

        creds = load_credentials(self.view.data_dir)
        assert creds is not None
        self.device = await Device.open(self.view.data_dir, role=Role.GATE, zone=creds.zone_id)
        self.client = CentralClient(creds.central_url, token=creds.token, connect_timeout_s=1)
        engine = engine_for(self.device, self.client, long_poll_s=2, push_interval_s=0.5)
        self.task = asyncio.create_task(engine.run())

    async def stop(self) -> None:
        """Cancel the sync loops, close the device."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.client is not None:
            await self.client.aclose()
        if self.device is not None:
            await self.device.close()
