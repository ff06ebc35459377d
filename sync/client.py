"""HTTP client for central's device API (httpx): enrol, snapshot, changes, push."""

from __future__ import annotations

import json
import logging
import re
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sync.protocol import (
    JOURNAL_SEQ_HEADER,
    PENDING_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    REQUEST_ID_HEADER,
    ChangesResponse,
    Event,
    PushRequest,
    PushResponse,
)

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


class EnrolRequest(BaseModel):
    """A device trading its one-time enrol code for credentials."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=4, max_length=64)
    name: str = Field("", max_length=200)


class EnrolResponse(BaseModel):
    """The device's id and bearer token (shown once), and what it is enrolled as."""

    device_id: str
    token: str
    festival_id: str
    role: str
    zone_id: str | None = None
    vendor_id: str | None = None


class CentralError(Exception):
    """Something went wrong talking to central."""


class CentralUnavailable(CentralError):
    """Not reachable, timed out, cut off or overloaded: retry later with backoff."""


class CentralRefused(CentralError):
    """Central answered with a 4xx: retrying the same request will not help."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


class ProtocolMismatch(CentralRefused):
    """Central does not speak this device's protocol version; the device must be updated."""


class RawRows(Sequence[dict[str, Any]]):
    """A snapshot chunk's rows still as the JSON array central sent, with their count.

    The replica validates `raw` in one pass (parse and check together); anything else that
    looks at the rows gets them parsed on first use.
    """

    __slots__ = ("_parsed", "raw", "total")

    def __init__(self, raw: bytes, count: int) -> None:
        self.raw = raw
        self.total = count
        self._parsed: list[dict[str, Any]] | None = None

    def _rows(self) -> list[dict[str, Any]]:
        if self._parsed is None:
            parsed = json.loads(self.raw)
            if not isinstance(parsed, list):
                raise ValueError("snapshot rows are not a JSON array")
            self._parsed = parsed
        return self._parsed

    def __len__(self) -> int:
        return self.total

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | Sequence[dict[str, Any]]:
        return self._rows()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows())


@dataclass(frozen=True, slots=True)
class SnapshotPart:
    """One line of the snapshot stream: a header, a chunk of rows of one table, or the end."""

    kind: str
    seq: int = 0
    table: str = ""
    rows: Sequence[dict[str, Any]] = ()
    festival_id: str = ""


class CentralClient:
    """Talks to central on behalf of one device; every request carries the protocol version."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        ca_bundle: Path | None = None,
        connect_timeout_s: float = 3.0,
        request_timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # TLS verification is always on; a festival's own CA bundle replaces the system's.
        # (An SSLContext: httpx deprecates a CA file's path given as `verify`.)
        verify: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(ca_bundle))
        self.request_timeout_s = request_timeout_s
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            verify=verify,
            timeout=httpx.Timeout(request_timeout_s, connect=connect_timeout_s),
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> CentralClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        # One id per request, which central logs on its every line about it: a device's
        # log line and central's about the same request share it.
        rid = uuid.uuid4().hex
        kwargs["headers"] = {**(kwargs.get("headers") or {}), REQUEST_ID_HEADER: rid}
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:  # connect, read, write, protocol errors, timeouts
            log.warning("central %s %s failed: %s (request %s)", method, url, exc, rid)
            raise CentralUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            log.warning(
                "central %s %s answered %d (request %s)", method, url, response.status_code, rid
            )
        else:
            log.debug(
                "central %s %s answered %d (request %s)", method, url, response.status_code, rid
            )
        _raise_for(response)
        return response

    async def enrol(self, code: str, name: str) -> EnrolResponse:
        """Enrol with a one-time code."""
        body = EnrolRequest(code=code, name=name).model_dump()
        response = await self._request("POST", "/v1/devices/enroll", json=body)
        return _parse(EnrolResponse, response)

    async def changes(
        self, after: int, *, wait_s: float = 0.0, limit: int = 1000, journal_seq: int | None = None
    ) -> ChangesResponse:
        """Changes after `after`; with `wait_s`, central answers as soon as one exists.
        `journal_seq` (the highest device_seq journaled here) keeps ops' figures current."""
        params = {"after": after, "wait": wait_s, "limit": limit}
        timeout = httpx.Timeout(self.request_timeout_s + wait_s, connect=self._http.timeout.connect)
        headers = _figures(journal_seq=journal_seq)
        response = await self._request(
            "GET", "/v1/sync/changes", params=params, timeout=timeout, headers=headers
        )
        return _parse(ChangesResponse, response)

    async def push(
        self, events: Sequence[Event], *, pending: int | None = None, journal_seq: int | None = None
    ) -> PushResponse:
        """Push a batch in device_seq order; central answers the highest contiguous seq held.
        `pending` and `journal_seq` are this device's figures as counted before the push."""
        body = PushRequest(events=list(events)).model_dump_json()
        headers = {"Content-Type": "application/json"}
        headers |= _figures(pending=pending, journal_seq=journal_seq)
        response = await self._request("POST", "/v1/sync/events", content=body, headers=headers)
        return _parse(PushResponse, response)

    async def snapshot(self) -> AsyncIterator[SnapshotPart]:
        """Stream the catalog; raises CentralUnavailable if the stream ends without its end line.

        Only whole lines (ended by a newline) are parsed: a stream cut mid-line is a cut
        stream, whatever the partial line looks like.
        """
        try:
            rid = uuid.uuid4().hex
            headers = {REQUEST_ID_HEADER: rid}
            stream = self._http.stream("GET", "/v1/sync/snapshot", timeout=None, headers=headers)
            async with stream as response:
                if response.status_code >= 400:
                    log.warning(
                        "central snapshot answered %d (request %s)", response.status_code, rid
                    )
                    await response.aread()
                    _raise_for(response)
                ended = False
                buf = bytearray()
                async for chunk in response.aiter_bytes():
                    start = len(buf)
                    buf += chunk
                    cut = buf.rfind(b"\n", start)
                    if cut < 0:
                        continue
                    lines = bytes(buf[:cut]).split(b"\n")
                    del buf[: cut + 1]
                    for line in lines:
                        if not line.strip():
                            continue
                        part = _snapshot_part(line)
                        ended = part.kind == "end"
                        yield part
                if buf.strip() or not ended:
                    raise CentralUnavailable("snapshot stream was cut before its end")
        except httpx.TransportError as exc:
            raise CentralUnavailable(f"{type(exc).__name__}: {exc}") from exc


def _figures(*, pending: int | None = None, journal_seq: int | None = None) -> dict[str, str]:
    """The device's figures as request headers (only those given)."""
    given = ((PENDING_HEADER, pending), (JOURNAL_SEQ_HEADER, journal_seq))
    return {name: str(value) for name, value in given if value is not None}


# A rows line as central writes it; anything else goes through the general parser.
_ROWS_LINE = re.compile(rb'\{"type":"rows","table":"([a-z_]{1,64})","count":([0-9]{1,9}),"rows":\[')


def _snapshot_part(line: bytes) -> SnapshotPart:
    fast = _ROWS_LINE.match(line)
    if fast is not None and line.endswith(b"]}"):
        raw = line[fast.end() - 1 : -1]
        return SnapshotPart("rows", table=fast[1].decode(), rows=RawRows(raw, int(fast[2])))
    try:
        data = json.loads(line)
        kind = data["type"]
        if kind == "rows":
            rows = data["rows"]
            if not isinstance(rows, list):
                raise TypeError("rows is not a list")
            return SnapshotPart("rows", table=str(data["table"]), rows=rows)
        return SnapshotPart(
            kind, seq=int(data["seq"]), festival_id=str(data.get("festival_id", ""))
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CentralUnavailable(f"malformed snapshot line: {exc}") from exc


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    try:
        body = response.json()
        error, detail = str(body.get("error", "")), str(body.get("detail", ""))
    except (ValueError, AttributeError):
        error, detail = "", response.text[:200]
    # Overload and server faults pass; a 4xx other than 408/429 is an answer, not a fault.
    if status >= 500 or status in (408, 429):
        raise CentralUnavailable(f"{status} {error or 'server error'}: {detail}")
    if error == "protocol_version":
        raise ProtocolMismatch(status, error, detail)
    raise CentralRefused(status, error or "http_error", detail)


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A truncated or mangled body from a proxy is a transport fault: retry.
        raise CentralUnavailable(f"unreadable {model.__name__} from central: {exc}") from exc
