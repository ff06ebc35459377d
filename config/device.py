"""Device settings: one TOML file plus FESTGATE_ environment overrides, validated once."""

from __future__ import annotations

import ipaddress
import os
import pwd
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from config.file_settings import FileSettings
from config.hardware import ActuatorConfig, ReaderConfig
from config.vocab import Role

# When neither --data-dir nor a config names one: where deploy/install-device and the unit
# (deploy/festgate.service) put it, so `festgate init` on a device needs no -d.
DEFAULT_DATA_DIR = Path("/var/lib/festgate")


def readable_ca_bundle(path: Path) -> Path:
    """`path`, once this process could open it; else ValueError with the command that installs
    it (the daemon reads it as the service user at every start, so a bundle only root can read
    would fail each start)."""
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        user = pwd.getpwuid(os.geteuid()).pw_name
        raise ValueError(
            f"{user} cannot read {path} ({exc.strerror}): the festival's CA is public, install"
            f" it with `sudo install -m 0644 festival-ca.pem {path}`"
        ) from None
    return path


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentityConfig(_Section):
    """Who this device is and what it does."""

    name: str = Field(min_length=1, max_length=64, description="device name shown to ops")
    role: Role = Field(description="gate, bar or topup")
    zone: str | None = Field(None, description="zone id or name a gate admits into")
    vendor: str | None = Field(None, description="vendor id or name a bar sells for")
    direction: Literal["entry", "exit"] = Field(
        "entry", description="a gate's lane: admits into its zone, or records exits from it"
    )
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="replica, journal and credentials")


class CentralLinkConfig(_Section):
    """How this device reaches central (central's own settings: `config.central`)."""

    url: HttpUrl | None = Field(None, description="central's base URL; none = offline only")
    ca_bundle: Path | None = Field(None, description="festival's own CA bundle for TLS")
    token: SecretStr | None = Field(None, description="device token; normally in credentials")
    connect_timeout_s: float = Field(3.0, gt=0, le=60, description="TCP/TLS connect timeout")
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="one request's timeout")
    long_poll_s: float = Field(25.0, ge=0, le=60, description="how long a change poll may wait")
    push_interval_s: float = Field(2.0, gt=0, le=600, description="retry timer for pending events")
    max_backoff_s: float = Field(
        30.0, gt=0, le=600, description="longest wait between tries while central is away"
    )
    keep_acked_hours: float = Field(
        48.0,
        ge=0,
        description="how long events central acknowledged stay in the journal: a central"
        " restored from a backup up to this old gets back from this device all it lost",
    )

    allow_plain_http: bool = Field(
        False,
        description="talk to central over plain http:// although it is not on loopback"
        " (a trial on a closed network; tokens and events then cross it in clear)",
    )

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_readable(cls, value: Path | None) -> Path | None:
        return None if value is None else readable_ca_bundle(value)

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> CentralLinkConfig:
        url = self.url
        plain = url is not None and url.scheme == "http" and not self.allow_plain_http
        if plain and url is not None and not is_loopback(url.host or ""):
            raise ValueError(
                f"central.url {url} is plain http:// to a host that is not loopback:"
                " use https://, or set central.allow_plain_http = true"
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: only localhost is known to be loopback without asking DNS
        return False


class CashlessConfig(_Section):
    """Local limits on cashless sales."""

    offline_allowance_cents: int | None = Field(
        None, ge=0, description="cap on the festival's offline allowance per wristband"
    )
    online_window_s: float = Field(
        30.0, gt=0, description="central counts as reachable this long after the last exchange"
    )


class TimeoutsConfig(_Section):
    """Bounds on the daemon's own work."""

    shutdown_s: float = Field(5.0, gt=0, le=120, description="SIGTERM to exit, at most")
    reader_restart_s: float = Field(
        1.0, gt=0, le=300, description="first backoff for a failed reader"
    )


class MetricsConfig(_Section):
    """The local Prometheus endpoint, off unless `listen` is set."""

    listen: str | None = Field(
        None,
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
        description="host:port to serve /metrics on, e.g. 127.0.0.1:9464; none = off",
    )


class DeviceConfig(FileSettings):
    """Everything a device needs, loaded from TOML then FESTGATE_* environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="FESTGATE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    device: IdentityConfig = Field(description="identity and role")
    central: CentralLinkConfig = Field(
        default_factory=CentralLinkConfig, description="central service"
    )
    cashless: CashlessConfig = Field(default_factory=CashlessConfig, description="bar limits")
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig, description="daemon bounds")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Prometheus")
    readers: list[ReaderConfig] = Field(default_factory=list, description="code and tag readers")
    actuators: list[ActuatorConfig] = Field(default_factory=list, description="relays, displays")

    @model_validator(mode="after")
    def _role_needs_place(self) -> DeviceConfig:
        if self.device.role is Role.GATE and not self.device.zone:
            raise ValueError("device.zone is required for a gate")
        if self.device.role is Role.BAR and not self.device.vendor:
            raise ValueError("device.vendor is required for a bar")
        names = [p.name for p in [*self.readers, *self.actuators]]
        if len(names) != len(set(names)):
            raise ValueError("reader and actuator names must be unique")
        return self


_UNION_TAGS = frozenset({"camera", "nfc", "serial_scanner", "simulated", "relay", "display"})


def load_device_config(path: Path | None) -> DeviceConfig:
    """Load and validate a device config; ConfigError lists every problem by key path."""
    return DeviceConfig.load(path, skip=_UNION_TAGS)
