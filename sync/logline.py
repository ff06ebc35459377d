"""A device log line as an event payload: the one shape the device writes and central reads.

A log event's verdict is its level; its payload holds the text under `TEXT`, the logger's
name, and the record's own fields as JSON scalars. Devices before this declaration wrote the
text under `LEGACY_TEXT`; central reads either (migration 0007's ``device_log`` view).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

TEXT = "message"  # the payload key of a log line's text
LEGACY_TEXT = "msg"  # what devices wrote before `TEXT` was declared; central still reads it
MAX_TEXT = 500  # characters of text kept: a log line, not a dump
MAX_LEVEL = 32  # a level is the event's verdict (`sync.protocol.MAX_VERDICT_CHARS`)


def _scalar(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def log_payload(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of a log line from its fields: the text under `TEXT` (a `LEGACY_TEXT`
    given by an older caller is taken as the text), cut to `MAX_TEXT`; the level as
    given (``info`` when absent); every other value a JSON scalar (else its ``str``)."""
    out = {key: _scalar(value) for key, value in fields.items() if key != LEGACY_TEXT}
    text = fields.get(TEXT, fields.get(LEGACY_TEXT, ""))
    out[TEXT] = str(text)[:MAX_TEXT]
    out["level"] = str(fields.get("level", "info"))[:MAX_LEVEL]
    return out


# Attributes every LogRecord has (and uvicorn's colour copy of its message): anything else
# on a record came from `extra=` and is a field of the line.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """A log line as one JSON object, on a device and at central alike: time, level,
    logger, message, and the record's own fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render a record."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out |= fields_of(record)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)
