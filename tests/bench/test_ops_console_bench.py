"""`python -m bench ops-console --small`: every figure there, every page answered 200."""

from __future__ import annotations

import pytest

from bench import ops_console

PAGES = (
    "now", "now_panel", "conflicts", "devices", "device", "lookup_ticket", "lookup_wristband",
    "sales", "sales_csv", "audit",
)  # fmt: skip


def test_the_small_run_reports_every_page_push_to_screen_and_ingest_beside_watchers(
    pg_admin_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FESTGATE_BENCH_DSN", pg_admin_dsn)
    got = ops_console.main(["--small", "--rounds", "2"])
    assert got["bench"] == "ops-console"
    assert set(got["pages"]) == set(PAGES)
    for name, page in got["pages"].items():
        assert page["statuses"] == [200], name
        assert page["requests"] == got["requests_per_page"], name
        assert 0 < page["p50_ms"] <= page["p95_ms"], name
    assert got["page_p95_ms_max"] == max(p["p95_ms"] for p in got["pages"].values())
    screen = got["push_to_screen"]
    assert 0 < screen["p50_ms"] <= screen["p99_ms"] <= screen["max_ms"]
    ingest = got["ingest"]
    assert ingest["events_per_phase"] > 0
    # Two rounds: two phases with no watcher and two with them, each with a rate.
    assert len(ingest["events_per_s_none"]) == len(ingest["events_per_s_watchers"]) == 2
    assert all(r > 0 for r in ingest["events_per_s_none"] + ingest["events_per_s_watchers"])
    assert ingest["ratio"] > 0
    assert got["setup_s"] > 0
