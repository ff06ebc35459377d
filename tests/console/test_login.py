"""Issue 17: logging in to the console as a person, and out again; the login limit."""

from __future__ import annotations

import httpx
from playwright.async_api import expect
from psycopg import AsyncConnection

from central.console import sessions
from tests.console.conftest import OpsUser, Screen
from tests.integration.conftest import CentralServer


async def _count(dsn: str, query: str) -> int:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(query)
        rec = await cur.fetchone()
        assert rec is not None
        return int(rec[0])


async def test_log_in_then_out_and_the_old_cookie_is_refused(
    screen: Screen, admin: OpsUser, pg_dsn: str, central: CentralServer
) -> None:
    await screen.login(admin)
    page = screen.page
    await expect(page.get_by_role("heading", name="Festivals")).to_be_visible()
    await screen.shot("home")
    (cookie,) = [c for c in await screen.context.cookies() if c["name"] == "fg_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ops"
    assert not cookie["secure"]  # plain http on loopback; Secure behind TLS
    live = await _count(pg_dsn, "SELECT count(*) FROM ops_session WHERE revoked_at IS NULL")
    assert live == 1
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("heading", name="Log in to the ops console")).to_be_visible()
    assert await _count(pg_dsn, "SELECT count(*) FROM ops_session WHERE revoked_at IS NULL") == 0
    # The cookie as it was before logging out opens nothing any more.
    async with httpx.AsyncClient(base_url=central.url) as client:
        client.cookies.set("fg_session", cookie["value"], path="/ops")
        again = await client.get("/ops/")
        assert again.status_code == 303 and again.headers["location"].startswith("/ops/login")
        script = await client.get("/ops/", headers={"HX-Request": "true"})
        assert script.status_code == 401


async def test_a_wrong_password_is_refused_and_a_flood_is_limited(
    screen: Screen, admin: OpsUser, pg_dsn: str
) -> None:
    page = screen.page
    wrong = OpsUser(admin.name, "not the password", admin.role)
    for _ in range(sessions.MAX_USER_FAILURES):
        await screen.try_login(wrong)
        await expect(page.locator("#login-error")).to_have_text("Wrong name or password.")
    await screen.shot("login-refused")
    stored = await _count(pg_dsn, "SELECT count(*) FROM ops_login_failure")
    assert stored == sessions.MAX_USER_FAILURES
    # Past the limit even the right password is refused, with a clear message, and the
    # flood stores nothing more.
    for user in (wrong, admin):
        await screen.try_login(user)
        await expect(page.locator("#login-error")).to_contain_text("Too many failed logins")
    await screen.shot("login-limited")
    assert await _count(pg_dsn, "SELECT count(*) FROM ops_login_failure") == stored
    assert await _count(pg_dsn, "SELECT count(*) FROM ops_session") == 0


async def test_a_forged_or_expired_session_is_refused(
    central: CentralServer, admin: OpsUser, pg_dsn: str
) -> None:
    async with httpx.AsyncClient(base_url=central.url) as client:
        form = await client.get("/ops/login")
        sent = {"csrf_token": form.cookies["fg_login_csrf"], "name": admin.name,
                "password": admin.password}  # fmt: skip
        assert (await client.post("/ops/login", data=sent)).status_code == 303
        assert (await client.get("/ops/")).status_code == 200
        real = client.cookies["fg_session"]
        for forged in ("", "x" * 43, real[:-1] + ("A" if real[-1] != "A" else "B"), "y" * 5000):
            client.cookies.set("fg_session", forged, path="/ops")
            refused = await client.get("/ops/")
            assert refused.status_code == 303, forged
            assert refused.headers["location"] == "/ops/login?next=/ops/"
        # Past its expiry the real one opens nothing either.
        async with await AsyncConnection.connect(pg_dsn) as conn:
            await conn.execute("UPDATE ops_session SET expires_at = now() - interval '1 s'")
            await conn.commit()
        client.cookies.set("fg_session", real, path="/ops")
        assert (await client.get("/ops/")).status_code == 303
