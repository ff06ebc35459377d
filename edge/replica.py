"""Mapping between replicated catalog rows (sync.catalog) and the device's SQLite tables."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sync.catalog import TABLES, Row

_KEYS: dict[str, tuple[str, ...]] = {
    "signing_key": ("key_id",),
    "presence": ("ticket_id", "zone_id"),
    "block": ("kind", "ref"),
}


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How one replicated table is stored: its columns, key and prepared SQL."""

    name: str
    model: type[Row]
    columns: tuple[str, ...]
    key: tuple[str, ...]
    json_columns: frozenset[str]

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
    return TableSpec(name, model, tuple(fields), _KEYS.get(name, ("id",)), json_cols)


SPECS: dict[str, TableSpec] = {name: _spec(name, model) for name, model in TABLES.items()}


def validate_rows(spec: TableSpec, rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Validate raw rows as central sent them; ValueError names the table and row on failure."""
    out = []
    for i, raw in enumerate(rows):
        try:
            out.append(spec.params(spec.model.model_validate(raw)))
        except ValueError as exc:
            raise ValueError(f"{spec.name} row {i}: {exc}") from None
    return out
