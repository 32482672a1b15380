"""The options each endpoint statistic accepts: one schema per statistic.

An endpoint's ``options`` are validated against the schema of its ``statistic``
at validate time and stored and hashed exactly as written. Names and defaults
follow what :func:`studyhub.stats.criteria.evaluate_criteria` passes on to the
statistics; the ranges are theirs (a bootstrap takes at least 100 resamples).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from studyhub.protocol._base import NOT_NULL, SEED_LIMIT, Identifier, Settings

__all__ = ["ICC_FORMS", "STATISTIC_OPTIONS"]

#: ICC forms by name (Shrout & Fleiss); ``icc`` also takes the McGraw & Wong aliases.
ICC_FORMS = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")
#: McGraw & Wong names of the ICC forms, written without spaces and in lower case.
ICC_ALIASES = {
    "icc(1,1)": "ICC1",
    "icc(2,1)": "ICC2",
    "icc(a,1)": "ICC2",
    "icc(3,1)": "ICC3",
    "icc(c,1)": "ICC3",
    "icc(1,k)": "ICC1k",
    "icc(2,k)": "ICC2k",
    "icc(a,k)": "ICC2k",
    "icc(3,k)": "ICC3k",
    "icc(c,k)": "ICC3k",
}

#: The most bootstrap resamples an endpoint may ask for (a guard against typos).
MAX_BOOT = 1_000_000


def _n_boot(default: int) -> int:
    return Field(
        default=default,
        ge=100,
        le=MAX_BOOT,
        description="bootstrap resamples (at least 100)",
    )


def _unused_n_boot(default: int) -> int:
    return Field(
        default=default,
        ge=100,
        le=MAX_BOOT,
        description="not used: the interval leaves out one case at a time (a jackknife) and "
        "draws no resamples; still accepted so that registered plans stay valid",
    )


class _Options(Settings):
    noun = "option"

    seed: Annotated[int | None, NOT_NULL] = Field(
        default=None,
        ge=0,
        lt=SEED_LIMIT,
        description="seed of this endpoint's resampling; default the protocol's seed",
    )


class MixedModelOptions(_Options):
    """Linear mixed model with crossed rater and case intercepts and their arm interactions."""

    owner = "mixed_model"
    rater_by_arm: bool = Field(
        default=True,
        description="random rater x arm intercept: raters differ in how much an arm helps them "
        "(false conditions on these raters: a sensitivity analysis)",
    )
    case_by_arm: bool = Field(
        default=True,
        description="random case x arm intercept: an arm helps more on some cases than on others "
        "(false conditions on these cases: a sensitivity analysis)",
    )
    rater_by_case: bool = Field(
        default=True,
        description="random rater x case intercept: a rater finds a case harder than others do, "
        "under every arm (left out of the residual, as in DBM)",
    )
    engine: Literal["studyhub", "statsmodels"] = Field(
        default="studyhub", description="the code that fits it (statsmodels: a cross-check)"
    )


class OrdinalOptions(_Options):
    """Cumulative-logit model of the ratings."""

    owner = "ordinal"


class FriedmanOptions(_Options):
    """Friedman test over complete rater x case blocks."""

    owner = "friedman"


class ClusterBootstrapOptions(_Options):
    """Two-way cluster bootstrap over raters and cases."""

    owner = "cluster_bootstrap"
    n_boot: int = _n_boot(2000)


class MrmcOptions(_Options):
    """Obuchowski-Rockette MRMC analysis of reader AUCs."""

    owner = "mrmc"
    item: Identifier = Field(
        default="diagnosis", description="the instrument item that holds the readers' diagnoses"
    )
    positive: Annotated[Identifier | None, NOT_NULL] = Field(
        default=None,
        description="the class whose presence is the binary truth of the ROC analysis (a "
        "data.labels entry); default: every class other than the first of data.labels is "
        "positive. The rating is the confidence that the case is positive: the stated "
        "confidence when the chosen class is positive, else 100 minus it",
    )


class KrippendorffOptions(_Options):
    """Krippendorff's alpha with a jackknife interval over cases."""

    owner = "krippendorff_alpha"
    level: Literal["nominal", "ordinal", "interval", "ratio"] = Field(
        default="ordinal", description="the measurement level of the ratings"
    )
    n_boot: int = _unused_n_boot(2000)


class IccOptions(_Options):
    """Intraclass correlation (Shrout & Fleiss) with a jackknife interval over cases."""

    owner = "icc"
    form: str = Field(
        default="ICC2",
        description="ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k or a McGraw & Wong name such as "
        "ICC(A,1)",
    )

    @field_validator("form")
    @classmethod
    def _known_form(cls, form: str) -> str:
        key = ICC_ALIASES.get(form.strip().lower().replace(" ", ""), form.strip())
        if key not in ICC_FORMS:
            raise ValueError(
                f"ICC form {form!r} is unknown; use one of {', '.join(ICC_FORMS)}, or "
                "ICC(1,1), ICC(A,1), ICC(C,1), ICC(1,k), ICC(A,k), ICC(C,k)"
            )
        return form


_WEIGHTS = Literal["linear", "quadratic"] | None


class CohenKappaOptions(_Options):
    """Cohen's kappa between two raters with a jackknife interval over cases."""

    owner = "cohen_kappa"
    weights: _WEIGHTS = Field(
        default=None, description="null (unweighted), linear or quadratic weights"
    )


class FleissKappaOptions(_Options):
    """Fleiss' kappa with a jackknife interval over cases."""

    owner = "fleiss_kappa"
    n_boot: int = _unused_n_boot(1000)


class IntraRaterOptions(_Options):
    """Test-retest agreement of each rater on repeated items."""

    owner = "intra_rater"
    method: Literal["kappa", "icc"] = Field(
        default="kappa", description="kappa (ordinal or nominal scales) or icc (continuous)"
    )
    weights: _WEIGHTS = Field(default="quadratic", description="kappa weights")
    categories: Annotated[list[int | float | str] | None, NOT_NULL] = Field(
        default=None,
        min_length=2,
        description="the full ordered scale for kappa; default the observed values",
    )
    first: Annotated[int | float | str | bool | None, NOT_NULL] = Field(
        default=None, description="the value of the repeat column that marks the first reading"
    )
    n_boot: int = _unused_n_boot(2000)


class SpearmanOptions(_Options):
    """Spearman correlation of a stored metric with a rating."""

    owner = "spearman"
    item: Identifier = Field(description="the instrument item correlated with the metric")
    n_boot: int = _n_boot(2000)


class AccuracyOptions(_Options):
    """Share of answers that name the right class, with a rater and case clustered interval."""

    owner = "accuracy"
    against: Literal["truth", "prediction"] = Field(
        default="truth",
        description="truth: compare each answer with the case's label; prediction: with the "
        "model's predicted class (how often raters recognise what the model decided)",
    )
    choice_labels: dict[str, Identifier] = Field(
        default_factory=dict,
        description="single_choice items: choice text -> the data.labels class it means, for "
        "choices not spelled as a label (e.g. 'no defect': none); a choice that is neither a "
        "label nor mapped counts as wrong",
    )


class CueMarksOptions(_Options):
    """Share of cue marks inside labelled mask regions, with a rater and case clustered interval."""

    owner = "cue_marks"
    tag: Literal["correct", "misleading", "any"] = Field(
        default="correct",
        description="which marks count: those tagged correct cue, misleading cue, or any",
    )


#: The schema of each statistic's options.
STATISTIC_OPTIONS: dict[str, type[Settings]] = {
    m.owner: m
    for m in (
        MixedModelOptions,
        OrdinalOptions,
        FriedmanOptions,
        ClusterBootstrapOptions,
        MrmcOptions,
        KrippendorffOptions,
        IccOptions,
        CohenKappaOptions,
        FleissKappaOptions,
        IntraRaterOptions,
        SpearmanOptions,
        AccuracyOptions,
        CueMarksOptions,
    )
}
