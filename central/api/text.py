"""Request text that PostgreSQL can store: a string without a NUL character (U+0000).

PostgreSQL's text and jsonb cannot hold a NUL; a request string that carries one would fail
in the database, after the request was accepted. Every str that a request model or a query
or path parameter of the ops and enrol API takes is `PgText`, so a NUL is refused with
``422 invalid_request`` before any handler runs, and the OpenAPI schema says so (a pattern).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

NUL_FREE_PATTERN = r"^[^\x00]*$"

PgText = Annotated[str, StringConstraints(pattern=NUL_FREE_PATTERN)]
