"""Models built from values already known to be valid, for the decision path.

``model_construct`` walks every field for aliases and defaults and builds a fields-set on
each call: about 12 µs per model, two models per scan. A value read back from the replica
(validated when it was written) or made by the journal itself needs none of that.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def trusted(cls: type[M], values: dict[str, Any]) -> M:
    """An instance of `cls` holding `values`, which must give every field (no defaults, no
    checks); for plain models only (no private attributes, extras or post-init)."""
    obj = cls.__new__(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(values))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj
