"""The snapshot stream's NDJSON lines, written by central and read by a device, here both.

A stream is a header line, rows lines (a chunk of one table's rows each, in the order the
device applies them) and an end line with the seq the device continues from. A rows line
carries its rows as central's database wrote each one (no parse and re-serialise per row
there) and names its row count, so a device can check and count a chunk without parsing it
first: it reads a rows line by its fixed head and keeps the array's bytes, which its store
parses and validates in one pass (`RawRows`). Any other line goes through the JSON parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

FORMAT = "festgate-snapshot/1"
MEDIA_TYPE = "application/x-ndjson"
_TABLE = "[a-z_]{1,64}"  # every replicated table's name (`sync.catalog.TABLES`)
# A rows line's head, byte for byte as written; the reader's pattern is made from it.
_ROWS_HEAD = '{{"type":"rows","table":"{table}","count":{count},"rows":['
_ROWS_LINE = re.compile(
    re.escape(_ROWS_HEAD.format(table="TABLE", count="COUNT"))
    .replace("TABLE", f"({_TABLE})")
    .replace("COUNT", "([0-9]{1,9})")
    .encode()
)
_TABLE_NAME = re.compile(_TABLE)


class MalformedLine(ValueError):
    """A snapshot line that is not one a snapshot stream holds."""


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


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def header_line(festival_id: str, seq: int) -> bytes:
    """The stream's first line: its format, festival and the seq its rows are as of."""
    return _line({"type": "header", "format": FORMAT, "festival_id": festival_id, "seq": seq})


def rows_line(table: str, texts: Sequence[str]) -> bytes:
    """A chunk of one table's rows, each given as its JSON text (joined, not re-serialised)."""
    if _TABLE_NAME.fullmatch(table) is None:  # it goes into the line unescaped
        raise ValueError(f"not a table name: {table!r}")
    head = _ROWS_HEAD.format(table=table, count=len(texts))
    return (head + ",".join(texts) + "]}\n").encode()


def end_line(seq: int, rows: int) -> bytes:
    """The stream's last line: the seq to continue from, and how many rows it held."""
    return _line({"type": "end", "seq": seq, "rows": rows})


def read_line(line: bytes) -> SnapshotPart:
    """One line (without its newline) as a part; MalformedLine if it is none."""
    fast = _ROWS_LINE.match(line)
    if fast is not None and line.endswith(b"]}"):
        raw = line[fast.end() - 1 : -1]
        return SnapshotPart("rows", table=fast[1].decode(), rows=RawRows(raw, int(fast[2])))
    try:  # any other line, and a rows line written otherwise
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
        raise MalformedLine(f"malformed snapshot line: {exc}") from exc


class StreamReader:
    """The parts of a snapshot stream from its bytes, fed as they arrive.

    Only whole lines (ended by a newline) are read: a stream cut mid-line is a cut stream,
    whatever the partial line looks like.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._ended = False

    def feed(self, chunk: bytes) -> Iterator[SnapshotPart]:
        """The parts of the lines `chunk` completes; MalformedLine at a line that is none."""
        buf = self._buf
        start = len(buf)
        buf += chunk
        cut = buf.rfind(b"\n", start)
        if cut < 0:
            return
        lines = bytes(buf[:cut]).split(b"\n")
        del buf[: cut + 1]
        for line in lines:
            if not line.strip():
                continue
            part = read_line(line)
            self._ended = part.kind == "end"
            yield part

    @property
    def complete(self) -> bool:
        """Whether the stream so far ends with its end line and nothing after it."""
        return self._ended and not self._buf.strip()
