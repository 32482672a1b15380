"""The strict pydantic bases every protocol and plan model derives from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["NOT_NULL", "SEED_LIMIT", "Identifier", "Settings", "Strict", "require_unique"]

#: Short machine names used as keys and cross-references (arm ids, item ids, endpoint ids).
Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(description="a short name: lower-case letters, digits and underscores"),
]

#: The largest seed: every seed is a non-negative 64-bit signed integer.
SEED_LIMIT = 2**63


def refuse_null(value: Any) -> Any:
    """Refuse an explicit null for a setting whose default is chosen when the study runs."""
    if value is None:
        raise ValueError(
            "null is not a value of this setting; leave the key out to use its default, or "
            "write a value"
        )
    return value


#: Marks a setting whose default (None) means "chosen when the study runs": writing null
#: for it is refused, as the code that runs it would refuse it.
NOT_NULL = AfterValidator(refuse_null)


class Strict(BaseModel):
    """Unknown keys are refused; values are validated, not coerced silently.

    ``strict``: a number is never read from text or from true/false, a whole
    number never from 40.0, a switch never from 1 or "yes" (so two different
    values as written cannot validate to the same value and hash alike);
    ``allow_inf_nan=False``: .inf, -.inf and .nan are refused wherever a number
    is expected.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        str_strip_whitespace=True,
        use_attribute_docstrings=False,
        validate_default=True,
    )

    @classmethod
    def schema_of(cls, name: str, data: Mapping[str, Any]) -> type[BaseModel] | None:
        """The model that validates field ``name`` when it depends on ``data`` (its siblings).

        Free-form mappings such as an arm's ``params`` are checked against a schema
        chosen by another key (the arm's ``method``); error messages and the field
        reference ask here which one. None: the field's own annotation decides.
        """
        return None


class Settings(BaseModel):
    """Settings of one method or statistic (an arm's ``params``, an endpoint's ``options``).

    Strict and finite like :class:`Strict`. They are validated against this schema
    but stored and hashed exactly as written (defaults are not filled in and
    strings not stripped), so validating them never changes a registration hash.
    A field typed ``Annotated[X | None, NOT_NULL]`` with default None means "chosen
    when the study runs" (see its description); writing null for it is refused.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        validate_default=False,
    )

    #: What the settings belong to, in messages: "integrated_gradients", "icc" ...
    owner: ClassVar[str] = ""
    #: "parameter" or "option", in messages.
    noun: ClassVar[str] = "parameter"


def require_unique(keys: Sequence[str], *, what: str, each: str, key: str = "id") -> None:
    """Raise ``ValueError`` naming repeated ``keys``: "arm ids must be unique, [...] repeat"."""
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"{what} must be unique, {dupes} repeat; give each {each} its own {key}")
