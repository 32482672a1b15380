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
from studyhub.stats.bootstrap import ClusterBootstrap, cluster_bootstrap
from studyhub.stats.compare import ArmComparison, compare_arms, friedman_test, wilcoxon_signed_rank
from studyhub.stats.correlation import MetricCorrelationResult, metric_correlation
from studyhub.stats.criteria import CriteriaReport, EndpointResult, evaluate_criteria
from studyhub.stats.imrmc import read_imrmc, write_imrmc
from studyhub.stats.mrmc import MRMCResult, mrmc
from studyhub.stats.multiplicity import adjust_pvalues
from studyhub.stats.power import PowerResult, power_simulation

__all__ = [
    "ArmComparison",
    "ClusterBootstrap",
    "CohenKappaResult",
    "CriteriaReport",
    "EndpointResult",
    "FleissKappaResult",
    "ICCResult",
    "IntraRaterResult",
    "KrippendorffAlphaResult",
    "MRMCResult",
    "MetricCorrelationResult",
    "PowerResult",
    "adjust_pvalues",
    "cluster_bootstrap",
    "cohen_kappa",
    "compare_arms",
    "evaluate_criteria",
    "fleiss_kappa",
    "friedman_test",
    "icc",
    "intra_rater_agreement",
    "krippendorff_alpha",
    "metric_correlation",
    "mrmc",
    "power_simulation",
    "read_imrmc",
    "wilcoxon_signed_rank",
    "write_imrmc",
]
