"""Rater qualifications: the values typed for an account, checked against the protocol.

The registered protocol lists what is recorded for each rater
(``raters.qualifications``: years of experience with an optional minimum,
yes/no, text); :func:`check_qualifications` turns what the study lead typed
(``--qual inspection_years=4``) into typed values, or says what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from studyhub.errors import InputError
from studyhub.protocol.schema import Qualification

__all__ = ["check_qualifications"]


def check_qualifications(
    given: Mapping[str, str], required: Sequence[Qualification], *, role: str
) -> dict[str, Any]:
    """Validate ``id=value`` qualifications against the protocol's list.

    Parameters
    ----------
    given : mapping of str to str
        Qualification id -> the value as typed (``--qual inspection_years=4``).
    required : sequence of Qualification
        ``raters.qualifications`` of the registered protocol.
    role : str
        Raters must give every qualification; monitors and admins may omit them.

    Returns
    -------
    dict
        The typed values: years as float, yes_no as bool, text as str.

    Raises
    ------
    InputError
        For an unknown id, a missing one (raters), a value of the wrong type, or
        years below the protocol's minimum.
    """
    by_id = {q.id: q for q in required}
    unknown = sorted(set(given) - set(by_id))
    if unknown:
        raise InputError(
            f"unknown qualification {', '.join(map(repr, unknown))}; the protocol records "
            f"{', '.join(sorted(by_id)) or 'no qualifications'}"
        )
    missing = [q for q in required if q.id not in given]
    if role == "rater" and missing:
        hints = " ".join(f"--qual {q.id}={_example(q)}" for q in missing)
        raise InputError(
            f"missing qualification {', '.join(repr(q.id) for q in missing)} "
            f"({'; '.join(q.description for q in missing)}); add {hints}"
        )
    values: dict[str, Any] = {}
    for key, raw in given.items():
        q = by_id[key]
        text = raw.strip()
        if q.type == "years":
            try:
                years = float(text)
            except ValueError:
                years = math.nan
            if not math.isfinite(years) or years < 0:
                raise InputError(
                    f"qualification {key!r} is {raw!r}; give a number of years, e.g. {key}=4"
                )
            if q.minimum is not None and years < q.minimum:
                raise InputError(
                    f"qualification {key!r} is {years:g} years, below the protocol's minimum of "
                    f"{q.minimum:g} ({q.description}); this person does not qualify as a rater"
                )
            values[key] = years
        elif q.type == "yes_no":
            low = text.lower()
            if low not in ("yes", "no"):
                raise InputError(f"qualification {key!r} is {raw!r}; give {key}=yes or {key}=no")
            values[key] = low == "yes"
        else:
            if not text:
                raise InputError(f"qualification {key!r} is empty; give {key}=<text>")
            values[key] = text
    return values


def _example(q: Qualification) -> str:
    if q.type == "years":
        return f"{q.minimum:g}" if q.minimum is not None else "5"
    return "yes" if q.type == "yes_no" else "'...'"
