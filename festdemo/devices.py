"""The demo's devices: real `festgate run` daemons and their simulated hardware (their links
to central are `festdemo.proxy`).

- `CameraStream`: an MJPEG-over-HTTP stream per gate, the kind an IP camera serves; the
  gate's camera reader (OpenCV + zxing-cpp) decodes what it shows.
- `Daemon`: `python -m edge.cli run -c FILE`, stopped with SIGTERM. A bar's `sell` is its
  till: product ids go to a line-fed scanner, then the wristband is tapped by a second
  process playing an NTAG on nfcpy's `udp:` driver.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from festdemo.proxy import LinkProxy

WORK_DIR = Path(__file__).resolve().parent.parent
FPS = 15
CODE_FRAMES, GAP_FRAMES = 3, 5  # a code held up for 0.2 s, then an empty lane for 0.33 s
TAP_GAP_S = 1.5  # the reader must see one tag leave before the next arrives on its port


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port nobody uses right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _jpeg(payload: str | None) -> bytes:
    import cv2

    from hardware.sim_camera import blank_frame, render

    frame = blank_frame(0) if payload is None else render(payload)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return bytes(data.tobytes())


class CameraStream:
    """A gate's camera as an MJPEG HTTP stream: an empty lane, and each shown code in turn."""

    def __init__(self) -> None:
        self.port = 0
        self.connected = asyncio.Event()
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] = asyncio.Queue()
        self._blank = b""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.shown = 0  # codes held up to the camera

    async def start(self) -> str:
        """Listen on loopback; returns the URL for the camera reader's `source`."""
        self._blank = await asyncio.to_thread(_jpeg, None)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}/lane.mjpg"

    async def show(self, code: str) -> None:
        """Hold a code up to the camera; returns once its frames have been sent."""
        jpeg = await asyncio.to_thread(_jpeg, code)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((jpeg, done))
        await done
        self.shown += 1

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.0 200 OK\r\n"
                b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
            )
            self.connected.set()
            loop = asyncio.get_running_loop()
            tick = loop.time()
            while True:
                frames, done = [self._blank], None
                if not self._queue.empty():
                    jpeg, done = self._queue.get_nowait()
                    frames = [jpeg] * CODE_FRAMES + [self._blank] * GAP_FRAMES
                for frame in frames:
                    writer.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                        % len(frame)
                        + frame
                        + b"\r\n"
                    )
                    await writer.drain()
                    tick += 1 / FPS
                    await asyncio.sleep(max(0.0, tick - loop.time()))
                if done is not None and not done.done():
                    done.set_result(None)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the reader went away (daemon stopped or restarting its camera)
        finally:
            self._tasks.discard(task)
            writer.transport.abort()


@dataclass
class Daemon:
    """One device: its data dir, config, link proxy, process and hardware simulators."""

    name: str
    role: str  # gate or bar
    place: str  # zone or vendor name
    data_dir: Path
    proxy: LinkProxy
    device_id: str = ""
    config_file: Path | None = None
    camera: CameraStream | None = None
    till_feed: Path | None = None
    nfc_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_file: Path | None = None
    taps: int = 0  # wristband taps played, retries included

    def start(self) -> None:
        """Start `festgate run -c FILE` in its own process."""
        assert self.config_file is not None
        self.log_file = self.data_dir / "daemon.log"
        with self.log_file.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "edge.cli", "run", "-c", str(self.config_file)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=WORK_DIR,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to pass on
            )

    def stop(self) -> int | None:
        """SIGTERM, then wait (SIGKILL if it does not stop within 15 s); its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGUSR1)  # its threads' stacks go to daemon.log
                time.sleep(0.5)
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def journal(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Query the device's SQLite read-only (the daemon stays its only writer)."""
        path = self.data_dir / "replica.sqlite3"
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    async def sale_count(self) -> int:
        """Sales this bar has journaled."""
        rows = await asyncio.to_thread(
            self.journal, "SELECT count(*) FROM journal WHERE kind = 'sale'"
        )
        return int(rows[0][0])

    async def started(self) -> bool:
        """Whether the daemon has journaled its start."""
        try:
            rows = await asyncio.to_thread(
                self.journal,
                "SELECT count(*) FROM journal WHERE kind = 'log' "
                "AND payload LIKE '%daemon.started%'",
            )
        except sqlite3.Error:
            return False
        return bool(rows[0][0])

    async def sell(self, uid: str, products: tuple[str, ...], *, nfc: bool) -> bool:
        """Ring up products on the till, then tap the wristband; True once the sale is journaled.

        A tap that the reader misses (the emulated tag left too soon) is tapped again.
        """
        assert self.till_feed is not None
        before = await self.sale_count()
        with self.till_feed.open("a", encoding="utf-8") as feed:
            feed.write("".join(f"{p}\n" for p in products) + ("" if nfc else f"tag:{uid}\n"))
        if nfc:
            await asyncio.sleep(0.2)  # the product lines reach the basket first
            for _ in range(3):
                self.taps += 1
                await _tap(self.nfc_port, uid, self.sale_count, before)
                if await self.sale_count() > before:
                    return True
            return False
        for _ in range(50):
            if await self.sale_count() > before:
                return True
            await asyncio.sleep(0.1)
        return False


async def _tap(port: int, uid: str, count: Any, before: int) -> None:
    """Hold an emulated NTAG (7-byte UID) to the reader until the sale is journaled or 6 s."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hardware.sim_nfc_tag", "--type", "2", "--port", str(port),
        "--uid", uid, "--seconds", "6", cwd=WORK_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 10)
        for _ in range(60):
            if await count() > before or proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        if proc.returncode is None:
            proc.terminate()  # the wristband leaves the field
        await proc.wait()
    await asyncio.sleep(TAP_GAP_S)


def daemon_config(base: str, daemon: Daemon, *, real_hardware: bool) -> str:
    """The device TOML `festgate init` wrote, plus quick sync timers and demo hardware."""
    lines = [base.rstrip("\n"), "push_interval_s = 0.5", "long_poll_s = 2", "connect_timeout_s = 1"]
    lines += ["", "[timeouts]", "shutdown_s = 5"]
    if daemon.role == "gate":
        if real_hardware:
            assert daemon.camera is not None
            src = f"http://127.0.0.1:{daemon.camera.port}/lane.mjpg"
            lines += ["", "[[readers]]", 'type = "camera"', 'name = "camera"', f'source = "{src}"']
        else:
            lines += ["", "[[readers]]", 'type = "simulated"', 'name = "scanner"']
            lines.append(f"feed = {_q(daemon.data_dir / 'feed.txt')}")
    else:
        lines += ["", "[[readers]]", 'type = "simulated"', 'name = "till"']
        lines.append(f"feed = {_q(daemon.data_dir / 'feed.txt')}")
        if real_hardware:
            lines += ["", "[[readers]]", 'type = "nfc"', 'name = "nfc"']
            lines += [f'path = "udp:localhost:{daemon.nfc_port}"', "reopen_backoff_s = 0.2"]
    lines += ["", "[[actuators]]", 'type = "simulated"', 'name = "lamp"', ""]
    return "\n".join(lines)


def _q(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'
