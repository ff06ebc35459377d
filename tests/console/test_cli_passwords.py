"""Issue 17: console passwords and sessions from the CLI (typer's CliRunner, real database)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
from psycopg import AsyncConnection
from typer.testing import CliRunner

from central import users
from central.cli import app
from central.console import sessions

runner = CliRunner()
PASSWORD = "a long enough secret"


def _ok(*args: str, stdin: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


async def _login(dsn: str) -> sessions.NewSession:
    async with await AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await sessions.login(conn, "cy", PASSWORD, ip="192.0.2.7", user_agent="tablet")


async def _session_of(dsn: str, token: str) -> sessions.Session | None:
    async with await AsyncConnection.connect(dsn) as conn:
        return await sessions.session_of(conn, token)


def _hash(dsn: str, name: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        rec = conn.execute("SELECT password_hash FROM ops_user WHERE name = %s", (name,)).fetchone()
    assert rec is not None
    return rec[0]  # type: ignore[no-any-return]


def test_a_password_from_stdin_is_stored_as_argon2_and_checks(pg_dsn: str) -> None:
    _ok("--dsn", pg_dsn, "user", "add", "ada", "--role", "ADMIN", "--password-stdin", "--json",
        stdin=PASSWORD + "\n")  # fmt: skip
    stored = _hash(pg_dsn, "ada")
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert users.verify_password(stored, PASSWORD)
    assert not users.verify_password(stored, PASSWORD + "!")
    # `user password` replaces it (typed twice at a prompt here).
    new = "another long secret"
    result = runner.invoke(app, ["--dsn", pg_dsn, "user", "password", "ada"],
                           input=f"{new}\n{new}\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert users.verify_password(_hash(pg_dsn, "ada"), new)
    assert not users.verify_password(_hash(pg_dsn, "ada"), PASSWORD)


def test_a_short_password_is_refused_before_anything_is_stored(pg_dsn: str) -> None:
    _ok("--dsn", pg_dsn, "user", "add", "bob", "--role", "STAFF", "--json")
    result = runner.invoke(
        app, ["--dsn", pg_dsn, "user", "password", "bob", "--password-stdin", "--json"],
        input="short\n",
    )  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["error"] == "invalid_request"
    assert _hash(pg_dsn, "bob") is None


def test_sessions_are_listed_and_ended_from_the_cli(pg_dsn: str) -> None:
    _ok("--dsn", pg_dsn, "user", "add", "cy", "--role", "SECURITY", "--password-stdin",
        "--json", stdin=PASSWORD + "\n")  # fmt: skip
    made = asyncio.run(_login(pg_dsn))
    (listed,) = _ok("--dsn", pg_dsn, "user", "sessions", "--json")["sessions"]
    assert (listed["user"], listed["ip"], listed["user_agent"]) == ("cy", "192.0.2.7", "tablet")
    assert listed["id"] == str(made.session.id) and listed["revoked_at"] is None
    ended = _ok("--dsn", pg_dsn, "user", "end-session", listed["id"][:8], "--json")
    assert ended["revoked_at"] is not None
    assert _ok("--dsn", pg_dsn, "user", "sessions", "--json")["sessions"] == []
    assert len(_ok("--dsn", pg_dsn, "user", "sessions", "--all", "--json")["sessions"]) == 1
    assert asyncio.run(_session_of(pg_dsn, made.token)) is None
    again = runner.invoke(app, ["--dsn", pg_dsn, "user", "end-session", listed["id"]])
    assert again.exit_code == 1 and "no single live session" in again.output
    # A new password ends the user's sessions too.
    made = asyncio.run(_login(pg_dsn))
    _ok("--dsn", pg_dsn, "user", "password", "cy", "--password-stdin", "--json",
        stdin="a brand new secret\n")  # fmt: skip
    assert asyncio.run(_session_of(pg_dsn, made.token)) is None
