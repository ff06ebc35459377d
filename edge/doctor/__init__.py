"""`festgate doctor`: is this device ready for the festival? Each check passes or says its fix.

`checks` holds the checks as functions of what they look at; `run` gathers that from this
machine; `parts` opens the configured hardware without reading from it.
"""

from __future__ import annotations

from edge.doctor.checks import Check
from edge.doctor.run import System, examine

__all__ = ["Check", "System", "examine"]
