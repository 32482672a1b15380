"""Eligibility: which read cases may be enrolled, and why the others may not.

Each excluded case gets one reason, the first criterion it fails in this fixed
order, so that a case-flow diagram counts every case once:

1. split: ``split 'train' is not the pool split 'test'`` (skipped when the pool
   split is ``None``);
2. label: ``label 'none' not eligible``;
3. mask: ``no mask`` (only with ``require_mask``);
4. metadata, in the order the protocol lists the columns:
   ``lighting 'dim' not in [bright]`` or ``lighting missing, not in [bright]``.

Metadata values are compared as text the way a manifest writes them: a bool
matches ``true``/``false`` (any case), a number matches an allowed value equal
to it as a number (``1.0`` matches ``1``), text matches exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

from studyhub.cases.records import CaseRecord, MetadataValue
from studyhub.errors import DataError, InputError
from studyhub.protocol.schema import Eligibility

__all__ = ["apply_eligibility", "eligibility_problems"]


def _matches(value: MetadataValue, allowed: str) -> bool:
    if isinstance(value, bool):
        return allowed.strip().lower() == ("true" if value else "false")
    if isinstance(value, int | float):
        try:
            return float(allowed) == float(value)
        except ValueError:
            return False
    return value == allowed


def eligibility_problems(
    records: Sequence[CaseRecord], eligibility: Eligibility, *, pool_split: str | None
) -> list[str]:
    """Criteria that no case could meet because they name nothing in the data.

    Parameters
    ----------
    records : sequence of CaseRecord
        The cases the criteria are applied to.
    eligibility : Eligibility
        The protocol's ``sampling.eligibility``.
    pool_split : str or None
        The protocol's ``sampling.pool_split``.

    Returns
    -------
    list of str
        Each problem with the value and its fix: a pool split that no case has, an
        eligibility metadata column that no case has. Empty when there are no records.
    """
    if not records:
        return []
    problems = []
    if pool_split is not None:
        splits = sorted({r.split for r in records if r.split is not None})
        if pool_split not in splits:
            found = f"the data's splits are {splits}" if splits else "the data has no split column"
            problems.append(
                f"sampling.pool_split is {pool_split!r} but {found}; set sampling.pool_split to "
                "one of them, or to null to draw from every case"
            )
    columns = sorted({key for r in records for key in r.metadata})
    unknown = [name for name in eligibility.metadata if name not in columns]
    if unknown:
        problems.append(
            f"sampling.eligibility.metadata names column(s) {unknown} that no case has; "
            f"the metadata columns are {columns}: correct the name or remove the criterion"
        )
    return problems


def _reason(record: CaseRecord, eligibility: Eligibility, pool: str | None) -> str | None:
    if pool is not None and record.split != pool:
        if record.split is None:
            return f"split missing, not the pool split {pool!r}"
        return f"split {record.split!r} is not the pool split {pool!r}"
    if eligibility.labels is not None and record.label not in eligibility.labels:
        return f"label {record.label!r} not eligible"
    if eligibility.require_mask and record.mask_path is None:
        return "no mask"
    for name, allowed in eligibility.metadata.items():
        shown = f"[{', '.join(allowed)}]"
        if name not in record.metadata:
            return f"{name} missing, not in {shown}"
        value = record.metadata[name]
        if not any(_matches(value, a) for a in allowed):
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            return f"{name} {text!r} not in {shown}"
    return None


def apply_eligibility(
    records: Sequence[CaseRecord],
    eligibility: Eligibility,
    *,
    pool_split: str | None,
) -> tuple[list[CaseRecord], list[tuple[CaseRecord, str]]]:
    """Split cases into eligible ones and excluded ones with a reason.

    Parameters
    ----------
    records : sequence of CaseRecord
        Cases from :func:`~studyhub.cases.dataset.read_cases`.
    eligibility : Eligibility
        The protocol's ``sampling.eligibility``.
    pool_split : str or None
        The protocol's ``sampling.pool_split``; ``None`` keeps every split.

    Returns
    -------
    eligible : list of CaseRecord
        In input order.
    excluded : list of (CaseRecord, str)
        In input order, each with the first criterion it fails (see the module
        notes), e.g. ``"label 'none' not eligible"``.

    Raises
    ------
    DataError
        If ``pool_split`` is not a split of any case, or an eligibility metadata
        column is not a metadata column of any case: such criteria are typos, and
        excluding every case for them would hide that.
    InputError
        If ``records`` holds something other than case records.
    """
    if not isinstance(eligibility, Eligibility):
        raise InputError(
            f"eligibility is a {type(eligibility).__name__}; pass the protocol's "
            "sampling.eligibility"
        )
    records = list(records)
    wrong = [type(r).__name__ for r in records if not isinstance(r, CaseRecord)]
    if wrong:
        raise InputError(
            f"records holds {wrong[0]} objects; pass the CaseRecord list from read_cases"
        )
    problems = eligibility_problems(records, eligibility, pool_split=pool_split)
    if problems:
        raise DataError(problems[0])
    eligible: list[CaseRecord] = []
    excluded: list[tuple[CaseRecord, str]] = []
    for record in records:
        reason = _reason(record, eligibility, pool_split)
        if reason is None:
            eligible.append(record)
        else:
            excluded.append((record, reason))
    return eligible, excluded
