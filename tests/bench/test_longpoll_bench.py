"""The long-poll bench at a tiny size, on the test server: its figures, every poll woken."""

from __future__ import annotations

import pytest

from bench import longpoll


def test_longpoll_reports_memory_and_wakes_every_parked_poll(
    pg_admin_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FESTGATE_BENCH_DSN", pg_admin_dsn)
    connections = 6
    figures = longpoll.main(["--connections", str(connections), "--settle", "30", "--idle", "0.5"])
    assert figures["connections"] == connections
    assert figures["rss_kib_before"] > 0 and figures["rss_kib_parked"] > 0
    assert figures["fds_before"] > 0 and figures["fds_parked"] > 0
    assert "rss_per_connection_kib" in figures
    assert {"central_cpu_share", "server_cpu_share", "bench_cpu_share"} <= set(figures["idle"])
    # Central took every long-poll in, and the write reached every one of them.
    assert figures["reached_central"] == connections
    assert figures["errors"] == 0
    assert figures["answered_with_change"] == connections
    assert figures["intake_s"] > 0
    assert figures["wake_all_s"] > 0
