"""The error of a configuration that cannot be used, shared by device and central settings."""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """A config file that cannot be used; `problems` names each key path and what was expected."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def describe(error: Any, skip: frozenset[str] = frozenset()) -> str:
    """One pydantic error as ``key.path: what was expected`` (`skip`: union tags in the path)."""
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in skip:
            continue  # the union member pydantic tried; the user wrote `type = ...`, not this
        else:
            path += f".{part}" if path else str(part)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    given = error.get("input")
    shown = f" (got {given!r})" if isinstance(given, str | int | float | bool) else ""
    return f"{path or '(top level)'}: {error['msg']}{shown}"
