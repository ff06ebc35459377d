"""HTTP client for central's device API (httpx): enrol, snapshot, changes, push."""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypedDict, TypeVar, Unpack

import httpx
from pydantic import BaseModel, ValidationError

from sync.device_report import encode_readers, software_version
from sync.protocol import (
    ACKED_HEADER,
    CENTRAL_BEHIND,
    HISTORY_HEADER,
    JOURNAL_SEQ_HEADER,
    MAX_HISTORY_CHARS,
    PENDING_HEADER,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    READERS_HEADER,
    REQUEST_ID_HEADER,
    SOFTWARE_HEADER,
    CentralBehindBody,
    ChangesResponse,
    EnrolRequest,
    EnrolResponse,
    Event,
    Paths,
    PushRequest,
    PushResponse,
)
from sync.snapshot import MalformedLine, SnapshotPart, StreamReader

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


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


class CentralBehind(CentralRefused):
    """Central holds less than this device knows it had (restored from a backup): re-send
    after `acked_through`, reload the catalog if the cursor is past `head_seq` or belongs to
    another history than central's `history`."""

    def __init__(self, body: CentralBehindBody, history: str | None = None) -> None:
        super().__init__(409, body.error, body.detail)
        self.acked_through = body.acked_through
        self.head_seq = body.head_seq
        self.history = history


class Page(NamedTuple):
    """A page of changes and the history central stated with it (None: it states none)."""

    body: ChangesResponse
    history: str | None


class SnapshotStream:
    """One snapshot stream from central, read once: its parts, and the history central
    stated with it (`history`, known once the first part is read)."""

    def __init__(self, client: CentralClient) -> None:
        self.history: str | None = None
        self._parts = client.snapshot_parts(self)  # an async generator: no request yet

    def __aiter__(self) -> SnapshotStream:
        return self

    async def __anext__(self) -> SnapshotPart:
        return await anext(self._parts)


class _ChangesAsk(TypedDict, total=False):
    """What `CentralClient.changes_page` takes besides the cursor."""

    wait_s: float
    limit: int
    journal_seq: int | None
    acked_through: int | None
    history: str | None


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
        # The daemon's readers, name → working, as their drivers report them (live: read at
        # each changes request); None from a device CLI run, which runs no readers.
        self.readers: Mapping[str, bool] | None = None
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
        response = await self._request("POST", Paths.ENROL, json=body)
        return _parse(EnrolResponse, response)

    async def changes(self, after: int, **ask: Unpack[_ChangesAsk]) -> ChangesResponse:
        """Changes after `after` (`changes_page` without the history central stated)."""
        return (await self.changes_page(after, **ask)).body

    async def changes_page(
        self,
        after: int,
        *,
        wait_s: float = 0.0,
        limit: int = 1000,
        journal_seq: int | None = None,
        acked_through: int | None = None,
        history: str | None = None,
    ) -> Page:
        """Changes after `after`; with `wait_s`, central answers as soon as one exists.
        `journal_seq` (the highest device_seq journaled here) keeps ops' figures current;
        with `acked_through`, CentralBehind when central holds less, and with `history` (the
        one `after` belongs to), CentralBehind when central serves another (`sync.protocol`)."""
        params = {"after": after, "wait": wait_s, "limit": limit}
        timeout = httpx.Timeout(self.request_timeout_s + wait_s, connect=self._http.timeout.connect)
        headers = _figures(journal_seq=journal_seq, acked_through=acked_through) | self._report()
        if history is not None:
            headers[HISTORY_HEADER] = history
        response = await self._request(
            "GET", Paths.CHANGES, params=params, timeout=timeout, headers=headers
        )
        return Page(_parse(ChangesResponse, response), stated_history(response))

    def _report(self) -> dict[str, str]:
        """What this device says about itself (`sync.device_report`) as request headers."""
        report = {SOFTWARE_HEADER: software_version()}
        if self.readers is not None:
            report[READERS_HEADER] = encode_readers(self.readers)
        return report

    async def push(
        self,
        events: Sequence[Event],
        *,
        pending: int | None = None,
        journal_seq: int | None = None,
        acked_through: int | None = None,
    ) -> PushResponse:
        """Push a batch in device_seq order; central answers the highest contiguous seq held.
        `pending` and `journal_seq` are this device's figures as counted before the push;
        with `acked_through`, CentralBehind (nothing stored) when central holds less."""
        body = PushRequest(events=list(events)).model_dump_json()
        headers = {"Content-Type": "application/json"}
        headers |= _figures(pending=pending, journal_seq=journal_seq, acked_through=acked_through)
        response = await self._request("POST", Paths.EVENTS, content=body, headers=headers)
        return _parse(PushResponse, response)

    def snapshot(self) -> SnapshotStream:
        """Stream the catalog; raises CentralUnavailable if the stream ends without its end line
        or holds a line that is not a snapshot's (`sync.snapshot`)."""
        return SnapshotStream(self)

    async def snapshot_parts(self, into: SnapshotStream) -> AsyncIterator[SnapshotPart]:
        """The parts of a snapshot stream as they arrive, with `into.history` set first."""
        try:
            rid = uuid.uuid4().hex
            headers = {REQUEST_ID_HEADER: rid}
            stream = self._http.stream("GET", Paths.SNAPSHOT, timeout=None, headers=headers)
            async with stream as response:
                if response.status_code >= 400:
                    log.warning(
                        "central snapshot answered %d (request %s)", response.status_code, rid
                    )
                    await response.aread()
                    _raise_for(response)
                into.history = stated_history(response)
                reader = StreamReader()
                async for chunk in response.aiter_bytes():
                    for part in reader.feed(chunk):
                        yield part
                if not reader.complete:
                    raise CentralUnavailable("snapshot stream was cut before its end")
        except httpx.TransportError as exc:
            raise CentralUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except MalformedLine as exc:
            raise CentralUnavailable(str(exc)) from exc


def _figures(
    *, pending: int | None = None, journal_seq: int | None = None, acked_through: int | None = None
) -> dict[str, str]:
    """The device's figures as request headers (only those given)."""
    given = (
        (PENDING_HEADER, pending),
        (JOURNAL_SEQ_HEADER, journal_seq),
        (ACKED_HEADER, acked_through),
    )
    return {name: str(value) for name, value in given if value is not None}


def stated_history(response: httpx.Response) -> str | None:
    """The history central stated in an answer; None when it states none, or one no central
    states (ignored, with a warning)."""
    history = response.headers.get(HISTORY_HEADER)
    if history is None:
        return None
    if not history or len(history) > MAX_HISTORY_CHARS or not history.isprintable():
        log.warning("ignored a bad %s header from central (%d chars)", HISTORY_HEADER, len(history))
        return None
    return str(history)


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
    if status == 409 and error == CENTRAL_BEHIND:
        try:
            body = CentralBehindBody.model_validate_json(response.content)
            raise CentralBehind(body, stated_history(response))
        except ValidationError:
            raise CentralUnavailable(f"unreadable {CENTRAL_BEHIND} from central") from None
    raise CentralRefused(status, error or "http_error", detail)


def _parse(model: type[M], response: httpx.Response) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        # A truncated or mangled body from a proxy is a transport fault: retry.
        raise CentralUnavailable(f"unreadable {model.__name__} from central: {exc}") from exc
