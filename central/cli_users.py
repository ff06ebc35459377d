"""`festgate-central user`: ops users and their tokens: list, add (token shown once), revoke."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from psycopg import AsyncConnection

from central import users
from central.auth import OpsRole
from central.cli_common import JsonOpt, actor, emit, fail, festival_id, run
from central.cli_ops import when
from central.cli_show import listing, to_json

app = typer.Typer(help="ops users", no_args_is_help=True)
FestivalFilter = Annotated[
    str | None, typer.Option("--festival", "-f", help="festival slug or id (default: all)")
]


@app.command("list")
def user_list(
    ctx: typer.Context, festival: FestivalFilter = None, as_json: JsonOpt = False
) -> None:
    """List ops users (never their tokens)."""

    async def work(conn: AsyncConnection[Any]) -> list[users.UserView]:
        scope = await festival_id(conn, festival) if festival else None
        return await users.list_users(conn, scope)

    listing(
        as_json, "users", run(ctx, work), ("user", "role", "festival", "added", "revoked"),
        lambda u: (u.name, u.role, u.festival or "(all)", when(u.created_at),
                   when(u.revoked_at) if u.revoked_at else ""),
    )  # fmt: skip


@app.command("add")
def user_add(
    ctx: typer.Context,
    name: str,
    role: Annotated[str, typer.Option(help=", ".join(OpsRole))],
    festival: FestivalFilter = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an ops user and print its token once (only its sha256 is stored)."""
    known = {r.value: r for r in OpsRole}
    if role.upper() not in known:
        fail(
            f"unknown role {role.upper()!r} (one of {', '.join(OpsRole)})",
            "bad_role",
            as_json=as_json,
        )
    kind = known[role.upper()]

    async def work(conn: AsyncConnection[Any]) -> users.NewUser:
        fid = await festival_id(conn, festival) if festival else None
        return await users.add_user(conn, name=name, role=kind, festival_id=fid, actor=actor())

    user = run(ctx, work)
    emit(as_json, to_json(user), f"user {user.name} ({kind}) token, shown once:\n{user.token}")


@app.command("revoke")
def user_revoke(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="user name or id")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke an ops user: its token is refused from its next request on."""

    async def work(conn: AsyncConnection[Any]) -> users.UserView:
        return await users.revoke_user(conn, user, actor=actor())

    done = run(ctx, work)
    emit(as_json, to_json(done), f"user {done.name} revoked")
