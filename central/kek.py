"""The key-encryption key (KEK) that wraps festivals' private signing keys at rest.

The KEK never touches the database: central reads it from ``kek_file`` or ``kek``
(``FESTGATE_CENTRAL_KEK_FILE`` / ``FESTGATE_CENTRAL_KEK``: 32 bytes, base64). Each private
key is stored as AES-256-GCM ciphertext with the signing key's identity as associated data
(a wrapped key copied onto another row does not open) and the KEK's id beside it, so a
rotation (`festgate-central kek rotate`) finds every key a KEK wrapped. A database backup
alone therefore cannot mint tickets.

A trial (embedded PostgreSQL, no DSN) gets a KEK generated beside its cluster (0600, once,
and says so); with a DSN central signs nothing until one is configured.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from central.errors import CentralError
from config.central import CentralConfig

KEK_BYTES = 32
_NONCE = 12
HOW_TO_MAKE = (
    "make one with `festgate-central kek new > /etc/festgate/kek` (mode 0600, owned by the"
    " service user) and set kek_file (FESTGATE_CENTRAL_KEK_FILE) to it"
)


class KekError(CentralError):
    """No KEK, a malformed one, or one that does not open a stored key: one line to show
    (over the API, 503 ``kek_unusable``: central cannot sign until its KEK is right)."""

    status = 503
    code = "kek_unusable"


@dataclass(frozen=True, slots=True)
class Kek:
    """A key-encryption key and its id (a hash of it: safe to store beside what it wraps)."""

    key: bytes = b""

    @property
    def kek_id(self) -> str:
        """Stable short id of this KEK, stored with every key it wraps."""
        return hashlib.sha256(b"festgate-kek-id\0" + self.key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> Kek:
        """A fresh random KEK."""
        return cls(secrets.token_bytes(KEK_BYTES))

    @classmethod
    def parse(cls, text: str, source: str) -> Kek:
        """A KEK from its base64 text (one line); KekError names `source` when malformed."""
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEK_BYTES:
            raise KekError(
                f"{source} is not a key-encryption key (32 bytes, base64); {HOW_TO_MAKE}"
            )
        return cls(key)

    @classmethod
    def read(cls, path: Path) -> Kek:
        """The KEK in file `path`; KekError (one line) if it is missing or malformed."""
        try:
            text = path.expanduser().read_text()
        except OSError as exc:
            raise KekError(f"cannot read the key-encryption key {path}: {exc.strerror}") from None
        return cls.parse(text, str(path))

    def text(self) -> str:
        """The base64 form `parse` reads."""
        return base64.b64encode(self.key).decode()

    def wrap(self, secret: bytes, aad: bytes) -> bytes:
        """`secret` encrypted under this KEK, bound to `aad` (nonce + ciphertext + tag)."""
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, secret, aad)

    def unwrap(self, blob: bytes, aad: bytes, what: str) -> bytes:
        """What `wrap` encrypted; KekError (naming `what`) when this KEK does not open it."""
        try:
            return AESGCM(self.key).decrypt(blob[:_NONCE], blob[_NONCE:], aad)
        except (InvalidTag, ValueError):
            raise KekError(
                f"{what} does not open with key-encryption key {self.kek_id}: wrong KEK"
            ) from None


def from_config(config: CentralConfig) -> Kek | None:
    """The KEK the settings name (``kek``, else ``kek_file``), or None when they name none."""
    if config.kek is not None and config.kek.get_secret_value():
        return Kek.parse(config.kek.get_secret_value(), "FESTGATE_CENTRAL_KEK (kek)")
    if config.kek_file is not None:
        return Kek.read(config.kek_file)
    return None


def trial_file(config: CentralConfig) -> Path:
    """Where a trial's generated KEK lives: beside the embedded cluster, not inside it."""
    data_dir = config.data_dir.expanduser().resolve()
    return data_dir.with_name(data_dir.name + ".kek")


def for_trial(config: CentralConfig) -> Path:
    """The trial KEK's file, generated (0600, saying so on stderr) if it does not exist."""
    path = trial_file(config)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(Kek.generate().text() + "\n")
        print(
            f"note: generated a key-encryption key for this trial at {path};"
            " a production central (with a DSN) needs its own: " + HOW_TO_MAKE,
            file=sys.stderr,
        )
    return path


def resolve(config: CentralConfig) -> Kek | None:
    """The KEK central uses with these settings: the configured one; without a DSN (a trial)
    the generated one; with a DSN and none configured, None (it then signs nothing)."""
    found = from_config(config)
    if found is None and (config.dsn is None or not config.dsn.get_secret_value()):
        found = Kek.read(for_trial(config))
    return found


# The process's KEK (one per process: every connection of it signs with the same one).
_installed: dict[str, Kek] = {}


def install(kek: Kek | None) -> None:
    """Make `kek` the one this process wraps and unwraps signing keys with (None: forget)."""
    _installed.clear()
    if kek is not None:
        _installed["kek"] = kek


def active() -> Kek:
    """The installed KEK, else the one in $FESTGATE_CENTRAL_KEK; KekError (one line saying
    how to make one) when there is none."""
    if not _installed and os.environ.get("FESTGATE_CENTRAL_KEK"):
        install(Kek.parse(os.environ["FESTGATE_CENTRAL_KEK"], "FESTGATE_CENTRAL_KEK"))
    if not _installed:
        raise KekError(f"central has no key-encryption key to sign with: {HOW_TO_MAKE}")
    return _installed["kek"]
