"""Central's HTTP server: uvicorn's h11 protocol with a deadline on every wait on a client.

uvicorn (0.55, h11) bounds only the idle time between two requests (keep-alive), and any
byte that arrives disarms even that: a client that trickles its headers, trickles its
body or stops reading its answer keeps the connection as long as it likes. The guarded
protocol closes such a connection:

- headers: a request's headers must all arrive within `header_timeout_s` of connecting,
  or of the first byte of the next request on a kept-alive connection;
- body: the whole body within `body_timeout_s` of its headers. If the app has not begun
  an answer, the client gets ``408 request_timeout`` (ErrorBody JSON, ``Connection:
  close``); the app sees ``http.disconnect``;
- answer: a response that waits on a client that does not read for `send_timeout_s` is
  cut; the app's stream sees ``http.disconnect`` and ends.

`server_config` builds the one uvicorn configuration that ``festgate-central serve``, the
demo, the benchmarks and the integration tests all run.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from central.logs import default_format, log_config
from config.central import CentralConfig
from sync.protocol import ErrorBody


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    if timer is not None:
        timer.cancel()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header, body and send deadlines (see the module text)."""

    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 30.0
    send_timeout_s: ClassVar[float] = 30.0
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock on the first request's headers."""
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop every clock of this connection."""
        super().connection_lost(exc)
        for timer in (self._header_timer, self._body_timer, self._send_timer):
            _cancel(timer)
        self._header_timer = self._body_timer = self._send_timer = None

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does; bytes of a request whose headers are not all in start its
        header clock (uvicorn has just disarmed keep-alive, which any byte does)."""
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def handle_events(self) -> None:
        """Parse as uvicorn does, then follow the request: headers in, body in or out."""
        super().handle_events()
        state = self.conn.their_state
        if state is not h11.IDLE:  # the headers are in (IDLE: waiting for them, or idle)
            _cancel(self._header_timer)
            self._header_timer = None
        if state is not h11.SEND_BODY:  # the body is in, or there is none (yet)
            # Also when a body ends after an early answer and the next cycle has begun:
            # this body's clock must not run on into the next request's.
            _cancel(self._body_timer)
            self._body_timer = None
        elif self._body_timer is None:
            self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_late)

    def pause_writing(self) -> None:
        """The client stopped reading (the write buffer is full): start the send clock."""
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.send_timeout_s, self._send_late)

    def resume_writing(self) -> None:
        """The client reads again: stop the send clock."""
        super().resume_writing()
        _cancel(self._send_timer)
        self._send_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE:
            self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        cycle = self.cycle
        if not cycle.response_started and self.conn.our_state is h11.SEND_RESPONSE:
            self._send_408()
            # What connection_lost does, now: the app's receive sees http.disconnect and its
            # answer, if it still makes one, goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _send_408(self) -> None:
        body = ErrorBody(
            error="request_timeout",
            detail=f"the request body did not arrive within {self.body_timeout_s:g} s",
        )
        data = body.model_dump_json().encode()
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            (b"connection", b"close"),
        ]
        response = h11.Response(status_code=408, headers=headers, reason=b"Request Timeout")
        for event in (response, h11.Data(data=data), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")

    def _send_late(self) -> None:
        self._send_timer = None
        # close() would wait for the buffered answer to drain, which this client never does.
        self.transport.abort()


WORKER_CONFIG_ENV = "FESTGATE_CENTRAL_WORKER_SETTINGS"


class WorkerProtocol(GuardedH11Protocol):
    """The guarded protocol in a `serve --workers N` process: uvicorn imports it by name
    there, and `worker_settings` gives it the parent's deadlines before any connection."""


def worker_settings() -> CentralConfig:
    """In a worker process: the settings `serve` resolved (DSN included), and the deadlines
    set on `WorkerProtocol`."""
    config = CentralConfig.model_validate(json.loads(os.environ[WORKER_CONFIG_ENV]))
    WorkerProtocol.header_timeout_s = config.header_timeout_s
    WorkerProtocol.body_timeout_s = config.body_timeout_s
    WorkerProtocol.send_timeout_s = config.send_timeout_s
    return config


def _settings_for_workers(config: CentralConfig) -> str:
    data = config.model_dump(mode="json")
    for secret in ("dsn", "metrics_token", "kek"):
        value = getattr(config, secret)
        data[secret] = value.get_secret_value() if value is not None else None
    return json.dumps(data)


def server_config(
    app: ASGIApp, config: CentralConfig, *, log_level: str | None = None, own_logs: bool = False
) -> uvicorn.Config:
    """The uvicorn configuration central runs: the guarded protocol with `config`'s deadlines,
    on `config.host`:`config.port`, over TLS with `config.tls_cert`. `own_logs` (a server
    process, not a test's or the demo's) sets up logging as `central.logs` says."""

    class Guarded(GuardedH11Protocol):
        header_timeout_s = config.header_timeout_s
        body_timeout_s = config.body_timeout_s
        send_timeout_s = config.send_timeout_s

    return uvicorn.Config(app, http=Guarded, **_common(config, log_level, own_logs=own_logs))


def workers_config(config: CentralConfig, *, log_level: str | None = None) -> uvicorn.Config:
    """The uvicorn configuration of `serve --workers N`: what `server_config` gives, in
    `config.workers` processes that each build their own app (pool, LISTEN) from `config`,
    passed to them in the environment."""
    os.environ[WORKER_CONFIG_ENV] = _settings_for_workers(config)
    return uvicorn.Config(
        "central.app:worker_app",
        factory=True,
        workers=config.workers,
        http="central.http_server:WorkerProtocol",
        **_common(config, log_level, own_logs=True),
    )


def _common(config: CentralConfig, log_level: str | None, *, own_logs: bool) -> dict[str, Any]:
    # No limit_concurrency: uvicorn counts open connections against it, so sockets that are
    # still trickling headers would turn it into a 503 for every device. What runs out
    # first is the database pool, and no request holds a pooled connection while it waits
    # on its client. Central serves no websockets. The access log is central's own
    # (`central.logs.RequestLog`: with the request id).
    level = (log_level or "info").upper()
    logs = log_config(config.log_format or default_format(), level) if own_logs else {}
    return {
        "host": config.host,
        "port": config.port,
        "ws": "none",
        "lifespan": "on",
        "log_level": log_level,
        "access_log": False,
        # A long-poll or a live page waits up to 30 s; a stop must not wait for them all
        # (systemd's TimeoutStopSec, a restart's port still taken).
        "timeout_graceful_shutdown": config.shutdown_grace_s,
        **({"log_config": logs} if logs else {}),
        "ssl_certfile": str(config.tls_cert) if config.tls_cert else None,
        "ssl_keyfile": str(config.tls_key) if config.tls_key else None,
    }
