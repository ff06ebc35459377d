"""A device installed by deploy/install-device into a temporary root, once per test run."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# An account every Debian has, so the tests can check ownership without creating a user.
SERVICE_USER = "nobody"
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="session")
def installed() -> Iterator[Path]:
    """The root of a bar installed as a site tech would (`--role bar`), as `nobody`, with
    Debian's own python3 (a device's; the service user can read it, unlike a root-only pyenv)."""
    with tempfile.TemporaryDirectory(prefix="festgate-root-") as root:
        Path(root).chmod(0o755)  # a root directory, as / is: the service user passes through
        subprocess.run(
            [str(ROOT / "deploy/install-device"), "--root", root, "--role", "bar",
             "--user", SERVICE_USER, "--python", SYSTEM_PYTHON],
            check=True, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        yield Path(root)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the service user can enter (pytest's own tmp dirs are root's only)."""
    with tempfile.TemporaryDirectory(prefix="festgate-open-") as path:
        Path(path).chmod(0o755)
        yield Path(path)


@pytest.fixture
def cli(installed: Path) -> list[str]:
    """The installed `festgate`: the service user can read its Python and its packages."""
    return [str(installed / "opt/festgate/venv/bin/festgate")]
