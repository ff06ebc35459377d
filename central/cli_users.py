"""`festgate-central user`: ops users and their tokens: list, add (token shown once), revoke;
their console passwords and sessions: password, sessions, end-session."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from psycopg import AsyncConnection

from central import users
from central.auth import OpsRole
from central.cli_common import JsonOpt, actor, emit, fail, festival_id, run
from central.cli_ops import when
from central.cli_show import listing, to_json
from central.console import sessions
from central.errors import CatalogError

app = typer.Typer(help="ops users", no_args_is_help=True)
FestivalFilter = Annotated[
    str | None, typer.Option("--festival", "-f", help="festival slug or id (default: all)")
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="read the console password from stdin's first line (no prompt)"
    ),
]


def read_password(from_stdin: bool, *, as_json: bool) -> str:
    """A new console password: stdin's first line, or typed twice at a hidden prompt;
    refused here (before any database work) when too short or too long."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("console password", hide_input=True, confirmation_prompt=True)
    try:
        users.check_password_rules(password)
    except CatalogError as exc:
        fail(str(exc), "invalid_request", as_json=as_json)
    return password


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
    password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:
    """Add an ops user and print its token once (only its sha256 is stored); with
    --password-stdin it may also log in to the console (`user password` gives one later)."""
    known = {r.value: r for r in OpsRole}
    if role.upper() not in known:
        fail(
            f"unknown role {role.upper()!r} (one of {', '.join(OpsRole)})",
            "bad_role",
            as_json=as_json,
        )
    kind = known[role.upper()]
    password = read_password(True, as_json=as_json) if password_stdin else None

    async def work(conn: AsyncConnection[Any]) -> users.NewUser:
        fid = await festival_id(conn, festival) if festival else None
        new = await users.add_user(conn, name=name, role=kind, festival_id=fid, actor=actor())
        if password is not None:
            await users.set_password(conn, str(new.id), password, actor=actor())
        return new

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


@app.command("password")
def user_password(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="user name or id")],
    password_stdin: PasswordStdin = False,
    as_json: JsonOpt = False,
) -> None:
    """Set a user's console password (prompted twice, or from stdin); its open console
    sessions end."""
    password = read_password(password_stdin, as_json=as_json)

    async def work(conn: AsyncConnection[Any]) -> users.UserView:
        return await users.set_password(conn, user, password, actor=actor())

    done = run(ctx, work)
    emit(as_json, to_json(done), f"user {done.name} may log in to the console at /ops")


@app.command("sessions")
def user_sessions(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Argument(help="only this user's (name)")] = None,
    include_ended: Annotated[
        bool, typer.Option("--all", help="ended and expired sessions too")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List console sessions (live ones unless --all): who, from where, until when."""

    async def work(conn: AsyncConnection[Any]) -> list[sessions.SessionView]:
        return await sessions.list_sessions(conn, user, include_ended=include_ended)

    listing(
        as_json, "sessions", run(ctx, work),
        ("session", "user", "role", "ip", "since", "last seen", "expires", "ended"),
        lambda s: (str(s.id), s.user, s.role, s.ip, when(s.created_at), when(s.last_seen_at),
                   when(s.expires_at), when(s.revoked_at) if s.revoked_at else ""),
    )  # fmt: skip


@app.command("end-session")
def user_end_session(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="session id (or its first 8 characters)")],
    as_json: JsonOpt = False,
) -> None:
    """End a console session: its cookie is refused from its next request on."""

    async def work(conn: AsyncConnection[Any]) -> sessions.SessionView:
        return await sessions.revoke_session(conn, session, actor=actor())

    done = run(ctx, work)
    emit(as_json, to_json(done), f"session {done.id} of {done.user} ended")
