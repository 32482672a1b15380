"""The strict pydantic base every protocol and plan model derives from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["Identifier", "Strict", "require_unique"]

#: Short machine names used as keys and cross-references (arm ids, item ids, endpoint ids).
Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(description="a short name: lower-case letters, digits and underscores"),
]


class Strict(BaseModel):
    """Unknown keys are refused; values are validated, not coerced silently."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        use_attribute_docstrings=False,
        validate_default=True,
    )


def require_unique(keys: Sequence[str], *, what: str, each: str, key: str = "id") -> None:
    """Raise ``ValueError`` naming repeated ``keys``: "arm ids must be unique, [...] repeat"."""
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"{what} must be unique, {dupes} repeat; give each {each} its own {key}")
