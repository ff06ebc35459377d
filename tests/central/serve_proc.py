"""`festgate-central serve` as a real process on a loopback port, for the serve tests."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CLI = str(Path(sys.executable).with_name("festgate-central"))
PATIENCE_S = 90.0  # how long a test waits for what must happen: a bound, not a measure


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A running `festgate-central serve`: its URL, process and log file."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=PATIENCE_S)

    def log_text(self) -> str:
        """What it logged so far (stderr)."""
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve(
    tmp: Path,
    *args: str,
    dsn: str | None = None,
    data_dir: Path | None = None,
    ca: Path | None = None,
    settings: str = "",
) -> Iterator[Served]:
    """Start `festgate-central --dsn DSN|--data-dir DIR serve --port P ARGS`, wait until
    /healthz answers (over https trusting `ca`, when given), stop it on exit. `settings`:
    its settings file's text."""
    port = free_port()
    log = tmp / f"central-{port}.log"
    where = ["--dsn", dsn] if dsn else ["--data-dir", str(data_dir or tmp / "central-pg")]
    # Central's settings come from the file below alone; the suite's KEK (tests/conftest.py)
    # stays, as a server with a DSN signs nothing without one.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FESTGATE_CENTRAL_") or k == "FESTGATE_CENTRAL_KEK"
    }
    env["FESTGATE_CENTRAL_CONFIG"] = str(tmp / f"settings-{port}.toml")
    (tmp / f"settings-{port}.toml").write_text(settings, encoding="utf-8")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [CLI, *where, "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    scheme = "https" if ca is not None else "http"
    served = Served(proc, f"{scheme}://127.0.0.1:{port}", log)
    try:
        _wait_healthy(served, ssl.create_default_context(cafile=ca) if ca else True)
        yield served
    finally:
        if proc.poll() is None:
            served.stop()


def _wait_healthy(served: Served, verify: ssl.SSLContext | bool) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        if served.proc.poll() is not None:
            raise RuntimeError(f"central exited: {served.log_text()}")
        try:
            if httpx.get(f"{served.url}/healthz", verify=verify, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"central did not answer: {served.log_text()}")


def metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in a scrape (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0
