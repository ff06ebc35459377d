"""The protocol's paths and headers are spelled in `sync/` only: product code elsewhere names
them (`sync.protocol.Paths`, the ``*_HEADER`` constants), so the two sides cannot drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sync.protocol import (
    JOURNAL_SEQ_HEADER,
    PENDING_HEADER,
    PROTOCOL_HEADER,
    READERS_HEADER,
    RETRY_AFTER_HEADER,
    SOFTWARE_HEADER,
)

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("config", "sync", "hardware", "edge", "central", "festdemo", "bench")
# Where the wire is declared; and migrations, which are history (never edited once shipped).
EXEMPT = (ROOT / "sync", ROOT / "central" / "migrations")
HEADERS = (
    PROTOCOL_HEADER,
    PENDING_HEADER,
    JOURNAL_SEQ_HEADER,
    RETRY_AFTER_HEADER,
    SOFTWARE_HEADER,
    READERS_HEADER,
)
# A path; a header of ours as we spell them; any header of the protocol in any case.
WIRE = re.compile("|".join([r"/v1\b", "Festgate-", *(f"(?i:{re.escape(h)})" for h in HEADERS)]))


def _docstrings(tree: ast.AST) -> set[int]:
    """Ids of the string constants that are docstrings (prose may name a path)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def wire_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal in `source` that spells a path or header."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in prose
        and WIRE.search(node.value)
    )


def test_the_scan_finds_a_spelled_path_or_header_but_not_prose() -> None:
    source = '''"""Serves /v1/sync/events with Festgate-Pending."""
def push(client):
    """POST /v1/sync/events."""
    return client.post("/v1/sync/events", headers={"festgate-pending": "1", "retry-after": 1})
ROOT, NAME = f"{HOST}/v1", "festgate-central"
'''
    assert wire_literals(source) == [
        (4, "/v1/sync/events"),
        (4, "festgate-pending"),
        (4, "retry-after"),
        (5, "/v1"),
    ]


def test_no_product_module_outside_sync_spells_a_path_or_header() -> None:
    files = [f for package in PRODUCT for f in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 100  # the scan found the packages
    spelled = [
        f"{f.relative_to(ROOT)}:{line}: {text!r}"
        for f in files
        if not any(f.is_relative_to(exempt) for exempt in EXEMPT)
        for line, text in wire_literals(f.read_text())
    ]
    assert spelled == []
