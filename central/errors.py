"""Errors of central's catalog writes, typed so the API can map them to HTTP codes."""

from __future__ import annotations


class CatalogError(ValueError):
    """A catalog write refused for a reason a person can act on."""


class NotFound(CatalogError, LookupError):
    """The festival, ticket, account or other row named does not exist (or is deleted)."""


class Ambiguous(CatalogError):
    """A name matches several rows; the message lists their ids, which always work."""


class Conflict(CatalogError):
    """The write contradicts the row's state (a duplicate, a forbidden status change); `code`
    names which contradiction, for scripts (``already_blocked``, ``wrong_status``, ...)."""

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


class ImportRowError(CatalogError):
    """A row of an import file is bad; the whole import is refused and nothing is stored."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(f"row {row}: {reason}")
        self.row = row
        self.reason = reason
