"""`festgate-central key`: a festival's ticket signing keys: list, rotate, revoke."""

from __future__ import annotations

from typing import Annotated

import typer

from central import keys
from central.cli_common import FestivalOpt, JsonOpt, actor, emit, run
from central.cli_ops import when
from central.cli_show import listing, on_festival, to_json

app = typer.Typer(help="ticket signing keys", no_args_is_help=True)


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
