"""The console's navigation: every page of a festival, built or not (a page not built yet
shows in the nav and answers 404).

To add a page: write ``pages/<name>.py`` with an ``APIRouter`` named `router` serving
``/f/{festival}/<name>`` (with `central.console.web`'s helpers), add its router to
`central.console.app.ROUTERS`, and its template under ``templates/pages/``.
A page's `actions` decide who sees it in the navigation and who may open it (any one of
them suffices): a role that may do none neither sees the link nor gets the page (403).
"""

from __future__ import annotations

from dataclasses import dataclass

from central.auth import Action


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a festival: its path under ``/f/{festival}/``, nav label, needed actions."""

    key: str
    label: str  # shown through the catalogs (base.html lists the msgids)
    actions: tuple[Action, ...]


PAGES: tuple[Page, ...] = (
    Page("now", "Now", (Action.VIEW_FESTIVAL,)),
    Page("conflicts", "Conflicts", (Action.VIEW_CONFLICTS,)),
    Page("devices", "Devices", (Action.VIEW_DEVICES,)),
    Page("lookup", "Lookup", (Action.VIEW_TICKET, Action.VIEW_LEDGER)),
    Page("sales", "Sales", (Action.VIEW_SALES,)),
    # No audit action in the role matrix yet: admins only, until the Audit page decides.
    Page("audit", "Audit", (Action.VIEW_USERS,)),
)


def page(key: str) -> Page:
    """The page named `key`."""
    (found,) = [p for p in PAGES if p.key == key]
    return found
