"""The decision path's shortcuts build exactly what the slow, checked way builds."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from sync.catalog import TicketRow
from sync.ids import uuid7_text
from sync.protocol import Event
from sync.trusted import trusted
from sync.vocab import EventKind, TicketStatus

EVENT = {
    "event_id": uuid7_text(1_700_000_000_000), "device_id": "gate-1", "device_seq": 3,
    "hlc": 7, "wall_ms": 1_700_000_000_000, "catalog_seq": 2, "kind": EventKind.ENTRY,
    "verdict": "ok", "payload": {"zone_id": "z"},
}  # fmt: skip
TICKET = {
    "seq": 4, "id": str(uuid.uuid4()), "festival_id": str(uuid.uuid4()),
    "category_id": str(uuid.uuid4()), "status": TicketStatus.SOLD, "code_hash": "ab" * 16,
    "code_version": 1, "suspicious": False,
}  # fmt: skip


@pytest.mark.parametrize(("cls", "values"), [(Event, EVENT), (TicketRow, TICKET)])
def test_trusted_builds_what_validation_builds(
    cls: type[BaseModel], values: dict[str, Any]
) -> None:
    # trusted() skips defaults and post-init: the models it is used for must have none left.
    assert set(values) == set(cls.model_fields)
    assert not cls.__pydantic_post_init__ and not cls.__private_attributes__
    fast = trusted(cls, dict(values))
    checked = cls.model_validate(values)
    assert fast == checked
    assert fast.model_fields_set == checked.model_fields_set
    assert fast.model_dump(mode="json") == checked.model_dump(mode="json")
    assert fast.model_dump_json() == checked.model_dump_json()


def test_uuid7_text_is_a_canonical_version_7_uuid_of_that_millisecond() -> None:
    ms = 1_700_000_123_456
    texts = {uuid7_text(ms) for _ in range(200)}
    assert len(texts) == 200  # random bits differ
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # lowercase, hyphenated
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == ms
