"""The festgate-central CLI against a real database (typer's CliRunner, in process)."""

from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from central.auth import token_hash
from central.cli import app
from sync import ticketcode

runner = CliRunner()
VENDOR = "6f1c1a52-7d1e-4c47-9a5e-0c7f3f2d9b10"


def _ok(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _festival(dsn: str, slug: str = "rock-fest") -> dict[str, Any]:
    out: dict[str, Any] = _ok(
        "--dsn", dsn, "festival", "create", "Rock Fest", "--slug", slug, "--json"
    )
    return out


def test_migrate_and_festival_create(pg_dsn: str) -> None:
    assert _ok("--dsn", pg_dsn, "migrate", "--json")["revision"]
    out = _festival(pg_dsn)
    assert out["slug"] == "rock-fest"
    assert out["key_id"] == 1
    again = runner.invoke(app, ["--dsn", pg_dsn, "festival", "create", "X", "--slug", "rock-fest"])
    assert again.exit_code == 1
    assert "exists" in again.output


def test_import_signed_tickets_prints_verifiable_codes(pg_dsn: str, tmp_path: Path) -> None:
    fest = _festival(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "INSERT INTO ticket_category (id, festival_id, name, type) "
            "VALUES (gen_random_uuid(), %s, 'Day', 'STANDARD')",
            (fest["id"],),
        )
    file = tmp_path / "t.csv"
    file.write_text("category,holder_ref\nDay,a\nDay,b\n", encoding="utf-8")
    out = _ok(
        "--dsn",
        pg_dsn,
        "import",
        "tickets",
        str(file),
        "--festival",
        "rock-fest",
        "--sign",
        "--json",
    )
    assert out["imported"] == 2
    with psycopg.connect(pg_dsn) as conn:
        (public,) = conn.execute("SELECT public_key FROM signing_key").fetchone() or (b"",)
    for t in out["tickets"]:
        assert ticketcode.decode(t["code"]).verify(bytes(public))
    csv_out = tmp_path / "codes.csv"
    _ok(
        "--dsn",
        pg_dsn,
        "import",
        "tickets",
        str(file),
        "-f",
        "rock-fest",
        "--sign",
        "--out",
        str(csv_out),
        "--json",
    )
    with csv_out.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [(r["holder_ref"], bool(r["code"])) for r in written] == [("a", True), ("b", True)]
    assert all(ticketcode.decode(r["code"]).ticket_id == uuid.UUID(r["ticket_id"]) for r in written)


def test_bad_import_row_exits_1_with_row_and_reason(pg_dsn: str, tmp_path: Path) -> None:
    _festival(pg_dsn)
    file = tmp_path / "w.csv"
    file.write_text("tag_uid,balance\n04a1b2c3,100\nnot-hex,5\n", encoding="utf-8")
    result = runner.invoke(
        app, ["--dsn", pg_dsn, "import", "wristbands", str(file), "-f", "rock-fest"]
    )
    assert result.exit_code == 1
    assert "row 2: tag_uid 'not-hex' is not a tag UID" in result.output
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM cashless_account").fetchone() == (0,)


def test_import_zones_vendors_wristbands_and_rotate_key(pg_dsn: str, tmp_path: Path) -> None:
    _festival(pg_dsn)
    zones = tmp_path / "z.json"
    zones.write_text(
        json.dumps([{"name": "Main", "capacity": 100}, {"name": "VIP", "required_types": "VIP"}])
    )
    vendors = tmp_path / "v.csv"
    vendors.write_text("vendor,type,product,price\nBar 1,BAR,Beer,450\nBar 1,,Water,200\n")
    bands = tmp_path / "b.csv"
    bands.write_text("tag_uid,balance\n04:a1:b2:c3,1000\n")
    assert _ok("--dsn", pg_dsn, "import", "zones", str(zones), "-f", "rock-fest", "--json") == {
        "imported": 2
    }
    assert _ok("--dsn", pg_dsn, "import", "vendors", str(vendors), "-f", "rock-fest", "--json") == {
        "vendors": 1,
        "products": 2,
    }
    assert _ok(
        "--dsn", pg_dsn, "import", "wristbands", str(bands), "-f", "rock-fest", "--json"
    ) == {"imported": 1}
    assert _ok("--dsn", pg_dsn, "key", "rotate", "-f", "rock-fest", "--json")["key_id"] == 2


def test_user_add_prints_token_once_and_stores_its_hash(pg_dsn: str) -> None:
    _festival(pg_dsn)
    out = _ok(
        "--dsn",
        pg_dsn,
        "user",
        "add",
        "ana",
        "--role",
        "cashier",
        "--festival",
        "rock-fest",
        "--json",
    )
    assert out["role"] == "CASHIER"
    assert out["token"].startswith("fgo_")
    with psycopg.connect(pg_dsn) as conn:
        stored = conn.execute("SELECT token_hash FROM ops_user").fetchall()
    assert stored == [(token_hash(out["token"]),)]
    bad = runner.invoke(app, ["--dsn", pg_dsn, "user", "add", "bob", "--role", "ROOT"])
    assert bad.exit_code == 1


def test_unknown_festival_is_a_clear_error(pg_dsn: str) -> None:
    result = runner.invoke(app, ["--dsn", pg_dsn, "key", "rotate", "-f", "nope"])
    assert result.exit_code == 1
    assert "no festival nope" in result.output


def test_enroll_code_wires_the_sync_side(pg_dsn: str) -> None:
    fest = _festival(pg_dsn)
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(
            "INSERT INTO vendor (id, festival_id, name) VALUES (%s, %s, 'Bar')",
            (VENDOR, fest["id"]),
        )
    out = _ok(
        "--dsn",
        pg_dsn,
        "enroll-code",
        "-f",
        "rock-fest",
        "--role",
        "bar",
        "--vendor",
        VENDOR,
        "--json",
    )
    assert out["code"]
    assert out["ttl_s"] == 900


def test_embedded_database_when_no_dsn(pg_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FESTGATE_CENTRAL_DSN", raising=False)
    data_dir = pg_home / "central"
    assert _ok("--data-dir", str(data_dir), "migrate", "--json")["revision"]
    assert (data_dir / "PG_VERSION").exists()


def test_category_then_signed_import_then_enrol_code_by_names(pg_dsn: str, tmp_path: Path) -> None:
    fest = _festival(pg_dsn, slug="cat-fest")
    cat = _ok("--dsn", pg_dsn, "festival", "category", "VIP Weekend", "-f", "cat-fest",
              "--type", "VIP", "--price", "30000", "--json")  # fmt: skip
    assert cat["type"] == "VIP"
    tickets = tmp_path / "t.csv"
    tickets.write_text("category,holder_ref\nVIP Weekend,a\n", encoding="utf-8")
    assert _ok("--dsn", pg_dsn, "import", "tickets", str(tickets), "-f", "cat-fest",
               "--sign", "--json")["imported"] == 1  # fmt: skip
    zones = tmp_path / "z.csv"
    zones.write_text("name,capacity,required_types,reentry\nVIP Deck,300,VIP,true\n")
    _ok("--dsn", pg_dsn, "import", "zones", str(zones), "-f", "cat-fest", "--json")
    code = _ok("--dsn", pg_dsn, "enroll-code", "-f", "cat-fest", "--role", "gate",
               "--zone", "vip deck", "--json")["code"]  # fmt: skip
    assert len(code) >= 4
    missing = runner.invoke(
        app, ["--dsn", pg_dsn, "enroll-code", "-f", "cat-fest", "--role", "gate", "--zone", "Moon"]
    )
    assert missing.exit_code == 1 and "no zone 'Moon' in this festival" in missing.output
    assert fest["slug"] == "cat-fest"


def test_weak_outside_codes_refused_accepted_with_a_warning_and_shown(
    pg_dsn: str, tmp_path: Path
) -> None:
    _festival(pg_dsn)
    _festival(pg_dsn, slug="safe-fest")
    for slug in ("rock-fest", "safe-fest"):
        _ok("--dsn", pg_dsn, "festival", "category", "Day", "-f", slug, "--json")
    weak = tmp_path / "outside.csv"
    weak.write_text(
        "category,code\n" + "".join(f"Day,{i:06d}\n" for i in range(7, 1_000_000, 20011))
    )
    args = ["--dsn", pg_dsn, "import", "tickets", str(weak), "-f", "rock-fest"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    said = " ".join(refused.stderr.split())  # rich wraps at the terminal's width
    assert "row 1: outside code too weak to survive offline guessing" in said
    assert "about 19.9 bits (6 characters of 0-9)" in said and "--accept-weak-codes" in said
    assert _ok("--dsn", pg_dsn, "festival", "show", "rock-fest", "--json")["tickets"] == 0

    accepted = runner.invoke(app, [*args, "--accept-weak-codes", "--json"])
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stderr.startswith("warning: accepted weak outside codes")
    assert accepted.stderr.count("\n") == 1 and "stolen gate" in accepted.stderr
    assert json.loads(accepted.stdout) == {"imported": 50, "code_bits_min": 19, "weak_codes": True}

    strong = tmp_path / "strong.csv"
    strong.write_text(
        "category,code\nDay,JBSWY3DPEHPK3PXPJBSWY3DPEH\nDay,MZXW6YTBOI3DQNZRGQYTKMBXGE\n"
    )
    quiet = runner.invoke(
        app, ["--dsn", pg_dsn, "import", "tickets", str(strong), "-f", "safe-fest"]
    )
    assert quiet.exit_code == 0 and quiet.stderr == ""

    listed = {f["slug"]: f for f in _ok("--dsn", pg_dsn, "festival", "list", "--json")["festivals"]}
    assert listed["rock-fest"]["outside_codes"] | {"effective_bits": None} == {
        "codes": 50, "weak": 50, "unrated": 0, "lowest_bits": 19, "effective_bits": None,
        "needed_bits": 70,
    }  # fmt: skip
    assert listed["safe-fest"]["outside_codes"]["weak"] == 0
    table = runner.invoke(app, ["--dsn", pg_dsn, "festival", "list"])
    assert table.exit_code == 0 and "rock-fest" in table.stdout
    shown = runner.invoke(app, ["--dsn", pg_dsn, "festival", "show", "rock-fest"])
    assert "50 weak outside codes" in shown.stdout
