"""The sync wire protocol: pydantic models that device and central both speak."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from config.vocab import Role
from sync.catalog import Change
from sync.hlc import MAX_WALL_MS
from sync.vocab import EventKind

PROTOCOL_VERSION = 1
PROTOCOL_HEADER = "Festgate-Protocol"
# A device's own figures, sent as headers so ops see them: how many events it holds that
# central has not acknowledged (on a push, counted just before it), and the highest
# device_seq it has journaled (on a push and on every changes request). Central derives the
# events pending from the latter and its own acknowledgement, whatever order they arrive in.
PENDING_HEADER = "Festgate-Pending"
JOURNAL_SEQ_HEADER = "Festgate-Journal-Seq"
# What a device is running, sent with each changes request (where central records it for
# ops): its festgate version, and its daemon's readers as ``camera=up,nfc=down`` (names
# percent-encoded; absent from a device CLI run, which runs no readers). Their bounds and
# format: `sync.device_report`.
SOFTWARE_HEADER = "Festgate-Software"
READERS_HEADER = "Festgate-Readers"
# The highest device_seq central has acknowledged to this device, as the device remembers
# it (on a push and on every changes request). Central restored from a backup holds less:
# it then answers `409 central_behind` (`CentralBehindBody`) instead of taking the request.
# A request without it (a client from before the signal) is answered as before.
ACKED_HEADER = "Festgate-Acked-Through"
# The identity of the history central serves (`central.history`), which a restore from a
# backup changes: central states it with every snapshot, changes page and 409, a device keeps
# it with its catalog cursor and sends it back on every changes request. A cursor from
# another history names other changes: `409 central_behind`, and the device reloads its
# catalog. A device that holds none (from before the signal) adopts the first it is told.
HISTORY_HEADER = "Festgate-History"
MAX_HISTORY_CHARS = 64
# Central's hint on a 429 or 503 (seconds); a device backs off on its own schedule anyway.
RETRY_AFTER_HEADER = "Retry-After"
# One id per request, sent by the device and logged on both sides (central makes one when
# none is sent, and echoes it in every response).
REQUEST_ID_HEADER = "Festgate-Request-Id"
MAX_BATCH = 1000  # events per push; central refuses a larger batch with 413
MAX_PAYLOAD_BYTES = 8192  # one event's payload, serialised
# The largest PostgreSQL bigint: what central stores an event's numbers in (a seq, a
# cursor, a count).
MAX_BIGINT = 2**63 - 1
# An event id as devices write it (`sync.ids.uuid7_text`): canonical, lowercase.
EVENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAX_VERDICT_CHARS = 32
# Request text that PostgreSQL can store. Its text and jsonb cannot hold a NUL (U+0000); a
# request string that carries one would fail in the database, after the request was
# accepted. Every str that a request model or a query or path parameter of the enrol and ops
# API takes is `PgText`, so a NUL is refused with ``422 invalid_request`` before any handler
# runs, and the OpenAPI schema says so (a pattern).
NUL_FREE_PATTERN = r"^[^\x00]*$"
PgText = Annotated[str, StringConstraints(pattern=NUL_FREE_PATTERN)]


class Paths:
    """Every URL path of central's HTTP API that is spelled anywhere, all under `ROOT`."""

    ROOT: Final = "/v1"
    # The device protocol.
    ENROL: Final = f"{ROOT}/devices/enroll"
    EVENTS: Final = f"{ROOT}/sync/events"
    CHANGES: Final = f"{ROOT}/sync/changes"
    SNAPSHOT: Final = f"{ROOT}/sync/snapshot"
    # The API's own description, served without credentials or protocol header.
    OPENAPI: Final = f"{ROOT}/openapi.json"
    DOCS: Final = f"{ROOT}/docs"
    # The ops API: admin routes under OPS, a festival's under OPS_FESTIVAL.
    OPS: Final = f"{ROOT}/ops"
    OPS_FESTIVAL: Final = f"{OPS}/festivals/{{festival}}"

    @staticmethod
    def ops_festival(festival: object) -> str:
        """`OPS_FESTIVAL` for one festival (its slug or id)."""
        return Paths.OPS_FESTIVAL.format(festival=festival)


class EnrolRequest(BaseModel):
    """A device trading its one-time enrol code for credentials."""

    model_config = ConfigDict(extra="forbid")
    code: PgText = Field(min_length=4, max_length=64)
    name: PgText = Field("", max_length=200, description="how ops will see this device")


class EnrolResponse(BaseModel):
    """The device's id and bearer token (shown once), and what it is enrolled as."""

    device_id: uuid.UUID
    token: str
    festival_id: uuid.UUID
    role: Role
    zone_id: uuid.UUID | None
    vendor_id: uuid.UUID | None


class Event(BaseModel):
    """An immutable fact recorded on a device.

    Its fields' bounds are what central can store: a push that breaks one is malformed and
    refused whole (422). What a well-formed event says (its verdict, its payload) is checked
    at central, which stores a bad event as rejected (`central.events`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    # A str on the wire and in code (no UUID object per event); described as what it is.
    event_id: Annotated[
        str,
        Field(
            pattern=EVENT_ID_PATTERN,
            description="UUIDv7, lowercase",
            json_schema_extra={"format": "uuid"},
        ),
    ]
    device_id: Annotated[str, Field(min_length=1, max_length=64)]
    device_seq: int = Field(ge=1, le=MAX_BIGINT, description="gap-free per device, from 1")
    hlc: int = Field(ge=0, le=MAX_BIGINT, description="hybrid logical clock, see sync.hlc")
    # A wall clock the HLC can pack (about the year 6429); one before 1970 is broken, not early.
    wall_ms: int = Field(
        ge=0, le=MAX_WALL_MS, description="the device's raw wall clock, unix ms (HLC-packable)"
    )
    catalog_seq: int = Field(
        ge=0, le=MAX_BIGINT, description="highest change-feed seq the device had applied"
    )
    kind: EventKind
    verdict: Annotated[str, Field(max_length=MAX_VERDICT_CHARS)]
    payload: dict[str, Any] = Field(default_factory=dict)


class PushRequest(BaseModel):
    """A batch of events from one device, in device_seq order."""

    model_config = ConfigDict(extra="forbid")
    events: list[Event] = Field(max_length=MAX_BATCH)


class PushResponse(BaseModel):
    """Central's answer: the highest contiguous device_seq it holds, and its clock."""

    acked_through: int = Field(ge=0)
    central_hlc: int
    head_seq: int = Field(ge=0, description="central's change-feed head when it answered")


class ChangesResponse(BaseModel):
    """A page of the change feed after a cursor."""

    changes: list[Change]
    next_cursor: int = Field(ge=0)
    head_seq: int = Field(ge=0)
    central_hlc: int


class ErrorBody(BaseModel):
    """Machine-readable error for every 4xx/5xx answer."""

    error: str = Field(description="stable error code, e.g. 'protocol_version'")
    detail: str = ""


CENTRAL_BEHIND = "central_behind"


class CentralBehindBody(ErrorBody):
    """409 ``central_behind``: central holds less than the device knows it had (it was
    restored from a backup). The device re-sends every event after `acked_through` that it
    still holds (pushes are idempotent by device_seq), and a device whose feed cursor is past
    `head_seq` reloads the catalog from a snapshot; then it syncs as before."""

    error: str = CENTRAL_BEHIND
    acked_through: int = Field(ge=0, description="the highest contiguous device_seq central holds")
    head_seq: int = Field(ge=0, description="central's change-feed head")
