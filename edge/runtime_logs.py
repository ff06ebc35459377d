"""The daemon's structured logs: JSON lines on stderr, and device log events in the journal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sync.logline import TEXT, JsonFormatter, fields_of, log_payload


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    suppressed: int = 0


@dataclass
class RateLimiter:
    """Token buckets, one per log event key and one over all: a noisy reader cannot flood."""

    burst: int = 5
    refill_s: float = 60.0
    total_burst: int = 30
    total_refill_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _total: _Bucket | None = None

    def _take(self, bucket: _Bucket, burst: int, refill_s: float, now: float) -> bool:
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) / refill_s)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        return False

    def allow(self, key: str) -> tuple[bool, int]:
        """May an event with `key` go through now, and how many of its kind were held back."""
        now = self.clock()
        bucket = self._buckets.setdefault(key, _Bucket(self.burst, now))
        if self._total is None:
            self._total = _Bucket(self.total_burst, now)
        if self._take(bucket, self.burst, self.refill_s, now) and self._take(
            self._total, self.total_burst, self.total_refill_s, now
        ):
            suppressed, bucket.suppressed = bucket.suppressed, 0
            return True, suppressed
        bucket.suppressed += 1
        return False, 0


class JournalBridge(logging.Handler):
    """Hands warnings and errors to the loop as device log payloads.

    emit() may run on any worker thread: it only schedules a put on the loop's bounded queue.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[dict[str, Any]],
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(logging.WARNING)
        self.loop = loop
        self.queue = queue
        self.limiter = limiter or RateLimiter()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Rate-limit and enqueue one record."""
        extra = fields_of(record)
        if record.levelno < logging.WARNING:
            return
        key = str(extra.get("event") or f"{record.name}:{record.msg}")
        # The handler lock (held by Handler.handle) serialises threads around the limiter.
        allowed, suppressed = self.limiter.allow(key)
        if not allowed:
            return
        # `extra` cannot hold the text's key: logging refuses "message" in extra=.
        payload = log_payload(
            {"level": record.levelname.lower(), "logger": record.name, TEXT: record.getMessage()}
            | extra
        )
        if suppressed:
            payload["suppressed"] = suppressed
        try:
            self.loop.call_soon_threadsafe(self._offer, payload)
        except RuntimeError:  # the loop is closed: shutting down
            self.dropped += 1

    def _offer(self, payload: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(payload)
        except asyncio.QueueFull:
            self.dropped += 1


def setup_json_logging(level: int = logging.INFO) -> logging.Handler:
    """Send every log record to stderr as JSON lines (journald keeps them)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
