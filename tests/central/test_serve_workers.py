"""`serve` as a service: several workers on one port, and the embedded PostgreSQL gone when
central stops (a long-poll woken across processes: tests/integration/test_serve_longpoll.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.central.serve_proc import PATIENCE_S, serve


def _closed_by_central(url: str) -> bytes:
    """Open a connection, send half a request's headers and read until central closes it."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(PATIENCE_S)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        got = b""
        while chunk := sock.recv(1024):
            got += chunk
        return got


def test_two_workers_start_answer_and_stop_cleanly(pg_dsn: str, tmp_path: Path) -> None:
    args = ("--workers", "2", "--log-format", "json")
    # A short header deadline: every worker must hold its clients to the guarded protocol.
    with serve(tmp_path, *args, dsn=pg_dsn, settings="header_timeout_s = 0.5\n") as central:
        for _ in range(6):  # whichever worker takes each connection, every one answers
            with httpx.Client() as client:
                assert client.get(f"{central.url}/readyz").status_code == 200
        for _ in range(4):  # whichever worker takes it, a trickler is cut off, unanswered
            assert _closed_by_central(central.url) == b""
        scrape = httpx.get(f"{central.url}/metrics")
        assert scrape.status_code == 200
        assert "festgate_longpoll_waiters" in scrape.text
        assert central.stop() == 0
    log = central.log_text()
    assert log.count("Started server process") == 2  # two workers, each with its own app
    assert "Traceback" not in log


def _postgres_of(data_dir: Path) -> list[int]:
    """Pids of processes whose command line names `data_dir` (a postgres of that cluster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and str(data_dir) in cmdline:
            found.append(int(entry.name))
    return found


def test_the_embedded_postgresql_stops_when_central_stops(tmp_path: Path) -> None:
    data_dir = (tmp_path / "central-pg").resolve()
    with serve(tmp_path, "--log-format", "text", data_dir=data_dir) as central:
        # serve got no DSN: it runs its own cluster, and says so.
        assert _postgres_of(data_dir) != []
        stopped = central.stop()
    assert stopped == 0
    assert "using an embedded PostgreSQL for trials at" in central.log_text()
    assert "set --dsn for production" in central.log_text()
    assert _postgres_of(data_dir) == []
