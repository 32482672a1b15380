"""Inter- and intra-rater agreement: Krippendorff's alpha, ICC, Fleiss' and Cohen's kappa.

Every function takes a long (tidy) data frame with one row per rating plus the
names of its columns, checks the input with :mod:`studyhub.stats._data`, and
returns a frozen dataclass with snake_case attributes (``estimate``,
``ci_low``, ``ci_high``, ``p_value`` ...). Bad input raises
:class:`studyhub.errors.DataError`; no function returns a silent NaN.

Rated units that are not independent — a case shown under several arms gives
one unit per arm, and those share the case — are resampled together: every
function takes ``clusters=`` (the column of the case), and its bootstrap then
draws whole clusters with all their units and all their raters' ratings.

This module is the public face of the agreement statistics; each lives in a
module of its own:

- :mod:`studyhub.stats.icc`: :func:`icc` (Shrout–Fleiss forms), :class:`ICCResult`,
  :class:`ICCForm`;
- :mod:`studyhub.stats.kappa`: :func:`cohen_kappa` and its result;
- :mod:`studyhub.stats.fleiss`: :func:`fleiss_kappa` and its result;
- :mod:`studyhub.stats.krippendorff`: :func:`krippendorff_alpha`;
- :mod:`studyhub.stats.intra_rater`: :func:`intra_rater_agreement`.
"""

from __future__ import annotations

from studyhub.stats.fleiss import FleissKappaResult, fleiss_kappa
from studyhub.stats.icc import ICCForm, ICCResult, icc
from studyhub.stats.intra_rater import IntraRaterResult, intra_rater_agreement
from studyhub.stats.kappa import CohenKappaResult, cohen_kappa
from studyhub.stats.krippendorff import KrippendorffAlphaResult, krippendorff_alpha

# Kept importable from here for code written against the single-module layout.
from studyhub.stats.krippendorff import _AlphaParts as _AlphaParts

__all__ = [
    "CohenKappaResult",
    "FleissKappaResult",
    "ICCForm",
    "ICCResult",
    "IntraRaterResult",
    "KrippendorffAlphaResult",
    "cohen_kappa",
    "fleiss_kappa",
    "icc",
    "intra_rater_agreement",
    "krippendorff_alpha",
]
