"""/metrics is not for the world: with a metrics_token, only its bearer gets it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.central.serve_proc import serve


def test_with_a_token_metrics_answers_only_to_it(pg_dsn: str, tmp_path: Path) -> None:
    with serve(tmp_path, dsn=pg_dsn, settings='metrics_token = "s3cret-scrape"\n') as central:
        anonymous = httpx.get(f"{central.url}/metrics")
        wrong = httpx.get(f"{central.url}/metrics", headers={"Authorization": "Bearer nope"})
        right = httpx.get(
            f"{central.url}/metrics", headers={"Authorization": "Bearer s3cret-scrape"}
        )
    assert anonymous.status_code == 404  # even from loopback, once a token is set
    assert wrong.status_code == 404
    assert right.status_code == 200
    assert "festgate_pushes" in right.text
