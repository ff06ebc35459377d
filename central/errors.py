"""Central's one exception tree: `CentralError` and, beneath it, every refusal with the HTTP
status and stable error code the API answers it with (`central.api.errors` maps the whole
tree with one handler; the CLI prints the same code).

A `Contradiction` (HTTP 409) is a write that contradicts a row's state; it is not a sync
conflict (`central.conflicts`: facts that disagree), which is recorded, never raised.
"""

from __future__ import annotations


class CentralError(Exception):
    """Something central refuses on purpose: `status` is the HTTP answer, `code` the stable
    error code scripts read, `detail` the sentence for people."""

    status: int = 500
    code: str = "internal"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class ApiError(CentralError):
    """An error answer named where it is raised: HTTP status, stable code, human detail."""

    def __init__(self, status: int, code: str, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


class AuthError(ApiError):
    """A refused credential (401) or a caller not allowed to do this (403)."""


class CatalogError(CentralError, ValueError):
    """A catalog write refused for a reason a person can act on."""

    status = 422
    code = "invalid_request"


class NotFound(CatalogError, LookupError):
    """The festival, ticket, account or other row named does not exist (or is deleted)."""

    status = 404
    code = "not_found"


class Ambiguous(CatalogError):
    """A name matches several rows; the message lists their ids, which always work."""

    code = "ambiguous"


class Contradiction(CatalogError):
    """The write contradicts the row's state (a duplicate, a forbidden status change); `code`
    names which contradiction, for scripts (``already_blocked``, ``wrong_status``, ...)."""

    status = 409

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


class ImportRowError(CatalogError):
    """A row of an import file is bad; the whole import is refused and nothing is stored."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(f"row {row}: {reason}")
        self.row = row
        self.reason = reason
