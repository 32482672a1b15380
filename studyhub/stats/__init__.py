"""Statistics of reader studies: tidy data frames in, typed results out.

Nothing here imports the store, so every function also serves data that studyhub
did not collect. Each function takes a long data frame plus column names as
keyword arguments, e.g. ``icc(data, targets="case", raters="rater", ratings="score")``.
"""

from studyhub.stats.agreement import (
    CohenKappaResult,
    FleissKappaResult,
    ICCResult,
    IntraRaterResult,
    KrippendorffAlphaResult,
    cohen_kappa,
    fleiss_kappa,
    icc,
    intra_rater_agreement,
    krippendorff_alpha,
)
from studyhub.stats.correlation import MetricCorrelationResult, metric_correlation
from studyhub.stats.imrmc import read_imrmc, write_imrmc
from studyhub.stats.mrmc import MRMCResult, mrmc

__all__ = [
    "CohenKappaResult",
    "FleissKappaResult",
    "ICCResult",
    "IntraRaterResult",
    "KrippendorffAlphaResult",
    "MRMCResult",
    "MetricCorrelationResult",
    "cohen_kappa",
    "fleiss_kappa",
    "icc",
    "intra_rater_agreement",
    "krippendorff_alpha",
    "metric_correlation",
    "mrmc",
    "read_imrmc",
    "write_imrmc",
]
