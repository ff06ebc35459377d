"""Typed settings for the central service: a TOML file, then ``FESTGATE_CENTRAL_*``
environment variables, then command-line flags, each overriding the one before.

Where the settings file is: ``--config``, else ``FESTGATE_CENTRAL_CONFIG``, else
`SYSTEM_CONFIG` when it exists; none is needed. Where the embedded PostgreSQL lives
without a DSN: ``data_dir``, by default `default_data_dir()`, which does not depend on the
directory central is started from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from config.file_settings import FileSettings
from config.vocab import MAX_OFFSET_MS

SYSTEM_CONFIG = Path("/etc/festgate/central.toml")
CONFIG_ENV = "FESTGATE_CENTRAL_CONFIG"


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/festgate/central``, by default ``~/.local/share/festgate/central``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "festgate" / "central"


class CentralConfig(FileSettings):
    """Central's settings: where PostgreSQL is, where the HTTP API listens, how long it
    waits on a client, and the sync API's bounds. The one class of them: the CLI, the server
    and the app all read this."""

    model_config = SettingsConfigDict(env_prefix="FESTGATE_CENTRAL_", extra="forbid")

    dsn: SecretStr | None = Field(
        None,
        description="libpq DSN or URI of central's PostgreSQL; unset: start an embedded server",
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="directory of the embedded PostgreSQL cluster (used only without a DSN);"
        " default $XDG_DATA_HOME/festgate/central (~/.local/share/festgate/central)",
    )
    kek_file: Path | None = Field(
        None,
        description="file holding the key-encryption key that wraps signing keys at rest"
        " (`festgate-central kek new`); unset with a DSN: central signs nothing",
    )
    kek: SecretStr | None = Field(
        None, description="the key-encryption key itself (base64), instead of kek_file"
    )
    host: str = Field("127.0.0.1", description="address the HTTP API listens on")
    port: int = Field(8080, ge=1, le=65535, description="port the HTTP API listens on")
    workers: int = Field(
        1, ge=1, le=64, description="server processes sharing the port (each with its own pool)"
    )
    tls_cert: Path | None = Field(
        None, description="PEM certificate chain to serve HTTPS with (with tls_key); unset: HTTP"
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    metrics_token: SecretStr | None = Field(
        None,
        description="bearer token /metrics asks for; unset: /metrics answers loopback clients only",
    )
    log_format: Literal["json", "text"] | None = Field(
        None, description="log lines as JSON objects or text; unset: text on a terminal, else JSON"
    )
    pool_min_size: int = Field(1, ge=0, description="connections the pool keeps open")
    pool_max_size: int = Field(10, ge=1, description="most connections the pool opens")
    pool_timeout_s: float = Field(
        30.0, gt=0, description="longest a request waits for a pooled database connection"
    )
    # Every wait on a client is bounded, so a client that trickles or stalls holds a socket
    # for a bounded time and never a database connection (central.http_server).
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="seconds a client has to send a request's headers (from connecting, or"
        " from the first byte of the next request on a kept-alive connection); then closed",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="seconds a client has to send a request's whole body after its headers;"
        " then 408 request_timeout and the connection is closed",
    )
    send_timeout_s: float = Field(
        30.0,
        gt=0,
        description="seconds a response may wait for a client that does not read; then the"
        " connection is cut (a snapshot stream ends without its end line)",
    )
    shutdown_grace_s: float = Field(
        5.0,
        gt=0,
        le=60.0,
        description="when central stops, seconds its open requests may take to finish; then"
        " what still waits (a long-poll, a live page, a snapshot) is cut, and devices and"
        " browsers reconnect to the next central",
    )
    snapshot_streams: int | None = Field(
        None,
        ge=1,
        description="snapshot streams served at once (each holds a pooled connection);"
        " unset: a quarter of pool_max_size, at least 1",
    )
    ingest_queue_s: float = Field(
        5.0,
        gt=0,
        le=60.0,
        description="how long a push waits for its festival's ingest turn before 503 busy;"
        " below a device's 10 s request timeout, so a device hears busy and backs off rather"
        " than giving up on an answer",
    )
    snapshot_queue_s: float = Field(
        5.0,
        ge=0,
        description="how long a snapshot request waits for a free stream before 429",
    )
    # The sync API (central.api.sync); tests shrink some.
    clock_skew_bound_ms: int = Field(
        MAX_OFFSET_MS,
        ge=1000,
        description="a device whose clock is further than this from central's is flagged"
        " (`clock_skew`); default: the bound devices hold their own clocks to",
    )
    max_wait_s: float = Field(30.0, gt=0, le=30.0, description="longest a change long-poll waits")
    snapshot_chunk: int = Field(
        500, ge=1, le=10_000, description="catalog rows per line of a snapshot stream"
    )
    max_push_bytes: int | None = Field(
        None,
        ge=1024,
        description="largest push body, in bytes; unset: room for a full batch of the largest"
        " events",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> CentralConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        return self


def config_file(path: Path | None = None) -> Path | None:
    """The settings file to read: `path`, else $FESTGATE_CENTRAL_CONFIG, else `SYSTEM_CONFIG`
    if it exists, else none."""
    if path is not None:
        return path
    named = os.environ.get(CONFIG_ENV)
    if named:
        return Path(named)
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def load_central_config(path: Path | None = None, **flags: Any) -> CentralConfig:
    """Central's settings from the file (see `config_file`), the environment and `flags`
    (None values are flags not given); ConfigError names every problem by key."""
    given = {k: v for k, v in flags.items() if v is not None}
    return CentralConfig.load(config_file(path), **given)
