"""Typed settings for the central service (env prefix ``FESTGATE_CENTRAL_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CentralConfig(BaseSettings):
    """Central's settings: where PostgreSQL is, where the HTTP API listens, and how long it
    waits on a client."""

    model_config = SettingsConfigDict(env_prefix="FESTGATE_CENTRAL_", extra="forbid")

    dsn: SecretStr | None = Field(
        None,
        description="libpq DSN or URI of central's PostgreSQL; unset: start an embedded server",
    )
    data_dir: Path = Field(
        Path("var/central"),
        description="directory of the embedded PostgreSQL cluster (used only without a DSN)",
    )
    host: str = Field("127.0.0.1", description="address the HTTP API listens on")
    port: int = Field(8080, ge=1, le=65535, description="port the HTTP API listens on")
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
    snapshot_streams: int | None = Field(
        None,
        ge=1,
        description="snapshot streams served at once (each holds a pooled connection);"
        " unset: a quarter of pool_max_size, at least 1",
    )
    snapshot_queue_s: float = Field(
        5.0,
        ge=0,
        description="how long a snapshot request waits for a free stream before 429",
    )
