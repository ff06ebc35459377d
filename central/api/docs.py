"""The interactive API docs at ``/v1/docs``: Swagger UI served from the package (no CDN: a
festival LAN has no internet), sending the protocol header with every request it makes."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException

from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, Paths

ASSETS_DIR = Path(__file__).resolve().parent.parent / "static" / "swagger"
OPENAPI_PATH = Paths.OPENAPI
DOCS_PATH = Paths.DOCS
STATIC_PREFIX = f"{DOCS_PATH}/static/"
ASSETS = {  # name → media type: the files the page loads, and nothing else is served
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# What a browser fetches without the protocol header (`central.api.errors.ProtocolGate`).
OPEN_PATHS = frozenset({OPENAPI_PATH, DOCS_PATH, *(STATIC_PREFIX + name for name in ASSETS)})

# Swagger UI takes functions in its config only from script: this wraps the bundle's entry
# point so that every request the page sends (a "Try it out" too) carries the header.
_HEADER = f"request.headers[{json.dumps(PROTOCOL_HEADER)}] = {json.dumps(str(PROTOCOL_VERSION))};"
_INTERCEPTOR = f"""<script>
(() => {{
  const bundle = window.SwaggerUIBundle;
  const stamp = (request) => {{ {_HEADER} return request; }};
  window.SwaggerUIBundle = Object.assign(
    (config) => bundle({{...config, requestInterceptor: stamp}}), bundle);
}})();
</script>"""

router = APIRouter(include_in_schema=False)


@cache
def docs_html() -> str:
    """FastAPI's Swagger UI page on the packaged assets, with the header interceptor."""
    js = STATIC_PREFIX + "swagger-ui-bundle.js"
    response = get_swagger_ui_html(
        openapi_url=OPENAPI_PATH,
        title="festgate central API",
        swagger_js_url=js,
        swagger_css_url=STATIC_PREFIX + "swagger-ui.css",
        swagger_favicon_url=STATIC_PREFIX + "favicon-32x32.png",
        # No online validator badge: it would send the schema's address to swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page = bytes(response.body).decode()
    tag = f'<script src="{js}"></script>'
    if page.count(tag) != 1:  # FastAPI changed its page: the header would not be sent
        raise RuntimeError(f"no single {tag} in FastAPI's Swagger UI page")
    return page.replace(tag, tag + _INTERCEPTOR)


@router.get(DOCS_PATH)
async def docs() -> HTMLResponse:
    """The Swagger UI page."""
    return HTMLResponse(docs_html())


@router.get(STATIC_PREFIX + "{name}")
async def asset(name: str) -> FileResponse:
    """One of Swagger UI's files, from the package."""
    if name not in ASSETS:
        raise HTTPException(404, f"no docs asset {name!r}")
    return FileResponse(ASSETS_DIR / name, media_type=ASSETS[name])
