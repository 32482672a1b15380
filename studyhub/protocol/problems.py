"""Pydantic validation errors turned into located problems: line, key path, value, fix."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from studyhub.protocol._base import Settings, Strict
from studyhub.protocol.yamlsource import Located, Problem, format_path

__all__ = ["model_at", "unwrap", "validate"]

M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], src: Located) -> M:
    """``model`` validated from ``src.data``, or one error listing every problem."""
    try:
        return model.model_validate(src.data)
    except ValidationError as exc:
        errors = _fitting_member(exc.errors(), src.data)
        raise src.fail(_merge([_problem(model, src, err) for err in errors])) from None


def _fitting_member(errors: list[ErrorDetails], data: Any) -> list[ErrorDetails]:
    """Drop "not a number" for a union member when the value is a list the other member
    checked item by item (``black_value: [-.inf]`` gets one problem, on its item)."""
    locs = [_clean_loc(err, data) for err in errors]
    return [
        err
        for err, loc in zip(errors, locs, strict=True)
        if not (
            err["type"].endswith("_type")
            and any(len(other) > len(loc) and other[: len(loc)] == loc for other in locs)
        )
    ]


def _merge(problems: list[Problem]) -> list[Problem]:
    """One problem per key: a value that fits no alternative of a union gives one line."""
    merged: dict[tuple[int | None, str], Problem] = {}
    for p in problems:
        seen = merged.get((p.line, p.path))
        if seen is None:
            merged[(p.line, p.path)] = p
        elif p.message not in seen.message:
            merged[(p.line, p.path)] = Problem(
                p.line, p.path, f"{seen.message}; or {p.message}", f"{seen.fix}; or {p.fix}"
            )
    return list(merged.values())


def _clean_loc(err: ErrorDetails, data: Any) -> tuple[str | int, ...]:
    """The error's key path in the file: without validator and union-member tags."""
    loc = err["loc"]
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if part == "[key]":  # the error is about the mapping's key itself, already on the path
            continue
        if isinstance(data, Mapping):
            if part in data:
                out.append(part)
                data = data[part]
            elif i == len(loc) - 1 and err["type"] in ("missing", "extra_forbidden"):
                out.append(part)
            continue  # a tag naming a union member or validator, not a key
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            out.append(part)
            data = data[part]
    return tuple(out)


def _problem(model: type[BaseModel], src: Located, err: ErrorDetails) -> Problem:
    loc = _clean_loc(err, src.data)
    path = format_path(loc)
    kind = err["type"]
    found = err.get("input")
    line = src.line_of(loc)
    if kind == "missing":
        parent = model_at(model, loc[:-1], src.data)
        return Problem(
            line,
            path,
            "required key is missing",
            f"add '{loc[-1]}:' — {_description(parent, loc[-1])}",
        )
    if kind == "extra_forbidden":
        return _unknown_key(model_at(model, loc[:-1], src.data), line, path, str(loc[-1]))
    message = err["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        problem, _, fix = message.partition("; ")
        return Problem(line, path, problem, fix or _fix_for(model, loc, kind, src.data))
    shown = repr(found) if not isinstance(found, dict | list) else type(found).__name__
    if kind == "finite_number":
        message = "input should be a finite number, not infinity or NaN"
    return Problem(
        line,
        path,
        f"{message[0].lower()}{message[1:]} (found {shown})",
        _fix_for(model, loc, kind, src.data),
    )


def _unknown_key(parent: type[BaseModel] | None, line: int | None, path: str, key: str) -> Problem:
    allowed = list(parent.model_fields) if parent is not None else []
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
    hint = f"did you mean '{close[0]}'? " if close else ""
    if parent is not None and issubclass(parent, Settings):
        accepts = (
            f"{parent.owner} accepts: {', '.join(allowed)}"
            if allowed
            else f"{parent.owner} takes no {parent.noun}s"
        )
        return Problem(
            line,
            path,
            f"{parent.owner} has no {parent.noun} {key!r}",
            f"{hint}remove it or correct its spelling; {accepts}",
        )
    listed = ", ".join(allowed) if parent is not None else "see the reference"
    return Problem(
        line,
        path,
        "unknown key",
        f"{hint}remove it or correct its spelling; keys allowed here: {listed}",
    )


_FIXES = {
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write text (quote it if YAML reads it as a number or date)",
    "list_type": "write a YAML list (lines starting with '- ')",
    "dict_type": "write a YAML mapping of keys",
    "model_type": "write a YAML mapping of keys",
    "model_attributes_type": "write a YAML mapping of keys",
    "string_pattern_mismatch": "use the documented form",
    "literal_error": "use one of the listed values",
    "finite_number": "write a finite number (.inf, -.inf and .nan are not values a study can use)",
}
_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _field_of(
    model: type[BaseModel], loc: tuple[Any, ...], data: Any
) -> tuple[str | None, type[BaseModel] | None]:
    """The innermost schema field on ``loc`` and its model (skipping dict keys and indexes)."""
    for i in range(len(loc) - 1, -1, -1):
        part = loc[i]
        if isinstance(part, str):
            owner = model_at(model, loc[:i], data)
            if owner is not None and part in owner.model_fields:
                return part, owner
    return None, None


def _fix_for(model: type[BaseModel], loc: tuple[Any, ...], kind: str, data: Any) -> str:
    field_name, parent = _field_of(model, loc, data)
    description = _description(parent, field_name) if field_name else ""
    base = _FIXES.get(kind, "correct the value")
    if kind == "string_pattern_mismatch" and field_name == "entry_point":
        base = "write it as package.module:function"
    elif kind == "string_pattern_mismatch":
        base = "use lower-case letters, digits and underscores, starting with a letter"
    elif kind in (*_RANGE_ERRORS, "finite_number") and parent is not None:
        bounds = _bounds(parent.model_fields.get(str(field_name)))
        if bounds:
            base = (
                f"{'write a finite number' if kind == 'finite_number' else 'use a value'} {bounds}"
            )
    return f"{base} ({field_name}: {description})" if description else base


_WORDS = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)


def _bounds(info: FieldInfo | None) -> str:
    """The allowed range of a field, as '>= 1 and <= 10000' (also inside lists and dicts)."""
    if info is None:
        return ""
    found = _constraints(info.metadata) or _constraints_in(info.annotation)
    return " and ".join(found)


def _constraints(metadata: list[Any]) -> list[str]:
    out = []
    for item in metadata:
        for cls, attr, sign in _WORDS:
            if isinstance(item, cls):
                out.append(f"{sign} {getattr(item, attr)}")
    return out


def _constraints_in(tp: Any) -> list[str]:
    if typing.get_origin(tp) is typing.Annotated:
        found = _constraints(list(getattr(tp, "__metadata__", ())))
        for meta in getattr(tp, "__metadata__", ()):
            if isinstance(meta, FieldInfo):
                found += _constraints(meta.metadata)
        if found:
            return found
    for arg in typing.get_args(tp):
        found = _constraints_in(arg)
        if found:
            return found
    return []


def _description(model: type[BaseModel] | None, name: object) -> str:
    if model is None or not isinstance(name, str) or name not in model.model_fields:
        return "see the field reference (studyhub validate --reference)"
    return model.model_fields[name].description or ""


def model_at(
    model: type[BaseModel], loc: tuple[Any, ...], data: Any = None
) -> type[BaseModel] | None:
    """The pydantic model that owns the keys at ``loc`` (walking lists and dicts).

    ``data`` is the file's content along the same path: where a field's schema
    depends on its siblings (an arm's ``params`` on its ``method``), the model's
    :meth:`~studyhub.protocol._base.Strict.schema_of` picks it.
    """
    current: Any = model
    for part in loc:
        current = unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            chosen = None
            if issubclass(current, Strict) and isinstance(data, Mapping):
                chosen = current.schema_of(part, data)
            data = data.get(part) if isinstance(data, Mapping) else None
            current = chosen if chosen is not None else current.model_fields[part].annotation
        else:
            args = typing.get_args(current)
            if not args:
                return None
            current = args[-1]  # list[X] -> X, dict[K, V] -> V
            data = _child(data, part)
    current = unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _child(data: Any, part: Any) -> Any:
    if isinstance(data, Mapping):
        return data.get(part)
    if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
        return data[part]
    return None


def unwrap(tp: Any) -> Any:
    """Drop Optional and Annotated wrappers."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp
