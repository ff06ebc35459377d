"""`festgate-central key`: a festival's ticket signing keys: list, rotate, revoke; and
`festgate-central kek`: the key-encryption key that wraps them at rest (`central.kek`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection
from pydantic import SecretStr

from central import kek, keys
from central.cli_common import FestivalOpt, JsonOpt, actor, emit, fail, run
from central.cli_ops import when
from central.cli_show import listing, on_festival, to_json
from config.central import CentralConfig

app = typer.Typer(help="ticket signing keys", no_args_is_help=True)
kek_app = typer.Typer(
    help="the key-encryption key that wraps signing keys at rest", no_args_is_help=True
)


@app.command("list")
def key_list(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """List signing keys; the newest unrevoked one signs new codes."""
    found = run(ctx, on_festival(festival, keys.list_keys))
    listing(
        as_json, "keys", found, ("key", "created", "state"),
        lambda k: (k.key_id, when(k.created_at),
                   "revoked" if k.revoked else "signs" if k.signing else "verifies"),
    )  # fmt: skip


@app.command("rotate")
def key_rotate(ctx: typer.Context, festival: FestivalOpt, as_json: JsonOpt = False) -> None:
    """Add a new signing key; older keys still verify until revoked."""
    key = run(ctx, on_festival(festival, keys.rotate, actor=actor()))
    emit(as_json, to_json(key), f"signing key {key.key_id} now signs new codes")


@app.command("revoke")
def key_revoke(
    ctx: typer.Context,
    key_id: Annotated[int, typer.Argument(help="the key's number (key list)", min=0)],
    festival: FestivalOpt,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: devices refuse every code it signed (the key that signs is replaced)."""
    done = run(ctx, on_festival(festival, keys.revoke, key_id, actor=actor()))
    rotated = f"; new key {done.signing.key_id} signs new codes" if done.rotated else ""
    emit(as_json, to_json(done), f"signing key {key_id} revoked{rotated}")


@kek_app.command("new")
def kek_new() -> None:
    """Print a new random key-encryption key (base64): `festgate-central kek new > FILE`."""
    typer.echo(kek.Kek.generate().text())


@kek_app.command("rotate")
def kek_rotate(
    ctx: typer.Context,
    new_kek_file: Annotated[
        Path, typer.Option(help="file of the new KEK (`festgate-central kek new > FILE`)")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Re-wrap every signing key with the KEK in --new-kek-file, in one transaction; then
    point kek_file at that file (the old KEK no longer opens them)."""
    try:
        new = kek.Kek.read(new_kek_file)
    except kek.KekError as exc:
        fail(str(exc), "kek_unusable", status=2, as_json=as_json)

    async def work(conn: AsyncConnection[Any]) -> int:
        # `run` installed central's KEK (the configured one, or a trial's).
        return await keys.rewrap_keys(conn, kek.active(), new)

    changed = run(ctx, work)
    emit(
        as_json,
        {"rewrapped": changed, "kek_id": new.kek_id},
        f"{changed} signing keys now wrapped by KEK {new.kek_id}; set kek_file to {new_kek_file}",
    )


def serving_kek(config: CentralConfig, dsn: str) -> SecretStr:
    """The KEK `serve` hands its app (a trial's generated one without a DSN), checked against
    the stored keys, plain ones wrapped; no KEK or a wrong one stops `serve` in one line."""

    async def check(the_kek: kek.Kek) -> None:
        async with await AsyncConnection.connect(dsn) as conn:
            await keys.check_keys(conn, the_kek)

    try:
        found = kek.resolve(config)
        if found is None:
            raise kek.KekError(
                f"central cannot sign without a key-encryption key: {kek.HOW_TO_MAKE}"
            )
        asyncio.run(check(found))
    except kek.KekError as exc:
        fail(str(exc), "kek_unusable", status=2)
    return SecretStr(found.text())
