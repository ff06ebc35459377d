"""Issue 15: the API describes itself: the protocol header in OpenAPI, the docs from the package."""

from __future__ import annotations

from central.api.docs import ASSETS, ASSETS_DIR, OPEN_PATHS, STATIC_PREFIX
from sync.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION
from tests.central.sync_helpers import PROTO, Rig, expect_error

METHODS = {"get", "put", "post", "delete", "patch"}


async def test_every_operation_but_the_open_paths_declares_the_protocol_header(rig: Rig) -> None:
    paths = (await rig.client.get("/v1/openapi.json")).json()["paths"]
    operations = [(path, op) for path, item in paths.items()
                  for method, op in item.items() if method in METHODS]  # fmt: skip
    assert len(operations) > 20
    for path, op in operations:
        declared = [p for p in op["parameters"] if p["name"] == PROTOCOL_HEADER]
        assert path not in OPEN_PATHS
        assert declared == [
            {"name": PROTOCOL_HEADER, "in": "header", "required": True,
             "description": declared[0]["description"],
             "schema": {"type": "string", "enum": [str(PROTOCOL_VERSION)],
                        "default": str(PROTOCOL_VERSION)}}
        ], path  # fmt: skip
    # The docs page and its files are not operations of the API.
    assert not any(p.startswith("/v1/docs") for p in paths)


async def test_the_docs_page_and_its_files_come_from_central_without_the_header(rig: Rig) -> None:
    page = await rig.client.get("/v1/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    for name in ASSETS:
        assert f'"{STATIC_PREFIX}{name}"' in page.text
        asset = await rig.client.get(STATIC_PREFIX + name)
        assert asset.status_code == 200, name
        assert asset.content == (ASSETS_DIR / name).read_bytes()
    assert "https://" not in page.text and "http://" not in page.text
    # Nothing else under the prefix is open, nor served.
    expect_error(await rig.client.get(STATIC_PREFIX + "LICENSE"), 400, "protocol_version")
    expect_error(await rig.client.get(STATIC_PREFIX + "LICENSE", headers=PROTO), 404, "not_found")
    expect_error(
        await rig.client.get(STATIC_PREFIX + "..%2F..%2Fapp.py", headers=PROTO), 404, "not_found"
    )
