"""Mapping between replicated catalog rows (sync.catalog) and the device's SQLite tables."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from operator import itemgetter
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from sync.catalog import TABLES, Row, key_fields


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one replicated table is stored: its columns, key and prepared SQL."""

    name: str
    model: type[Row]
    columns: tuple[str, ...]
    key: tuple[str, ...]
    json_columns: frozenset[str]
    # Validation of whole chunks at once (see `validate_rows`), built on first use.
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def upsert_sql(self) -> str:
        """Insert or replace one row by key."""
        cols = ", ".join(self.columns)
        marks = ", ".join("?" for _ in self.columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c not in self.key)
        return (
            f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET {updates}"
        )

    @property
    def delete_sql(self) -> str:
        """Delete one row by key."""
        return f"DELETE FROM {self.name} WHERE " + " AND ".join(f"{k} = ?" for k in self.key)

    @property
    def select_sql(self) -> str:
        """Every column, in `columns` order."""
        return f"SELECT {', '.join(self.columns)} FROM {self.name}"

    def params(self, row: Row) -> tuple[Any, ...]:
        """SQLite parameters for a validated row."""
        data = row.model_dump(mode="json")
        return tuple(
            json.dumps(data[c]) if c in self.json_columns else data[c] for c in self.columns
        )

    def key_params(self, raw: dict[str, Any]) -> tuple[Any, ...]:
        """The key of a (possibly partial) row, for a delete."""
        try:
            return tuple(raw[k] for k in self.key)
        except KeyError as exc:
            raise ValueError(f"{self.name}: delete without key field {exc}") from None

    def load(self, values: Sequence[Any]) -> Row:
        """A row model from SQLite values in `columns` order."""
        data = dict(zip(self.columns, values, strict=True))
        for c in self.json_columns:
            data[c] = json.loads(data[c])
        return self.model.model_validate(data)


def _spec(name: str, model: type[Row]) -> TableSpec:
    fields = model.model_fields
    json_cols = frozenset(
        n for n, f in fields.items() if "tuple" in str(f.annotation) or "list" in str(f.annotation)
    )
    return TableSpec(name, model, tuple(fields), key_fields(name), json_cols)


SPECS: dict[str, TableSpec] = {name: _spec(name, model) for name, model in TABLES.items()}


def _plain(annotation: Any) -> Any:
    """A string enum as the Literal of its values: the same inputs pass and the same text is
    stored, without building an enum member per row (a quarter of a chunk's validation)."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        values = tuple(m.value for m in annotation)
        if all(isinstance(v, str) for v in values):
            return Literal[values]
    return annotation


def _row_dict_type(model: type[Row]) -> Any:
    """A TypedDict with exactly the model's fields, constraints and `extra="forbid"`.

    Validating into plain dicts runs entirely in pydantic-core and skips building a model
    per row, which is most of the cost of loading a million rows.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        plain = _plain(info.annotation)
        kind = Annotated[(plain, *info.metadata)] if info.metadata else plain
        fields[name] = kind if info.is_required() else NotRequired[kind]
    typed = cast(Any, TypedDict)(f"{model.__name__}Dict", fields)
    typed.__pydantic_config__ = ConfigDict(extra="forbid")
    return typed


def _adapter(spec: TableSpec) -> TypeAdapter[list[dict[str, Any]]]:
    adapter = spec._cache.get("adapter")
    if adapter is None:
        adapter = spec._cache["adapter"] = TypeAdapter(cast(Any, list)[_row_dict_type(spec.model)])
    return cast(TypeAdapter[list[dict[str, Any]]], adapter)


def _defaults(spec: TableSpec) -> dict[str, Any]:
    found = spec._cache.get("defaults")
    if found is None:
        found = spec._cache["defaults"] = {
            n: f.get_default(call_default_factory=True)
            for n, f in spec.model.model_fields.items()
            if not f.is_required()
        }
    return cast(dict[str, Any], found)


def _to_params(spec: TableSpec, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """SQLite parameters of validated row dicts, in `columns` order, defaults filled in."""
    width, get = len(spec.columns), itemgetter(*spec.columns)
    if sum(map(len, rows)) == width * len(rows):  # every field present: no per-row test
        out = list(map(get, rows))
    else:
        defaults = _defaults(spec)
        out = [get(r if len(r) == width else defaults | r) for r in rows]
    if spec.json_columns:  # small tables only (zone.required_types)
        at = [i for i, c in enumerate(spec.columns) if c in spec.json_columns]
        out = [tuple(json.dumps(list(v)) if i in at else v for i, v in enumerate(p)) for p in out]
    return out


def _raise_first(spec: TableSpec, exc: ValidationError) -> None:
    err = exc.errors(include_url=False)[0]
    loc = list(err["loc"])
    index = loc.pop(0) if loc and isinstance(loc[0], int) else 0
    where = ".".join(str(p) for p in loc)
    detail = f"{where}: {err['msg']}" if where else err["msg"]
    raise ValueError(f"{spec.name} row {index}: {detail} [type={err['type']}]") from None


def _validate_json(adapter: TypeAdapter[list[dict[str, Any]]], raw: bytes) -> list[dict[str, Any]]:
    # Strict mode is faster and, for the canonical JSON central writes, gives the same
    # values; anything it refuses goes through lax mode, the reference (and its errors).
    try:
        return adapter.validate_json(raw, strict=True)
    except ValidationError:
        return adapter.validate_json(raw)


def validate_rows(spec: TableSpec, rows: Iterable[dict[str, Any]] | bytes) -> list[tuple[Any, ...]]:
    """Validate raw rows as central sent them, against the table's row model, and return
    their SQLite parameters; ValueError names the table and row on failure.

    `rows` is a list of row objects, or the bytes of a JSON array of them (parsed and
    validated in one pass).
    """
    adapter = _adapter(spec)
    try:
        if isinstance(rows, bytes | bytearray):
            valid = _validate_json(adapter, rows)
        else:
            valid = adapter.validate_python(rows if isinstance(rows, list) else list(rows))
    except ValidationError as exc:
        _raise_first(spec, exc)
        raise  # unreachable
    return _to_params(spec, valid)
