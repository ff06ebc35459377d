"""`festgate doctor`: gather what each check looks at from this machine, and run them all."""

from __future__ import annotations

import contextlib
import ctypes
import grp
import os
import pwd
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from config.device import DEFAULT_DATA_DIR, DeviceConfig, load_device_config
from config.errors import ConfigError
from edge.doctor import checks
from edge.doctor.checks import Check
from edge.store import DB_NAME
from edge.sync_link import Credentials, load_credentials
from sync.client import CentralClient, CentralRefused, CentralUnavailable, ProtocolMismatch

CONFIG_NAME = "festgate.toml"  # where `festgate init` writes the config, in the data dir


@dataclass(frozen=True, slots=True)
class System:
    """Where the doctor looks on this machine; tests point it at files of their own."""

    proc_modules: Path = Path("/proc/modules")
    blacklist: Path = checks.BLACKLIST
    timesync_flag: Path = Path("/run/systemd/timesync/synchronized")
    rtc: Path = Path("/dev/rtc0")
    unit: Path = Path("/etc/systemd/system/festgate.service")

    @classmethod
    def under(cls, root: Path) -> System:
        """The same files under `root` instead of / (tests, an image being built)."""
        here = cls()
        return cls(*(root / getattr(here, f).relative_to("/") for f in cls.__slots__))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def adjtimex_state() -> int | None:
    """The kernel clock's state from adjtimex(2) (5 = TIME_ERROR: not synchronised)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes 0 only reads
        state = int(libc.adjtimex(timex))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state


def ldconfig_text() -> str:
    """What the dynamic linker knows (`ldconfig -p`), or "" where there is no ldconfig."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        done = subprocess.run(  # noqa: S603 - the system's ldconfig, no input of anyone's
            [ldconfig, "-p"], check=False, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def unit_user(unit_text: str | None) -> str | None:
    """The User= of the installed unit, if any."""
    for line in (unit_text or "").splitlines():
        if line.strip().startswith("User="):
            return line.split("=", 1)[1].strip()
    return None


def service_user(data_dir: Path, system: System) -> str:
    """Whom festgate runs as: this user, or for root the unit's User= (else the dir's owner)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    named = unit_user(_read(system.unit))
    if named:
        return named
    try:
        return pwd.getpwuid(data_dir.stat().st_uid).pw_name
    except (OSError, KeyError):
        return "festgate"


def member_of(user: str) -> set[str] | None:
    """The groups `user` is in (primary and supplementary), or None for an unknown user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names = set()
    for gid in os.getgrouplist(entry.pw_name, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def _allows(st: os.stat_result, uid: int, gids: set[int], bit: int) -> bool:
    """Whether mode bit `bit` (4 read, 1 enter) is granted to `uid` in `gids`: the owner's,
    else the group's, else the others' bits decide, as the kernel does (no ACLs here)."""
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode >> 6 & bit)
    if st.st_gid in gids:
        return bool(st.st_mode >> 3 & bit)
    return bool(st.st_mode & bit)


def blocked_path(path: Path, user: str) -> tuple[Path, str] | None:
    """What stops `user` reading file `path`: (the path, "missing" | "enter" | "read"), or
    None when the user can read it (an unknown user: None, the groups check says so)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    gids = set(os.getgrouplist(entry.pw_name, entry.pw_gid))
    try:
        real = path.resolve(strict=True)
    except OSError:
        return path, "missing"
    for directory in reversed(real.parents):
        if not _allows(directory.stat(), entry.pw_uid, gids, 1):
            return directory, "enter"
    if not _allows(real.stat(), entry.pw_uid, gids, 4):
        return real, "read"
    return None


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def replica_cursor(data_dir: Path) -> int | None:
    """The change-feed cursor the replica holds (read-only), or None when it cannot be read."""
    db = data_dir / DB_NAME
    if not db.is_file():
        return None
    try:
        with contextlib.closing(
            sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            row = conn.execute("SELECT value FROM sync_state WHERE key = 'cursor'").fetchone()
    except sqlite3.Error:
        return None
    return int(row[0]) if row else 0


async def probe_central(
    url: str, creds: Credentials | None, ca_bundle: Path | None, cursor: int
) -> tuple[str | None, str | None, float]:
    """Ask central for changes after `cursor` as this device would (central records the cursor
    a device asks from, so it must be the device's own): (why central did not answer, why it
    refused this device, seconds taken). Without credentials a refusal still means it answered."""
    started = time.monotonic()
    client = None
    unreachable = refused = None
    try:  # the client too: it loads the CA bundle, which may be unreadable or not PEM
        client = CentralClient(url, token=creds.token if creds else None, ca_bundle=ca_bundle)
        await client.changes(cursor, wait_s=0, limit=1)
    except ProtocolMismatch as exc:
        unreachable = f"{exc}; update festgate on this device"
    except CentralRefused as exc:
        refused = f"{exc.error}: {exc.detail}"
    except CentralUnavailable as exc:
        unreachable = str(exc)
    except (OSError, ValueError) as exc:  # an unreadable CA bundle, a malformed URL
        unreachable = f"{type(exc).__name__}: {exc}"
    finally:
        if client is not None:
            await client.aclose()
    return unreachable, refused, time.monotonic() - started


def _config(
    config: Path | None, data_dir: Path | None
) -> tuple[Path | None, DeviceConfig | None, str | None]:
    path = config
    if path is None:
        candidate = (data_dir or DEFAULT_DATA_DIR) / CONFIG_NAME
        path = candidate if candidate.is_file() else None
    if path is None:
        return None, None, None
    try:
        return path, load_device_config(path), None
    except ConfigError as exc:
        return path, None, "; ".join(exc.problems)


async def examine(
    config: Path | None, data_dir: Path | None, system: System = System()
) -> list[Check]:
    """Every check, in the order a site tech fixes things."""
    path, cfg, problem = _config(config, data_dir)
    found = [checks.config(path, problem)]
    where = data_dir or (cfg.device.data_dir if cfg else DEFAULT_DATA_DIR)
    user = service_user(where, system)
    found.append(checks.data_dir(where, DB_NAME, user))
    found.append(checks.free_disk(where, shutil.disk_usage(_existing(where)).free))
    found.append(checks.clock(adjtimex_state(), system.timesync_flag.exists(), system.rtc.exists()))
    if cfg is not None:
        from edge.doctor.parts import needed_groups, needed_libraries, uses_usb_nfc

        groups = member_of(user)
        if groups is None and needed_groups(cfg):
            found.append(
                checks.failed(
                    "groups", f"no user {user} on this machine", "sudo deploy/install-device"
                )
            )
        else:
            found.append(checks.groups(user, groups or set(), needed_groups(cfg)))
        libraries = needed_libraries(cfg)
        ldconfig = ldconfig_text() if libraries else ""
        for name, soname, package, why in libraries:
            found.append(checks.system_library(name, soname, package, why, ldconfig))
        if uses_usb_nfc(cfg):
            modules = _read(system.proc_modules) or ""
            found.append(checks.nfc_modules(modules, _read(system.blacklist)))
    try:
        creds = load_credentials(where)
    except (OSError, ValueError):
        creds = None
    url = (
        str(cfg.central.url) if cfg and cfg.central.url else (creds.central_url if creds else None)
    )
    ca_bundle = cfg.central.ca_bundle if cfg else None
    if ca_bundle is not None and member_of(user) is not None:
        # Root reads any file: the daemon, as its user, may not (then every start fails).
        found.append(checks.ca_bundle(ca_bundle, user, blocked_path(ca_bundle, user)))
    refused = None
    cursor = replica_cursor(where)
    if url is not None:
        # A device whose cursor cannot be read asks without its token: reachability only.
        unreachable, refused, took = await probe_central(
            url, creds if cursor is not None else None, ca_bundle, cursor or 0
        )
        found.append(checks.central(url, unreachable, ca_bundle, took))
    else:
        found.append(checks.central(None, None, None, 0.0))
    if creds is not None and cursor is None:
        found.append(
            checks.failed(
                "enrolled",
                f"credentials present, but the replica in {where} cannot be read: the token "
                "was not tried",
                "fix the data dir (above), then run the doctor again",
            )
        )
    else:
        found.append(checks.enrolment(creds is not None, refused if creds else None, where))
    if cfg is not None:
        from edge.doctor.parts import probe_parts

        for name, kind, problem_of_part in probe_parts(cfg):
            found.append(checks.part(name, kind, problem_of_part))
        if not cfg.readers:
            found.append(
                checks.failed(
                    "readers",
                    "no reader configured: this device cannot scan",
                    f"add a [[readers]] section to {path} (examples in /opt/festgate/examples)",
                )
            )
    return found
