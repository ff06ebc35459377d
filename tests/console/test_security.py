"""Issue 17's bad input: writes without their CSRF token, script through names, roles and
festivals a user may not reach; every refusal clear, nothing stored, the console serving."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from playwright.async_api import expect
from psycopg import AsyncConnection

from central import catalog
from central.console.app import CSP
from central.sample import SampleFestival, create_sample_festival
from edge.cli_sync import enrol_device
from tests.console.conftest import OpsUser, Screen, make_user
from tests.integration.conftest import CentralServer, Node, enrol_code, new_dir, open_node

HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


async def _scalar(dsn: str, query: str, *args: object) -> object:
    async with await AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute(query, args)
        rec = await cur.fetchone()
        assert rec is not None
        return rec[0]


@asynccontextmanager
async def _session_of(central: CentralServer, user: OpsUser) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser's session, logged in over plain HTTP."""
    async with httpx.AsyncClient(base_url=central.url) as client:
        form = await client.get("/ops/login")
        token = form.cookies["fg_login_csrf"]
        done = await client.post(
            "/ops/login", data={"csrf_token": token, "name": user.name, "password": user.password}
        )
        assert done.status_code == 303, done.text
        yield client


async def test_a_write_without_its_csrf_token_is_refused_and_changes_nothing(
    screen: Screen, admin: OpsUser, central: CentralServer, pg_dsn: str
) -> None:
    other = await make_user(pg_dsn, "STAFF")
    async with _session_of(central, other) as second:
        sid = await _scalar(pg_dsn, "SELECT s.id FROM ops_session s JOIN ops_user u"
                            " ON u.id = s.user_id WHERE u.name = %s", other.name)  # fmt: skip
        await screen.login(admin, then="/ops/sessions")
        page = screen.page
        end = f"{central.url}/ops/sessions/{sid}/end"
        live = "SELECT count(*) FROM ops_session WHERE revoked_at IS NULL"
        # No token, then another's token: refused with a clear page, nothing ended.
        forms: list[dict[str, str | float | bool]] = [{}, {"csrf_token": "forged" * 8}]
        for form in forms:
            refused = await page.request.post(end, form=form, max_redirects=0)
            assert refused.status == 403
            assert "security token" in await refused.text()
        refused = await page.request.post(f"{central.url}/ops/logout", max_redirects=0)
        assert refused.status == 403
        assert await _scalar(pg_dsn, live) == 2
        assert (await second.get("/ops/")).status_code == 200
        # The page's own button carries the token: the other session ends.
        row = page.locator(f'#sessions tr[data-session="{sid}"]')
        await screen.shot("sessions")
        await row.get_by_role("button", name="End").click()
        await expect(row).to_have_count(0)
        assert await _scalar(pg_dsn, live) == 1
        assert (await second.get("/ops/")).status_code == 303  # back to the login form
    # A login post without the login form's token opens nothing and counts nothing.
    async with httpx.AsyncClient(base_url=central.url) as bare:
        forged = await bare.post("/ops/login", data={"name": admin.name, "password": "x"})
        assert forged.status_code == 403
    assert await _scalar(pg_dsn, "SELECT count(*) FROM ops_login_failure") == 0
    assert await _scalar(pg_dsn, live) == 1


async def test_script_through_a_zone_or_device_name_is_shown_as_text(
    screen: Screen,
    admin: OpsUser,
    central: CentralServer,
    pg_dsn: str,
    fest: SampleFestival,
    tmp_path: Path,
    nodes: list[Node],
) -> None:
    async with await AsyncConnection.connect(pg_dsn) as conn:
        await catalog.create_zone(conn, fest.festival_id, name=HOSTILE, actor="test")
        await conn.commit()
    data = new_dir(tmp_path)
    await enrol_device(
        central.url, await enrol_code(pg_dsn, fest, "gate"), name=HOSTILE, data_dir=data
    )
    node = await open_node(data)
    nodes.append(node)
    assert (await node.device.scan(fest.tickets[0].code)).verdict.code == "ok"
    await node.engine.sync_round()
    dialogs: list[str] = []
    screen.page.on("dialog", lambda d: dialogs.append(d.message))
    await screen.login(admin, then=f"/ops/f/{fest.slug}/now")
    page = screen.page
    await expect(page.locator("#zones tbody th", has_text=HOSTILE)).to_have_count(1)
    await expect(page.locator("#gates tbody th", has_text=HOSTILE)).to_have_count(1)
    await expect(page.locator(".u-legend", has_text=HOSTILE).first).to_be_visible()
    assert await page.evaluate("window.pwned") is None
    assert await page.locator("main img, main script").count() == 0
    assert dialogs == []
    await screen.shot("now-hostile-names")
    assert screen.csp_violations == []


async def test_every_console_answer_carries_the_csp(
    central: CentralServer, admin: OpsUser, fest: SampleFestival
) -> None:
    async with _session_of(central, admin) as client:
        for path in ("/ops/login", "/ops/", f"/ops/f/{fest.slug}/now", "/ops/nowhere",
                     "/ops/f/no-such-festival/now", "/ops/static/console.js"):  # fmt: skip
            answer = await client.get(path)
            assert answer.headers["content-security-policy"] == CSP, path
            assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert (await client.get("/ops/f/no-such-festival/now")).status_code == 404
        # The API keeps its JSON, its header and its tokens.
        assert (await client.get("/v1/ops/festivals")).status_code == 400


async def test_a_role_sees_and_reaches_only_what_it_may(
    screen: Screen, central: CentralServer, pg_dsn: str, fest: SampleFestival
) -> None:
    cashier = await make_user(pg_dsn, "CASHIER", festival_id=fest.festival_id)
    await screen.login(cashier, then=f"/ops/f/{fest.slug}/now")
    page = screen.page
    nav = page.get_by_role("navigation", name="Pages")
    await expect(nav.get_by_role("link")).to_have_text(["Now", "Lookup", "Sales"])
    await expect(page.locator("#sales")).to_be_visible()
    for hidden in ("#zones", "#gates", "#devices-online", "#conflict-kinds"):
        await expect(page.locator(hidden)).to_have_count(0)
    assert await page.get_by_role("link", name="Sessions").count() == 0
    await screen.shot("now-cashier")
    # Not shown, and not accepted either: the sessions list, and another festival.
    refused = await page.request.get(f"{central.url}/ops/sessions")
    assert refused.status == 403
    async with await AsyncConnection.connect(pg_dsn) as conn:
        other = await create_sample_festival(conn, slug=f"other-{uuid.uuid4().hex[:6]}")
    refused = await page.request.get(f"{central.url}/ops/f/{other.slug}/now")
    assert refused.status == 403 and "Your role may not do this." in await refused.text()
