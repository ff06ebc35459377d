"""Signing keys at rest (central.kek): wrapped by a key-encryption key that is never in the
database, so a real `pg_dump` holds no private key; rotation re-wraps; a wrong or missing KEK
is one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from psycopg import AsyncConnection

from central import kek, keys
from central.sample import create_sample_festival
from sync import ticketcode
from sync.vocab import TicketType
from tests.pg_tools import on_db as _db
from tests.pg_tools import pg_program


@pytest.fixture
def kek1() -> Iterator[kek.Kek]:
    """A KEK installed in this process for the test, forgotten afterwards."""
    k = kek.Kek.generate()
    kek.install(k)
    try:
        yield k
    finally:
        kek.install(None)


def _raw(key: keys.SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _private(dsn: str, festival_id: uuid.UUID) -> bytes:
    async def read(conn: AsyncConnection[Any]) -> keys.SigningKey:
        return await keys.current_key(conn, festival_id)

    return _raw(_db(dsn, read))


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FESTGATE_CENTRAL_")}
    return subprocess.run(
        [sys.executable, "-m", "central.cli", *args],
        env=clean | env,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_dump_holds_no_private_key_and_signing_works(
    pg_dsn: str, kek1: kek.Kek, tmp_path: Path
) -> None:
    fest = _db(pg_dsn, lambda c: create_sample_festival(c, signed_tickets=3, wristbands=0))
    key = _db(pg_dsn, lambda c: keys.current_key(c, fest.festival_id))
    raw = _raw(key)
    code = keys.sign(
        key, festival_id=fest.festival_id, ticket_id=uuid.uuid4(),
        ticket_type=TicketType.STANDARD, code_version=1, valid_from=None, valid_until=None,
    )  # fmt: skip
    assert ticketcode.public_bytes(key.private_key) == fest.public_key
    assert code and fest.tickets

    dump = subprocess.run(
        [pg_program("pg_dump", pg_dsn), "--format=plain", "--data-only", pg_dsn],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert b"COPY public.signing_key" in dump and kek1.kek_id.encode() in dump
    assert raw.hex().encode() not in dump and raw not in dump
    custom = tmp_path / "central.dump"
    subprocess.run([pg_program("pg_dump", pg_dsn), "-Fc", "-Z0", "-f", custom, pg_dsn], check=True)
    assert raw not in custom.read_bytes() and raw.hex().encode() not in custom.read_bytes()


def test_rotation_rewraps_every_key_in_one_go(pg_dsn: str, kek1: kek.Kek, tmp_path: Path) -> None:
    fest = _db(pg_dsn, lambda c: create_sample_festival(c, signed_tickets=1, wristbands=0))
    other = _db(pg_dsn, lambda c: create_sample_festival(c, slug="other", signed_tickets=1))
    _db(pg_dsn, lambda c: keys.rotate(c, fest.festival_id, actor="test"))
    before = {f: _private(pg_dsn, f) for f in (fest.festival_id, other.festival_id)}
    new = kek.Kek.generate()
    new_file = tmp_path / "kek.new"
    new_file.write_text(new.text() + "\n")

    done = _cli(
        "kek", "rotate", "--new-kek-file", str(new_file), "--json",
        env={"FESTGATE_CENTRAL_DSN": pg_dsn, "FESTGATE_CENTRAL_KEK": kek1.text()},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"rewrapped": 3' in done.stdout and new.kek_id in done.stdout

    # The old KEK no longer opens them: one line naming both ids.
    with pytest.raises(kek.KekError, match=f"wrapped by key-encryption key {new.kek_id}"):
        _db(pg_dsn, lambda c: keys.current_key(c, fest.festival_id))
    # Nor does it wrap new keys beside them (a central not restarted after the rotation).
    with pytest.raises(kek.KekError, match="restart central after `kek rotate`"):
        _db(pg_dsn, lambda c: keys.rotate(c, fest.festival_id, actor="test"))
    kek.install(new)
    after = {f: _private(pg_dsn, f) for f in before}
    assert after == before


def test_a_wrong_kek_is_one_line(pg_dsn: str, kek1: kek.Kek, tmp_path: Path) -> None:
    fest = _db(pg_dsn, lambda c: create_sample_festival(c, signed_tickets=1, wristbands=0))
    wrong = kek.Kek.generate().text()
    new_file = tmp_path / "kek.new"
    new_file.write_text(kek.Kek.generate().text())
    env = {"FESTGATE_CENTRAL_DSN": pg_dsn, "FESTGATE_CENTRAL_KEK": wrong}

    line = _one_line_error(_cli("kek", "rotate", "--new-kek-file", str(new_file), env=env))
    assert f"wrapped by key-encryption key {kek1.kek_id}" in line and "wrong KEK" in line
    line = _one_line_error(_cli("serve", "--port", "1", env=env))
    assert "wrong KEK" in line
    env["FESTGATE_CENTRAL_KEK"] = "not base64 at all"
    assert "not a key-encryption key" in _one_line_error(_cli("serve", "--port", "1", env=env))
    # Nothing changed: the right KEK still opens the key.
    assert _db(pg_dsn, lambda c: keys.current_key(c, fest.festival_id)).key_id == fest.key_id


def test_with_a_dsn_and_no_kek_central_refuses_to_sign(pg_dsn: str) -> None:
    line = _one_line_error(_cli("serve", "--port", "1", env={"FESTGATE_CENTRAL_DSN": pg_dsn}))
    assert "festgate-central kek new > /etc/festgate/kek" in line
    made = _cli(
        "festival", "create", "Fest", "--slug", "fest", env={"FESTGATE_CENTRAL_DSN": pg_dsn}
    )
    assert "festgate-central kek new" in _one_line_error(made)

    async def festivals(conn: AsyncConnection[Any]) -> Any:
        cur = await conn.execute("SELECT count(*) FROM festival")
        return await cur.fetchone()

    assert _db(pg_dsn, festivals) == (0,)  # the refused create stored nothing


def test_plain_keys_from_before_are_wrapped_when_central_starts(pg_dsn: str, kek1: kek.Kek) -> None:
    fest = _db(pg_dsn, lambda c: create_sample_festival(c, signed_tickets=1, wristbands=0))
    raw = _raw(_db(pg_dsn, lambda c: keys.current_key(c, fest.festival_id)))
    # A key as stored before revision 0011: plain, nothing wrapped.
    plain = "UPDATE signing_key SET private_key = %s, wrapped_key = NULL, kek_id = NULL"
    _db(pg_dsn, lambda c: c.execute(plain, (raw,)))
    assert _db(pg_dsn, lambda c: keys.check_keys(c, kek1)) == 1

    async def stored(conn: AsyncConnection[Any]) -> tuple[Any, ...]:
        cur = await conn.execute("SELECT private_key, kek_id FROM signing_key")
        rec = await cur.fetchone()
        assert rec is not None
        return tuple(rec)

    assert _db(pg_dsn, stored) == (None, kek1.kek_id)
    assert _raw(_db(pg_dsn, lambda c: keys.current_key(c, fest.festival_id))) == raw
    assert _db(pg_dsn, lambda c: keys.check_keys(c, kek1)) == 0


def test_a_trial_generates_its_kek_beside_the_cluster(pg_home: Path) -> None:
    data = pg_home / "central"
    env = {"FESTGATE_CENTRAL_DATA_DIR": str(data)}
    assert _cli("migrate", env=env).returncode == 0
    made = _cli("festival", "create", "Trial", "--slug", "trial", env=env)
    assert made.returncode == 0, made.stderr
    kek_file = pg_home / "central.kek"
    assert f"generated a key-encryption key for this trial at {kek_file}" in made.stderr
    assert kek_file.stat().st_mode & 0o777 == 0o600
    kek.Kek.read(kek_file)  # well formed
    again = _cli("festival", "category", "Day", "-f", "trial", "--type", "STANDARD", env=env)
    assert again.returncode == 0 and "generated" not in again.stderr
