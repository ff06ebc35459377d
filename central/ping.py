"""Whether central answers at a URL, waiting for it when asked (scripts that start it)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from sync.protocol import Paths

RETRY_S = 0.2


@dataclass(frozen=True, slots=True)
class Answer:
    """What central said: its API version, or why it did not answer."""

    version: str | None
    error: str | None


def ping(url: str, *, wait_s: float = 0.0) -> Answer:
    """Ask for central's OpenAPI document (no credentials needed) until it answers or
    `wait_s` seconds have passed."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            response = httpx.get(f"{url.rstrip('/')}{Paths.OPENAPI}", timeout=5.0)
            if response.status_code == 200:
                return Answer(str(response.json().get("info", {}).get("version")), None)
            error = f"HTTP {response.status_code}"
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if time.monotonic() >= deadline:
            return Answer(None, error)
        time.sleep(RETRY_S)
