"""The wire contract, both sides: what the device's client sends, central's app parses, and
what central writes, the client reads; paths and headers are the ones the app serves.

Central's side is its real app (routes, OpenAPI, the push parser, the snapshot line writer);
the client talks to a transport that records each request and answers as central would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from central.api import sync as sync_api
from central.api.sync import _parse_push
from central.app import create_app
from config.central import CentralConfig
from config.vocab import Role
from sync.catalog import Change
from sync.client import CentralBehind, CentralClient, CentralUnavailable, Page
from sync.device_report import software_version
from sync.ids import uuid7_text
from sync.protocol import (
    ACKED_HEADER,
    HISTORY_HEADER,
    JOURNAL_SEQ_HEADER,
    PENDING_HEADER,
    PROTOCOL_HEADER,
    READERS_HEADER,
    REQUEST_ID_HEADER,
    SOFTWARE_HEADER,
    CentralBehindBody,
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    ErrorBody,
    Event,
    Paths,
    PushRequest,
    PushResponse,
)
from sync.snapshot import RawRows, SnapshotPart, StreamReader, end_line, header_line, rows_line
from sync.vocab import EventKind

FESTIVAL = "0195a3c4-0000-7000-8000-00000000f357"
TICKETS = [
    {"id": str(uuid.UUID(int=i)), "festival_id": FESTIVAL, "status": "valid", "seq": i}
    for i in range(1, 6)
]
ENROLLED = EnrolResponse(
    device_id=uuid.UUID(int=7),
    token="t0ken",
    festival_id=uuid.UUID(FESTIVAL),
    role=Role.GATE,
    zone_id=uuid.UUID(int=9),
    vendor_id=None,
)
CHANGES = ChangesResponse(
    changes=[
        Change(seq=3, table="ticket", row=TICKETS[0]),
        Change(seq=4, table="zone", op="delete", row={"id": FESTIVAL}),
    ],
    next_cursor=4,
    head_seq=9,
    central_hlc=123 << 16,
)
DEVICE_CALLS = {
    ("POST", Paths.ENROL),
    ("POST", Paths.EVENTS),
    ("GET", Paths.CHANGES),
    ("GET", Paths.SNAPSHOT),
}
PUSHED = PushResponse(acked_through=2, central_hlc=5 << 16, head_seq=9)
HISTORY = "7716242452624578704.16384.1"  # as `central.history` states one
BEHIND = CentralBehindBody(detail="restored", acked_through=1, head_seq=7)


def _event(seq: int) -> Event:
    return Event(
        event_id=uuid7_text(),
        device_id=str(ENROLLED.device_id),
        device_seq=seq,
        hlc=1_750_000_000_000 << 16,
        wall_ms=1_750_000_000_000,
        catalog_seq=4,
        kind=EventKind.ENTRY,
        verdict="ok",
        payload={"ticket_id": TICKETS[0]["id"], "zone_id": str(uuid.UUID(int=9))},
    )


def _stream_lines() -> list[bytes]:
    """A snapshot as central's writer puts it on the wire: rows as the database's JSON text."""
    texts = [json.dumps(t) for t in TICKETS]  # PostgreSQL's jsonb text has ", " and ": "
    return [
        header_line(FESTIVAL, 9),
        rows_line("festival", [json.dumps({"id": FESTIVAL, "name": "Fest"})]),
        rows_line("ticket", texts[:3]),
        rows_line("ticket", texts[3:]),
        end_line(9, 6),
    ]


EXPECTED_PARTS = [
    ("header", 9, "", [], FESTIVAL),
    ("rows", 0, "festival", [{"id": FESTIVAL, "name": "Fest"}], ""),
    ("rows", 0, "ticket", TICKETS[:3], ""),
    ("rows", 0, "ticket", TICKETS[3:], ""),
    ("end", 9, "", [], ""),
]


def _plain(part: SnapshotPart) -> tuple[str, int, str, list[dict[str, Any]], str]:
    return part.kind, part.seq, part.table, list(part.rows), part.festival_id


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # The app is only built (no lifespan): its routes and schema need no database.
    return create_app(CentralConfig(dsn="postgresql://nobody@127.0.0.1/none"))


def _operation(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    """The operation central serves at `method path`, as its OpenAPI document has it."""
    operation = app.openapi()["paths"].get(path, {}).get(method.lower())
    assert operation is not None, f"central serves no {method} {path}"
    return cast(dict[str, Any], operation)


def _device_route(method: str, path: str) -> APIRoute:
    (route,) = [
        r
        for r in sync_api.router.routes
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    ]
    return route


@pytest.mark.parametrize(
    "model",
    [
        EnrolRequest(code="AB12-CD34", name="north gate 2"),
        ENROLLED,
        ENROLLED.model_copy(
            update={"zone_id": None, "vendor_id": uuid.UUID(int=3), "role": Role.BAR}
        ),
        PushRequest(events=[_event(1), _event(2)]),
        PUSHED,
        CHANGES,
        ErrorBody(error="protocol_version", detail="send header Festgate-Protocol: 1"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_wire_model_reads_back_equal_from_its_json(model: Any) -> None:
    assert type(model).model_validate_json(model.model_dump_json()) == model
    assert type(model).model_validate(json.loads(model.model_dump_json())) == model


def test_the_device_routes_take_and_give_the_shared_models(app: FastAPI) -> None:
    enrol = _device_route("POST", Paths.ENROL)
    assert enrol.body_field is not None and enrol.body_field.field_info.annotation is EnrolRequest
    assert enrol.response_model is EnrolResponse
    assert _device_route("POST", Paths.EVENTS).response_model is PushResponse
    assert _device_route("GET", Paths.CHANGES).response_model is ChangesResponse
    _device_route("GET", Paths.SNAPSHOT)
    for method, path in DEVICE_CALLS:
        _operation(app, method, path)


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_snapshot_lines_written_by_central_read_back_equal_however_the_bytes_arrive(
    size: int,
) -> None:
    reader = StreamReader()
    parts = [p for chunk in _chunks(b"".join(_stream_lines()), size) for p in reader.feed(chunk)]
    assert [_plain(p) for p in parts] == EXPECTED_PARTS
    assert reader.complete
    # The fast path: a rows line as central writes it stays bytes until the store reads it.
    assert all(isinstance(p.rows, RawRows) for p in parts if p.kind == "rows")


def test_a_rows_line_written_otherwise_is_still_read_by_the_json_parser() -> None:
    line = json.dumps({"type": "rows", "table": "ticket", "rows": TICKETS}).encode() + b"\n"
    (part,) = StreamReader().feed(line)
    assert _plain(part) == ("rows", 0, "ticket", TICKETS, "")
    assert not isinstance(part.rows, RawRows)


def test_a_stream_without_its_end_line_or_with_a_partial_line_is_not_complete() -> None:
    lines = _stream_lines()
    cut = StreamReader()
    list(cut.feed(b"".join(lines[:-1])))
    assert not cut.complete
    trailing = StreamReader()
    list(trailing.feed(b"".join(lines) + b'{"type":'))
    assert not trailing.complete


def test_central_writes_no_table_name_it_would_have_to_escape() -> None:
    with pytest.raises(ValueError, match="not a table name"):
        rows_line('ticket","count":0,"x":"', ["{}"])


Handler = Callable[[httpx.Request], httpx.Response]


def _central(app: FastAPI, seen: list[httpx.Request], events: list[Event]) -> Handler:
    """Answers as central's routes do, each body built or parsed by central's own code."""

    async def snapshot_bytes() -> AsyncIterator[bytes]:
        for piece in _chunks(b"".join(_stream_lines()), 5):
            yield piece

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        _operation(app, request.method, request.url.path)
        if request.url.path == Paths.ENROL:
            EnrolRequest.model_validate_json(request.content)  # the route's body model
            return httpx.Response(200, content=ENROLLED.model_dump_json())
        if request.url.path == Paths.EVENTS:
            assert _parse_push(request.content) == PushRequest(events=events)
            return httpx.Response(200, content=PUSHED.model_dump_json())
        # Answers a device keeps a cursor from state central's history, as its schema says.
        stated = {HISTORY_HEADER: HISTORY}
        assert _declared_answer_headers(app, request.method, request.url.path) >= {
            HISTORY_HEADER.lower()
        }
        if request.url.path == Paths.CHANGES:
            return httpx.Response(200, content=CHANGES.model_dump_json(), headers=stated)
        return httpx.Response(200, content=snapshot_bytes(), headers=stated)

    return handle


def _declared_answer_headers(app: FastAPI, method: str, path: str, status: str = "200") -> set[str]:
    """The protocol's headers central states in an answer (lower case, as httpx has them)."""
    answer = _operation(app, method, path)["responses"][status]
    return {name.lower() for name in answer.get("headers", {}) if name.startswith("Festgate-")}


def _declared_headers(app: FastAPI, method: str, path: str) -> set[str]:
    """The protocol's headers central reads on an operation (lower case, as httpx has them)."""
    parameters = _operation(app, method, path)["parameters"]
    names = (p["name"].lower() for p in parameters if p["in"] == "header")
    return {name for name in names if name.startswith("festgate-")}


async def test_what_the_client_sends_central_serves_and_what_central_answers_it_reads(
    app: FastAPI,
) -> None:
    seen: list[httpx.Request] = []
    events = [_event(1), _event(2)]
    transport = httpx.MockTransport(_central(app, seen, events))
    async with CentralClient("http://central", token="t0ken", transport=transport) as client:
        client.readers = {"camera": True, "nfc": False}  # a daemon's: all its figures
        assert await client.enrol("AB12-CD34", "north gate 2") == ENROLLED
        assert await client.push(events, pending=2, journal_seq=2, acked_through=0) == PUSHED
        page = await client.changes_page(2, journal_seq=2, acked_through=2, history=HISTORY)
        assert page == Page(CHANGES, HISTORY)
        stream = client.snapshot()
        parts = [_plain(p) async for p in stream]
    assert parts == EXPECTED_PARTS
    assert stream.history == HISTORY
    # A request id rides on every request, each its own; central's middleware reads it for
    # every path (central.logs), so no one operation declares it.
    rid = REQUEST_ID_HEADER.lower()
    assert len({r.headers[rid] for r in seen}) == len(seen)
    sent = {
        (r.method, r.url.path): {h for h in r.headers if h.startswith("festgate-")} - {rid}
        for r in seen
    }
    assert set(sent) == DEVICE_CALLS
    # Each header the client sends is one central reads (its OpenAPI says which); given all
    # its figures, the client sends every one central reads.
    for (method, path), headers in sent.items():
        assert headers == _declared_headers(app, method, path), path
    push = next(r for r in seen if r.url.path == Paths.EVENTS)
    assert push.headers[PENDING_HEADER] == push.headers[JOURNAL_SEQ_HEADER] == "2"
    assert push.headers[ACKED_HEADER] == "0"
    assert sent[("POST", Paths.EVENTS)] == {
        h.lower() for h in (PROTOCOL_HEADER, PENDING_HEADER, JOURNAL_SEQ_HEADER, ACKED_HEADER)
    }
    changes = next(r for r in seen if r.url.path == Paths.CHANGES)
    assert changes.headers[READERS_HEADER] == "camera=up,nfc=down"
    assert changes.headers[SOFTWARE_HEADER] == software_version()
    assert changes.headers[HISTORY_HEADER] == HISTORY


@pytest.mark.parametrize(("method", "path"), [("GET", Paths.CHANGES), ("POST", Paths.EVENTS)])
async def test_central_behind_reads_back_with_the_history_central_states(
    app: FastAPI, method: str, path: str
) -> None:
    assert _declared_answer_headers(app, method, path, "409") == {HISTORY_HEADER.lower()}

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {HISTORY_HEADER: HISTORY}
        return httpx.Response(409, content=BEHIND.model_dump_json(), headers=headers)

    async with CentralClient("http://central", transport=httpx.MockTransport(handle)) as client:
        asked = (
            client.changes(5, acked_through=1)
            if path == Paths.CHANGES
            else client.push([_event(1)], acked_through=1)
        )
        with pytest.raises(CentralBehind) as behind:
            await asked
    got = behind.value
    assert (got.acked_through, got.head_seq, got.history) == (1, 7, HISTORY)


@pytest.mark.parametrize("stated", [None, "", "x" * 65, "a\x01b"])
async def test_a_history_no_central_states_is_read_as_none(stated: str | None) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        headers = {} if stated is None else {HISTORY_HEADER: stated}
        return httpx.Response(200, content=CHANGES.model_dump_json(), headers=headers)

    async with CentralClient("http://central", transport=httpx.MockTransport(handle)) as client:
        assert await client.changes_page(0) == Page(CHANGES, None)


async def test_a_snapshot_stream_cut_before_its_end_line_is_a_transport_fault() -> None:
    lines = _stream_lines()

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"".join(lines[:-1]) + lines[-1][:-1])

    async with CentralClient("http://central", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(CentralUnavailable, match="cut before its end"):
            [p async for p in client.snapshot()]


async def test_a_line_that_is_no_snapshot_line_is_a_transport_fault() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=header_line(FESTIVAL, 1) + b'{"type": "rows"}\n')

    async with CentralClient("http://central", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(CentralUnavailable, match="malformed snapshot line"):
            [p async for p in client.snapshot()]
