"""**Devices**: every gate, bar and top-up point with its health (last seen and for how long
offline, sync lag, pending events, clock offset, open conflicts), a page per device with its
log lines, revoking one (after a confirmation page), and a one-time enrol code for a new one,
shown as text and as a QR code (drawn here as inline SVG: no script, no image request).

Read and written through `central.devices` and `central.enrol`, as the ops API does.
"""

from __future__ import annotations

from typing import Any

import segno
from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from psycopg import AsyncConnection

from central import devices, enrol, reports, vendors
from central.auth import Action
from central.console.pages import forms
from central.console.web import Festival, Viewer, ViewerDep, central_state, festival_page, render
from config.vocab import Role

router = APIRouter()
PAGE = "devices"
LOG_PAGE = 200  # log lines per page of a device's log
TTL_CHOICES_MIN = (15, 60, 240, 1440)  # how long a new code stays valid, in minutes


def qr_svg(text: str) -> Markup:
    """`text` as a QR code: an inline ``<svg>`` (segno writes paths and attributes only, no
    style or script, so the page's CSP holds), dark on white with its quiet zone."""
    svg = segno.make(text, error="m", micro=False).svg_inline(
        scale=6, border=4, dark="#000000", light="#ffffff", svgclass="qr"
    )
    return Markup(svg)  # noqa: S704 - segno's own markup; `text` is an enrol code it encodes


async def _main(
    request: Request, who: Viewer, conn: AsyncConnection[Any], fest: Festival,
    *, new_code: enrol.NewEnrolCode | None = None, error: str = "", status: int = 200,
) -> Response:  # fmt: skip
    may_enrol = who.may(Action.CREATE_ENROL_CODE)
    command = ""
    if new_code is not None:
        central = str(request.base_url).rstrip("/")
        command = f"festgate init --central {central} --code {new_code.code} --name NAME"
    return render(
        request, who, "pages/devices.html", status, festival=fest, current=PAGE,
        fmt=fest.formats, ago=lambda s: forms.duration(who.lang, s),
        devices=await devices.list_devices(conn, fest.id),
        may_revoke=who.may(Action.REVOKE_DEVICE), may_enrol=may_enrol,
        may_log=who.may(Action.VIEW_DEVICE_LOG),
        zones=[z.zone for z in await reports.zone_occupancy(conn, fest.id)] if may_enrol else [],
        vendors=[v.name for v in await vendors.list_vendors(conn, fest.id)] if may_enrol else [],
        codes=await enrol.list_enrol_codes(conn, fest.id)
        if who.may(Action.VIEW_ENROL_CODES) else [],
        ttls=TTL_CHOICES_MIN, roles=[r.value for r in Role], new_code=new_code, command=command,
        qr=qr_svg(new_code.code) if new_code is not None else "", error=error,
        done=request.query_params.get("done", ""),
    )  # fmt: skip


@router.get("/f/{festival}/devices")
async def devices_page(request: Request, festival: str, who: ViewerDep) -> Response:
    """The health table, the live enrol codes and the form for a new one."""
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        return await _main(request, who, conn, fest)


@router.post("/f/{festival}/devices/enrol")
async def make_enrol_code(request: Request, festival: str, who: ViewerDep) -> Response:
    """A new one-time enrol code (its zone or vendor by name), shown this once."""
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        forms.allow(who, Action.CREATE_ENROL_CODE, fest)
        fields = await forms.posted(request)
        role = fields.get("role", "")
        try:
            minutes = int(fields.get("ttl_min", "60"))
            if minutes not in TTL_CHOICES_MIN:
                raise forms.Refused("choose how long the code stays valid from the list")
            made = await enrol.issue_enrol_code(
                conn, fest.id, role=role, zone=fields.get("zone") if role == "gate" else None,
                vendor=fields.get("vendor") if role == "bar" else None, ttl_s=minutes * 60,
                actor=who.user.actor,
            )  # fmt: skip
        except (forms.Refused, ValueError) as refused:
            await conn.rollback()  # nothing of a refused write is kept
            return await _main(request, who, conn, fest, error=str(refused), status=400)
        return await _main(request, who, conn, fest, new_code=made)


@router.get("/f/{festival}/devices/{device}")
async def device_page(request: Request, festival: str, device: str, who: ViewerDep) -> Response:
    """One device: its health and counts, and its log lines (a page of them at a time)."""
    try:
        after = max(0, int(request.query_params.get("after", "0")))
    except ValueError:
        after = 0
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        detail = await devices.show_device(conn, fest.id, device)
        lines: list[devices.LogLine] = []
        if who.may(Action.VIEW_DEVICE_LOG):
            lines = await devices.device_log(
                conn, fest.id, str(detail.id), after_seq=after, limit=LOG_PAGE
            )
    return render(
        request, who, "pages/device.html", festival=fest, current=PAGE, fmt=fest.formats,
        device=detail, lines=lines, after=after,
        next_after=lines[-1].device_seq if len(lines) == LOG_PAGE else None,
        may_log=who.may(Action.VIEW_DEVICE_LOG), may_revoke=who.may(Action.REVOKE_DEVICE),
    )  # fmt: skip


@router.get("/f/{festival}/devices/{device}/revoke")
async def confirm_revoke(request: Request, festival: str, device: str, who: ViewerDep) -> Response:
    """Ask before revoking: what it will do, and the button that does it."""
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        forms.allow(who, Action.REVOKE_DEVICE, fest)
        detail = await devices.show_device(conn, fest.id, device)
    return render(
        request, who, "pages/device_revoke.html", festival=fest, current=PAGE,
        fmt=fest.formats, device=detail,
    )  # fmt: skip


@router.post("/f/{festival}/devices/{device}/revoke")
async def revoke(request: Request, festival: str, device: str, who: ViewerDep) -> Response:
    """Revoke a device: refused from its next request on (audited)."""
    async with central_state(request).pool.connection() as conn:
        fest = await festival_page(conn, who, festival, PAGE)
        forms.allow(who, Action.REVOKE_DEVICE, fest)
        try:
            await devices.revoke_device(conn, fest.id, device, actor=who.user.actor)
        except forms.Refused as refused:
            await conn.rollback()  # nothing of a refused write is kept
            return await _main(request, who, conn, fest, error=str(refused), status=409)
    return forms.back(fest, PAGE, "revoked")
