"""The drain bench at a tiny size, on the test server: every figure there, every event once."""

from __future__ import annotations

import pytest

from bench import drain


def test_drain_reports_every_figure_and_stores_each_backlog_event_once(
    pg_admin_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FESTGATE_BENCH_DSN", pg_admin_dsn)
    devices, per_device = 3, 120
    figures = drain.main(
        [
            *("--devices", str(devices), "--events-per-device", str(per_device)),
            *("--batch", "40", "--live", "2", "--live-every", "0", "--before", "0.3"),
        ]
    )
    assert figures["events"] == devices * per_device
    # Each backlog event is in central's database, once.
    assert figures["stored"] == figures["distinct"] == devices * per_device
    for key in ("drain_s", "events_per_s", "central_cpu_share", "server_cpu_share"):
        assert figures[key] > 0, key
    for phase in ("live_before", "live_during", "backlog_pushes"):
        assert figures[phase]["pushes"] >= 1, phase
        for key in ("p50_ms", "p99_ms", "max_ms"):
            assert figures[phase][key] > 0, (phase, key)
        assert figures[phase]["over_device_timeout"] >= 0
        # Every push is at least one request; a refused one is more, none of them longer.
        assert figures[phase]["requests"] >= figures[phase]["pushes"]
        assert figures[phase]["request_max_ms"] > 0
        assert figures[phase]["requests_over_device_timeout"] >= 0
    # Every backlog push was acknowledged: three of 40 events from each device.
    assert figures["backlog_pushes"]["pushes"] == devices * per_device // 40
    assert figures["live_p99_ratio"] > 0
    assert isinstance(figures["refused"], dict)
