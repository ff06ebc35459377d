"""Each of `festgate doctor`'s checks, as a function of what it looks at (text, paths, numbers):
a `Check` that passed, or failed with one plain line that fixes it."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from config.errors import ConfigError
from edge.datadir import check_private
from edge.humanize import span
from sync.protocol import Paths

KERNEL_NFC_MODULES = ("pn533_usb", "pn533", "port100", "nfc")
BLACKLIST = Path("/etc/modprobe.d/festgate-blacklist.conf")
MIN_FREE_BYTES = 512 * 1024 * 1024  # a festival's journal and replica fit many times over
TIME_ERROR = 5  # adjtimex(2): the kernel's clock is not synchronised


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: what was looked at, what was found, and the fix when it failed."""

    name: str
    ok: bool
    found: str
    fix: str = ""


def passed(name: str, found: str) -> Check:
    """A check that passed."""
    return Check(name, True, found)


def failed(name: str, found: str, fix: str) -> Check:
    """A check that failed, with the one line that fixes it."""
    return Check(name, False, found, fix)


def system_library(name: str, soname: str, package: str, why: str, ldconfig: str) -> Check:
    """A shared library the dynamic linker knows (`ldconfig -p` output)."""
    if any(line.strip().startswith(soname + " ") for line in ldconfig.splitlines()):
        return passed(name, f"{soname} found ({why})")
    return failed(name, f"{soname} missing ({why})", f"sudo apt install {package}")


def groups(user: str, member_of: Iterable[str], needed: dict[str, str]) -> Check:
    """The service user is in the groups its devices belong to (`needed`: group → why)."""
    if not needed:
        return passed("groups", "no part needs a device group")
    missing = sorted(set(needed) - set(member_of))
    if not missing:
        return passed("groups", f"{user} is in {', '.join(sorted(needed))}")
    why = "; ".join(f"{g}: {needed[g]}" for g in missing)
    return failed(
        "groups",
        f"{user} is not in {', '.join(missing)} ({why})",
        f"sudo usermod -aG {','.join(missing)} {user} (then restart festgate)",
    )


def nfc_modules(proc_modules: str, blacklist: str | None) -> Check:
    """No kernel NFC driver holds a USB reader (/proc/modules), and the blacklist keeps it so."""
    loaded = [line.split()[0] for line in proc_modules.splitlines() if line.strip()]
    holding = [m for m in KERNEL_NFC_MODULES if m in loaded]
    if holding:
        return failed(
            "nfc kernel modules",
            f"loaded: {', '.join(holding)} (they take the reader from nfcpy)",
            f"sudo modprobe -r {' '.join(holding)} && sudo cp deploy/modprobe.d/"
            f"festgate-blacklist.conf {BLACKLIST.parent}/",
        )
    listed = {
        line.split()[1] for line in (blacklist or "").splitlines() if line.startswith("blacklist ")
    }
    unlisted = [m for m in KERNEL_NFC_MODULES if m not in listed]
    if unlisted:
        return failed(
            "nfc kernel modules",
            f"none loaded, but {BLACKLIST} does not blacklist {', '.join(unlisted)}",
            f"sudo cp deploy/modprobe.d/festgate-blacklist.conf {BLACKLIST.parent}/",
        )
    return passed("nfc kernel modules", "none loaded; blacklisted for the next boot")


def clock(state: int | None, timesync_flag: bool, has_rtc: bool) -> Check:
    """The clock is synchronised: the kernel's adjtimex state (None: unknown) or timesyncd's
    flag file (/run/systemd/timesync/synchronized). Tickets' validity windows depend on it."""
    if timesync_flag or (state is not None and state != TIME_ERROR):
        return passed("clock", "synchronised (NTP)")
    if not has_rtc:
        return failed(
            "clock",
            "not synchronised, and no real-time clock: after a power cut it restarts wherever "
            "it stopped",
            "sudo apt install fake-hwclock && sudo timedatectl set-ntp true, then wait for "
            "`timedatectl` to say 'System clock synchronized: yes' before the gates open",
        )
    return failed(
        "clock",
        "not synchronised",
        "sudo timedatectl set-ntp true, and check that the NTP server is reachable (`timedatectl "
        "timesync-status`)",
    )


def free_disk(path: Path, free_bytes: int, minimum: int = MIN_FREE_BYTES) -> Check:
    """Enough free space where the journal grows."""
    found = f"{free_bytes / 2**30:.1f} GiB free on {path}"
    if free_bytes >= minimum:
        return passed("free disk", found)
    return failed(
        "free disk",
        found + f" (needs {minimum // 2**20} MiB)",
        f"free space on the filesystem of {path} (`sudo journalctl --vacuum-size=100M`, old "
        "logs and images), or give the device a larger card",
    )


def data_dir(path: Path, db_name: str, service_user: str | None) -> Check:
    """The data dir exists, is private (0700, files 0600) and belongs to the user that runs
    festgate: `service_user` when root asks, else whoever runs this."""
    if not path.is_dir():
        who = f" --user {service_user}" if service_user else ""
        return failed(
            "data dir",
            f"{path} does not exist",
            f"sudo festgate init{who} --central URL --code CODE -d {shlex.quote(str(path))}",
        )
    owner = path.stat().st_uid
    if os.geteuid() == 0 and owner == 0 and service_user not in (None, "root"):
        return failed(
            "data dir",
            f"{path} belongs to root, but festgate runs as {service_user}",
            f"sudo chown -R {service_user}: {shlex.quote(str(path))}",
        )
    try:
        check_private(path, db_name, owner=owner if os.geteuid() == 0 else None)
    except ConfigError as exc:
        problem = exc.problems[0]
        found, _, fix = problem.partition(": fix with ")
        return failed("data dir", f"{path}: {found}", fix or problem)
    return passed("data dir", f"{path}: private (0700, files 0600)")


def enrolment(enrolled: bool, refusal: str | None, data_dir_path: Path) -> Check:
    """The device holds credentials, and central accepts them (`refusal`: why it did not)."""
    where = shlex.quote(str(data_dir_path))
    if not enrolled:
        return failed(
            "enrolled",
            f"no credentials in {data_dir_path}: this device cannot sync",
            f"ask ops for an enrol code, then `sudo festgate init --central URL --code CODE -d "
            f"{where}`",
        )
    if refusal is not None:
        return failed(
            "enrolled",
            f"central refuses this device: {refusal}",
            "ask ops whether it was revoked; if so, enrol it again in a new data dir",
        )
    return passed("enrolled", "central accepts this device's token")


def central(url: str | None, error: str | None, ca_bundle: Path | None, elapsed_s: float) -> Check:
    """Central answered over TLS with the configured CA (`error`: why it did not)."""
    if url is None:
        return failed(
            "central",
            "no central URL (neither the config nor credentials name one)",
            "set [central] url in the config, or enrol with `festgate init --central URL`",
        )
    ca = f"CA {ca_bundle}" if ca_bundle else "the system's CAs"
    if error is None:
        how = f"TLS checked with {ca}" if url.startswith("https:") else "plain HTTP, no TLS"
        return passed("central", f"{url} answered in {span(elapsed_s)}, {how}")
    if "CERTIFICATE" in error.upper() or "SSL" in error.upper():
        fix = (
            "set [central] ca_bundle to the festival's CA (PEM) in the config"
            if ca_bundle is None
            else f"{ca_bundle} is not the CA that signed central's certificate: ask ops for it"
        )
    else:
        fix = f"check the network and the URL: `curl -sv {url}{Paths.OPENAPI}` shows where it fails"
    return failed("central", f"{url} did not answer: {error}", fix)


def ca_bundle(path: Path, user: str, blocked: tuple[Path, str] | None) -> Check:
    """The festival's CA bundle can be read by the user festgate runs as (`blocked`: the
    path that stops it, and how: missing, a directory it cannot enter, a file it cannot read)."""
    if blocked is None:
        return passed("ca bundle", f"{path}: {user} can read it")
    where, how = blocked
    quoted = shlex.quote(str(where))
    if how == "missing":
        return failed(
            "ca bundle",
            f"{path} does not exist",
            f"ask ops for the festival's CA, then `sudo install -m 0644 festival-ca.pem {quoted}`",
        )
    if how == "enter":
        return failed(
            "ca bundle",
            f"{user} cannot enter {where}, so it cannot read {path}",
            f"`sudo chmod o+x {quoted}` (entering lists nothing; each file keeps its own mode)",
        )
    return failed(
        "ca bundle",
        f"{user} cannot read {where}",
        f"`sudo chmod 0644 {quoted}` (a CA certificate is public)",
    )


def part(name: str, kind: str, problem: str | None) -> Check:
    """A configured reader or actuator could be built and opened (`problem`: why not)."""
    if problem is None:
        return passed(f"{kind} {name}", "present (opened, nothing read)")
    # Drivers say "what: how to fix" or "what (why); how to fix" (hardware/faults.py).
    found, sep, fix = problem.rpartition("; ") if "; " in problem else problem.partition(": ")
    if not sep:
        found, fix = problem, f"`festgate hardware test {name}` shows it live"
    return failed(f"{kind} {name}", found, fix)


def config(path: Path | None, problem: str | None) -> Check:
    """The device config loads (`problem`: the first one when it does not)."""
    if path is None:
        return failed(
            "config",
            "no config file",
            "give -c FILE, or enrol first (`festgate init` writes one into the data dir)",
        )
    if problem is not None:
        return failed("config", f"{path}: {problem}", f"fix it; `festgate config check {path}`")
    return passed("config", f"{path} is valid")
