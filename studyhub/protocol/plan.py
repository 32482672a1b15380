"""The statistical analysis plan: endpoints, hypotheses and success criteria.

Registered with its protocol before any data exists; ``studyhub analyze`` refuses
to run against a plan whose hash differs from the registered one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from studyhub.protocol._base import Identifier, Strict, require_unique
from studyhub.protocol.plan_options import STATISTIC_OPTIONS
from studyhub.protocol.plan_rules import DataRules

__all__ = [
    "AGREEMENT_STATISTICS",
    "COMPARISON_STATISTICS",
    "CONDITIONAL_STATISTICS",
    "PROPORTION_STATISTICS",
    "AnalysisPlan",
    "Comparison",
    "Endpoint",
    "Hypothesis",
    "PowerPlan",
]

#: Statistics that compare arms (need ``comparison``).
COMPARISON_STATISTICS = ("mixed_model", "ordinal", "friedman", "cluster_bootstrap", "mrmc")
#: Statistics of agreement between raters (need an ``agreement`` hypothesis).
AGREEMENT_STATISTICS = (
    "krippendorff_alpha",
    "icc",
    "fleiss_kappa",
    "cohen_kappa",
    "intra_rater",
)
#: Statistics relating human judgements to stored quantitative metrics.
CORRELATION_STATISTICS = ("spearman",)
#: Proportions with a two-way (rater and case) clustered interval: a ``proportion`` hypothesis
#: (the lower bound reaches a threshold) or, with ``comparison``, a difference between two arms.
PROPORTION_STATISTICS = ("accuracy", "cue_marks")
#: Statistics whose inference holds for the raters read only (raters fixed, cases random):
#: sensitivity or descriptive analyses, refused for a primary endpoint (DESIGN: a primary
#: endpoint generalises to new raters and new cases). Each maps to the reason.
CONDITIONAL_STATISTICS: dict[str, str] = {
    "friedman": "friedman compares arms within cases after averaging over the raters read, "
    "so its p-value and interval are conditional on those raters (fixed raters, random "
    "cases) and do not generalise to new raters: when raters differ in how much an arm "
    "helps them it rejects a true null far more often than alpha",
    "ordinal": "ordinal fits a fixed effect for each rater read and clusters its standard "
    "errors by case only, so its p-value and interval are conditional on those raters "
    "(fixed raters, random cases) and do not generalise to new raters: when raters differ "
    "in how much an arm helps them it rejects a true null far more often than alpha",
    **{
        stat: f"{stat}'s interval leaves out one case at a time for the raters read, so it "
        "describes agreement among those raters (random cases, fixed raters) and does not "
        "cover the sampling of new raters (simulated coverage 0.84-0.89 against the rater "
        "population's value with 6-12 raters)"
        for stat in AGREEMENT_STATISTICS
    },
    "spearman": "spearman correlates the case means of the raters read with a metric and "
    "resamples cases only, so its interval is conditional on those raters (random cases, "
    "fixed raters) and does not generalise to new raters",
}


#: The mixed model's random interactions a primary endpoint must keep (the defaults).
_GENERALISING_TERMS = ("rater_by_arm", "case_by_arm", "rater_by_case")


class Comparison(Strict):
    """A contrast between two arms: ``arm`` minus ``versus``."""

    arm: Identifier = Field(description="the arm expected to do better (protocol arm id)")
    versus: Identifier = Field(description="the arm it is compared with (protocol arm id)")

    @model_validator(mode="after")
    def _different(self) -> Comparison:
        if self.arm == self.versus:
            raise ValueError(
                f"comparison compares arm {self.arm!r} with itself; compare two different arms"
            )
        return self


#: Hypothesis types decided by the lower confidence limit reaching a threshold.
_THRESHOLD_TYPES = ("agreement", "correlation", "proportion")


class Hypothesis(Strict):
    """What the endpoint must show, stated before the data."""

    type: Literal["superiority", "non_inferiority", "agreement", "correlation", "proportion"] = (
        Field(
            description="superiority: arm beats versus; non_inferiority: arm is no worse than "
            "versus by more than margin; agreement / correlation / proportion: the estimate "
            "reaches threshold (proportion: accuracy or cue_marks without a comparison)"
        )
    )
    margin: float | None = Field(
        default=None,
        gt=0.0,
        description="non_inferiority only: the largest acceptable deficit, on the measure's "
        "scale (above 0, below the span of a likert item's scale)",
    )
    threshold: float | None = Field(
        default=None,
        ge=-1.0,
        le=1.0,
        description="agreement / correlation / proportion only: the least acceptable value of "
        "the lower confidence limit (agreement and correlation coefficients lie in -1..1, a "
        "proportion strictly between 0 and 1)",
    )

    @model_validator(mode="after")
    def _parameters(self) -> Hypothesis:
        if self.type == "non_inferiority" and self.margin is None:
            raise ValueError("a non_inferiority hypothesis needs a margin; add e.g. margin: 0.3")
        if self.type != "non_inferiority" and self.margin is not None:
            raise ValueError(
                f"margin applies to non_inferiority only, not {self.type}; remove margin"
            )
        if self.type in _THRESHOLD_TYPES and self.threshold is None:
            raise ValueError(f"a {self.type} hypothesis needs a threshold; add e.g. threshold: 0.6")
        if self.type not in _THRESHOLD_TYPES and self.threshold is not None:
            raise ValueError(
                f"threshold applies to agreement / correlation / proportion, not {self.type}; "
                "remove threshold"
            )
        if self.type == "proportion" and not 0.0 < float(self.threshold or 0.0) < 1.0:
            raise ValueError(
                f"a proportion hypothesis needs a threshold strictly between 0 and 1, not "
                f"{self.threshold:g}; give the least acceptable proportion, e.g. threshold: 0.8"
            )
        return self


class Endpoint(Strict):
    """One pre-specified endpoint and its success criterion."""

    id: Identifier = Field(description="the endpoint's name in reports")
    primary: bool = Field(
        default=False,
        description="primary endpoints decide the study's success: every one must pass; "
        "friedman and ordinal, conditional on the raters read, may only be secondary",
    )
    description: str = Field(min_length=3, description="the endpoint in words")
    measure: str = Field(
        min_length=1,
        description="an instrument item id, 'auc' (mrmc, reader_diagnosis), 'cue_marks' "
        "(cue_marks) or 'metric:NAME' for a stored quantitative metric",
    )
    statistic: Literal[
        "mixed_model",
        "ordinal",
        "friedman",
        "cluster_bootstrap",
        "mrmc",
        "krippendorff_alpha",
        "icc",
        "fleiss_kappa",
        "cohen_kappa",
        "intra_rater",
        "spearman",
        "accuracy",
        "cue_marks",
    ] = Field(
        description="the analysis that estimates the endpoint; validate refuses one that does "
        "not fit the measured item's type (e.g. mixed_model on a single_choice item, accuracy "
        "on a likert item, anything on free text)"
    )
    comparison: Comparison | None = Field(
        default=None, description="the contrast, for comparison statistics"
    )
    arms: list[Identifier] | None = Field(
        default=None,
        description="agreement / correlation: restrict to these arms (null means all arms)",
    )
    hypothesis: Hypothesis = Field(description="the hypothesis the endpoint tests")
    success_criterion: str = Field(
        min_length=10,
        description="the criterion in words, quoted verbatim in the report",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="statistic options (e.g. n_boot, level for Krippendorff's alpha, form for "
        "ICC), checked against the statistic's own list below (Endpoint options by statistic) "
        "and hashed as written",
    )

    @classmethod
    def schema_of(cls, name: str, data: Mapping[str, Any]) -> type[BaseModel] | None:
        statistic = data.get("statistic")
        if name != "options" or not isinstance(statistic, str):
            return None
        return STATISTIC_OPTIONS.get(statistic)

    @field_validator("options")
    @classmethod
    def _options_of_statistic(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        statistic = info.data.get("statistic")
        if statistic is not None:  # else the statistic's own error is reported
            STATISTIC_OPTIONS[statistic].model_validate(options)
        dropped = [k for k in _GENERALISING_TERMS if options.get(k) is False]
        if statistic == "mixed_model" and info.data.get("primary", False) and dropped:
            raise ValueError(
                f"{', '.join(f'{k}: false' for k in dropped)} is refused for a primary endpoint "
                "(primary: true): without the random interaction the mixed model conditions on "
                "the raters and cases read, and when raters or cases differ in how much an arm "
                "helps it rejects a true null far more often than alpha (0.27-0.51 instead of "
                "0.05 in simulation); remove the option (the full model is the default) or "
                "make this endpoint a secondary sensitivity analysis (primary: false)"
            )
        return options  # hashed as written: no defaults filled in

    @field_validator("statistic")
    @classmethod
    def _primary_generalises(cls, statistic: str, info: ValidationInfo) -> str:
        reason = CONDITIONAL_STATISTICS.get(statistic)
        if reason is not None and info.data.get("primary", False):
            if statistic in COMPARISON_STATISTICS:
                fix = (
                    "use statistic: mixed_model for the primary endpoint (random rater and case "
                    f"effects: generalises to new raters and cases) and keep {statistic} as a "
                    "secondary sensitivity analysis (primary: false)"
                )
            else:
                fix = (
                    f"keep {statistic} as a secondary endpoint (primary: false) and make an arm "
                    "comparison (statistic: mixed_model) the primary endpoint"
                )
            raise ValueError(
                f"statistic {statistic!r} is refused for a primary endpoint (primary: true): "
                f"{reason}; {fix}"
            )
        return statistic

    @model_validator(mode="after")
    def _statistic_fits(self) -> Endpoint:
        if self.statistic in PROPORTION_STATISTICS:
            self._proportion_fits()
        elif self.statistic in COMPARISON_STATISTICS:
            if self.comparison is None:
                raise ValueError(
                    f"endpoint {self.id!r} uses {self.statistic}, which compares arms; "
                    "add comparison: {arm: ..., versus: ...}"
                )
            if self.hypothesis.type not in ("superiority", "non_inferiority"):
                raise ValueError(
                    f"endpoint {self.id!r} compares arms with {self.statistic}; its "
                    f"hypothesis must be superiority or non_inferiority, not "
                    f"{self.hypothesis.type}; set hypothesis.type accordingly"
                )
        else:
            if self.comparison is not None:
                raise ValueError(
                    f"endpoint {self.id!r} uses {self.statistic}, which does not compare "
                    "arms; remove comparison (use arms: to restrict the data)"
                )
            wanted = "correlation" if self.statistic in CORRELATION_STATISTICS else "agreement"
            if self.hypothesis.type != wanted:
                raise ValueError(
                    f"endpoint {self.id!r} uses {self.statistic}; its hypothesis type "
                    f"must be {wanted}, not {self.hypothesis.type}; set hypothesis.type: {wanted}"
                )
        if self.statistic == "mrmc" and self.measure != "auc":
            raise ValueError(
                f"endpoint {self.id!r} uses mrmc, so its measure must be 'auc', not "
                f"{self.measure!r}; set measure: auc"
            )
        if (self.statistic == "cue_marks") != (self.measure == "cue_marks"):
            raise ValueError(
                f"endpoint {self.id!r} uses {self.statistic} with measure {self.measure!r}: the "
                "cue_marks statistic and the cue_marks measure go together; set statistic: "
                "cue_marks with measure: cue_marks, or measure an instrument item"
            )
        if self.statistic == "spearman" and not self.measure.startswith("metric:"):
            raise ValueError(
                f"endpoint {self.id!r} uses spearman, so its measure must be a stored metric; "
                "write it as metric:NAME (e.g. metric:deletion_auc)"
            )
        return self

    def _proportion_fits(self) -> None:
        """accuracy / cue_marks: a threshold on one proportion, or a difference of two arms."""
        h = self.hypothesis
        if self.comparison is None and h.type != "proportion":
            raise ValueError(
                f"endpoint {self.id!r} uses {self.statistic} without a comparison, so its "
                f"hypothesis type must be proportion, not {h.type}; set hypothesis: {{type: "
                "proportion, threshold: ...}, or add comparison: {arm: ..., versus: ...}"
            )
        if self.comparison is not None and h.type not in ("superiority", "non_inferiority"):
            raise ValueError(
                f"endpoint {self.id!r} compares two arms' {self.statistic}; its hypothesis "
                f"must be superiority or non_inferiority, not {h.type}; set hypothesis.type "
                "accordingly (or remove comparison for a threshold on one proportion)"
            )
        if h.margin is not None and h.margin >= 1.0:
            raise ValueError(
                f"margin {h.margin:g} of endpoint {self.id!r} is not below 1, the span of a "
                f"proportion ({self.statistic}), so no result could fail it; give the largest "
                "acceptable deficit as a proportion, e.g. margin: 0.05"
            )


class PowerPlan(Strict):
    """Assumptions of the power simulation (it simulates and fits one mixed model)."""

    effect: float = Field(description="assumed true difference of the primary contrast")
    sd_rater: float = Field(ge=0.0, description="SD of rater random intercepts")
    sd_case: float = Field(ge=0.0, description="SD of case random intercepts")
    sd_residual: float = Field(gt=0.0, description="SD of the residual")
    sd_rater_arm: float = Field(
        default=0.0,
        ge=0.0,
        description="SD of rater x arm intercepts (raters who gain more from one arm)",
    )
    sd_case_arm: float = Field(
        default=0.0,
        ge=0.0,
        description="SD of case x arm intercepts (cases on which one arm helps more than on "
        "others)",
    )
    sd_rater_case: float = Field(
        default=0.0,
        ge=0.0,
        description="SD of rater x case intercepts (a rater finds a case harder than others do, "
        "under every arm)",
    )
    n_raters: int = Field(ge=2, le=10_000, description="planned number of raters")
    n_cases: int = Field(ge=2, le=1_000_000, description="planned number of cases")
    target_power: float = Field(
        default=0.8, gt=0.0, lt=1.0, description="the power the design must reach"
    )
    n_sims: int = Field(default=1000, ge=100, le=1_000_000, description="simulated studies")


class AnalysisPlan(Strict):
    """A statistical analysis plan, registered together with its protocol."""

    id: Identifier = Field(description="the plan's short name")
    protocol: Identifier = Field(description="the id of the protocol this plan belongs to")
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=0.5,
        description="family-wise type-I error rate; every hypothesis of a plan is one-sided, "
        "tested at this level",
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1.0,
        description="level of every confidence interval: a one-sided lower bound for the "
        "plan's one-sided hypotheses, so it must equal 1 - alpha; Bonferroni-level (1 - (1 - "
        "confidence) / m) for the m primary comparisons under holm or bonferroni",
    )
    multiplicity: Literal["holm", "bonferroni", "fixed_sequence", "none"] = Field(
        default="holm",
        description="how p-values of the primary comparison endpoints are adjusted (one that "
        "cannot be evaluated stays in the family with p = 1); fixed_sequence tests them in "
        "the listed order and stops at the first failure",
    )
    endpoints: list[Endpoint] = Field(min_length=1, description="the pre-specified endpoints")
    power: PowerPlan | None = Field(
        default=None, description="assumptions for `studyhub power`, or null"
    )
    data_rules: DataRules = Field(
        default_factory=DataRules,
        description="which raters and readings the analyses keep (attention-check failures, "
        "incomplete raters, washout violations, missing answers); every one left out is "
        "listed as a deviation",
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, endpoints: list[Endpoint]) -> list[Endpoint]:
        require_unique([e.id for e in endpoints], what="endpoint ids", each="endpoint")
        if not any(e.primary for e in endpoints):
            raise ValueError(
                "the plan has no primary endpoint; mark at least one endpoint with primary: true"
            )
        return endpoints
