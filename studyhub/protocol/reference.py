"""The field reference of protocols and analysis plans, generated from the schemas."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from studyhub.protocol._base import NOT_NULL
from studyhub.protocol.arm_params import ARM_PARAMS
from studyhub.protocol.plan import AnalysisPlan
from studyhub.protocol.plan_options import STATISTIC_OPTIONS
from studyhub.protocol.problems import unwrap
from studyhub.protocol.schema import Protocol

__all__ = ["field_reference", "undocumented_fields"]


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """``root`` and every model nested in it, each once, in reading order."""
    seen: list[type[BaseModel]] = []

    def visit(tp: object) -> None:
        tp = unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.append(tp)
            for f in tp.model_fields.values():
                visit(f.annotation)
        else:
            for arg in typing.get_args(tp):
                visit(arg)

    visit(root)
    return seen


def _settings() -> list[type[BaseModel]]:
    return [*ARM_PARAMS.values(), *STATISTIC_OPTIONS.values()]


def undocumented_fields() -> list[str]:
    """``Model.field`` of every field without a description (should be none)."""
    models = [m for root in (Protocol, AnalysisPlan) for m in _models(root)] + _settings()
    return [
        f"{m.__name__}.{name}"
        for m in models
        for name, f in m.model_fields.items()
        if not (f.description and f.description.strip())
    ]


_BOUNDS = (
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Le, "le", "<="),
    (annotated_types.Lt, "lt", "<"),
)
_IDENTIFIER = "^[a-z][a-z0-9_]{0,62}$"


def _bounds(metadata: typing.Iterable[Any]) -> list[str]:
    out = []
    for item in metadata:
        if isinstance(item, FieldInfo):
            out += _bounds(item.metadata)
        for cls, attr, sign in _BOUNDS:
            if isinstance(item, cls):
                out.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            out.append(f"at least {item.min_length} long")
        if isinstance(item, annotated_types.MaxLen) and item.max_length is not None:
            out.append(f"at most {item.max_length} long")
    return out


def _type_name(tp: Any) -> str:
    """A readable type: ``list[identifier]``, ``int (>= 0, <= 65535)``, ``float | None``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        meta = tp.__metadata__
        if any(getattr(m, "pattern", None) == _IDENTIFIER for m in meta):
            return "identifier"
        bounds = _bounds(meta)
        inner = _type_name(args[0])
        return f"{inner} ({', '.join(bounds)})" if bounds else inner
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]"
    if tp is type(None):
        return "None"
    if tp is Any:
        return "Any"
    return getattr(tp, "__name__", str(tp))


def _table(m: type[BaseModel]) -> list[str]:
    if not m.model_fields:
        return ["No parameters.", ""]
    out = ["| key | type | range | default | description |", "| --- | --- | --- | --- | --- |"]
    for name, f in m.model_fields.items():
        if f.is_required():
            default = "required"
        elif f.default_factory is not None:
            default = "(see schema)"
        elif f.default is None and NOT_NULL in f.metadata:
            default = "(see description)"
        else:
            default = repr(f.default)
        desc = (f.description or "").replace("|", "\\|")
        kind = _type_name(f.annotation)
        if NOT_NULL in f.metadata:  # null is refused: show the type without it
            kind = kind.removesuffix(" | None")
        kind = kind.replace("|", "\\|")
        bounds = ", ".join(_bounds(f.metadata)) or "-"
        out.append(f"| `{name}` | `{kind}` | {bounds} | {default} | {desc} |")
    return [*out, ""]


def _settings_section(title: str, intro: str, models: Mapping[str, type[BaseModel]]) -> list[str]:
    out = [f"## {title}", "", intro, ""]
    for owner, m in models.items():
        out += [f"### {owner}", "", (m.__doc__ or "").strip().replace("\n    ", " "), ""]
        out += _table(m)
    return out


def field_reference() -> str:
    """Markdown: one table per model, every field with type, range, default and description."""
    out = [
        "# Protocol and analysis plan field reference",
        "",
        "Generated by `studyhub validate --reference > docs/protocol-reference.md`; "
        "do not edit by hand.",
        "",
        "Numbers are finite (.inf and .nan are refused), whole numbers are written without a "
        "decimal point, and true/false, numbers and text are never read as one another.",
        "",
    ]
    for root in (Protocol, AnalysisPlan):
        for m in _models(root):
            out += [f"## {m.__name__}", "", (m.__doc__ or "").strip(), ""]
            out += _table(m)
    out += _settings_section(
        "Arm parameters by method",
        "The keys an arm's `params` accepts, by its `method`. They are checked by "
        "`studyhub validate` and hashed exactly as written; a key left out takes the default "
        "when the arm runs. `randomized_model` also accepts every parameter of its "
        "`base_method`.",
        ARM_PARAMS,
    )
    out += _settings_section(
        "Endpoint options by statistic",
        "The keys an endpoint's `options` accepts, by its `statistic`; checked by "
        "`studyhub validate` and hashed exactly as written.",
        STATISTIC_OPTIONS,
    )
    return "\n".join(out).rstrip() + "\n"
