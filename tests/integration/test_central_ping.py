"""`festgate-central ping`: a script that starts central can wait until it answers."""

from __future__ import annotations

import json
import socket

from typer.testing import CliRunner

from central.cli import app
from tests.integration.conftest import CentralServer

runner = CliRunner()


def test_ping_answers_for_a_running_central_and_fails_for_a_closed_port(
    central: CentralServer,
) -> None:
    up = runner.invoke(app, ["ping", "--url", central.url, "--json"])
    assert up.exit_code == 0, up.output
    assert json.loads(up.stdout) == {"url": central.url, "version": "1"}
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
        down = runner.invoke(app, ["ping", "--url", closed, "--wait", "0.5", "--json"])
    assert down.exit_code == 1
    assert json.loads(down.stdout.splitlines()[0])["error"] == "unreachable"
