"""Ops endpoints under ``/v1/ops/festivals/…``, each checked against the role matrix.

Tickets, wristbands and conflicts, which name the festival by slug or id, have modules of
their own (`central.api.ops_tickets`, `ops_wristbands`, `ops_conflicts`); the app mounts
this module's `router`, which carries theirs. Devices and enrol codes, reports, the
festival's own settings and admin are mounted by the app from `ops_devices`,
`ops_reports`, `ops_festivals` and `admin`.
"""

from __future__ import annotations

from fastapi import APIRouter

from central.api import ops_conflicts, ops_tickets, ops_wristbands

router = APIRouter(tags=["ops"])


# Each part's routes carry their full path already: added as they are (include_router would
# put this router's prefix in front of them).
for _part in (ops_tickets.router, ops_wristbands.router, ops_conflicts.router):
    router.routes.extend(_part.routes)
