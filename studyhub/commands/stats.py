"""``studyhub stats``: single analyses on a CSV file, for data studyhub did not collect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, cast

import pandas as pd
import typer
from rich.console import Console

from studyhub.commands.outputs import writable_file
from studyhub.commands.render import plain_console, print_result
from studyhub.errors import InputError

__all__ = ["app", "read_csv"]

app = typer.Typer(
    help="Run one analysis on a long (tidy) CSV file: one row per rating.",
    no_args_is_help=True,
)
out: Console = plain_console()

CsvArg = Annotated[Path, typer.Argument(help="A CSV file with one row per rating.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")]
BootOpt = Annotated[int, typer.Option("--n-boot", min=100, help="Bootstrap resamples.")]
ConfOpt = Annotated[
    float, typer.Option("--confidence", min=0.5, max=0.999, help="Confidence level.")
]


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV, turning every failure into one clear input error.

    Rows are indexed as a spreadsheet numbers them (the header is row 1, the first
    data row is row 2), so that messages naming a row point at the line to fix.
    """
    if not path.is_file():
        raise InputError(f"CSV file {str(path)!r} does not exist; give the path of a CSV file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path} is not a readable CSV file ({exc}); save it as comma-separated UTF-8 text "
            "with a header row"
        ) from None
    frame.index = pd.RangeIndex(2, len(frame) + 2)
    return frame


def _show(result: Any, title: str, as_json: bool) -> None:
    print_result(result, out, title=title, as_json=as_json)


@app.command("alpha")
def alpha_cmd(
    csv: CsvArg,
    units: Annotated[str, typer.Option(help="Column of the rated units (cases).")] = "case",
    raters: Annotated[str, typer.Option(help="Column of the raters.")] = "rater",
    ratings: Annotated[str, typer.Option(help="Column of the ratings.")] = "rating",
    level: Annotated[str, typer.Option(help="nominal, ordinal, interval or ratio.")] = "interval",
    n_boot: BootOpt = 2000,
    seed: SeedOpt = 0,
    confidence: ConfOpt = 0.95,
    as_json: JsonOpt = False,
) -> None:
    """Krippendorff's alpha with a bootstrap confidence interval."""
    from studyhub.stats import krippendorff_alpha

    res = krippendorff_alpha(
        read_csv(csv),
        units=units,
        raters=raters,
        ratings=ratings,
        level=level,  # type: ignore[arg-type]
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
    )
    _show(res, "Krippendorff's alpha", as_json)


@app.command("icc")
def icc_cmd(
    csv: CsvArg,
    targets: Annotated[str, typer.Option(help="Column of the rated targets (cases).")] = "case",
    raters: Annotated[str, typer.Option(help="Column of the raters.")] = "rater",
    ratings: Annotated[str, typer.Option(help="Column of the ratings.")] = "rating",
    confidence: ConfOpt = 0.95,
    as_json: JsonOpt = False,
) -> None:
    """The six Shrout-Fleiss intraclass correlations with F tests and intervals."""
    from studyhub.stats import icc

    _show(
        icc(read_csv(csv), targets=targets, raters=raters, ratings=ratings, confidence=confidence),
        "Intraclass correlation",
        as_json,
    )


@app.command("fleiss")
def fleiss_cmd(
    csv: CsvArg,
    subjects: Annotated[str, typer.Option(help="Column of the rated subjects.")] = "case",
    raters: Annotated[str, typer.Option(help="Column of the raters.")] = "rater",
    ratings: Annotated[str, typer.Option(help="Column of the categories given.")] = "rating",
    as_json: JsonOpt = False,
) -> None:
    """Fleiss' kappa for several raters, with per-category kappas."""
    from studyhub.stats import fleiss_kappa

    _show(
        fleiss_kappa(read_csv(csv), subjects=subjects, raters=raters, ratings=ratings),
        "Fleiss' kappa",
        as_json,
    )


@app.command("kappa")
def kappa_cmd(
    csv: CsvArg,
    subjects: Annotated[str, typer.Option(help="Column of the rated subjects.")] = "case",
    raters: Annotated[str, typer.Option(help="Column of the two raters.")] = "rater",
    ratings: Annotated[str, typer.Option(help="Column of the categories given.")] = "rating",
    weights: Annotated[
        str | None, typer.Option(help="linear or quadratic (default: unweighted).")
    ] = None,
    confidence: ConfOpt = 0.95,
    as_json: JsonOpt = False,
) -> None:
    """Cohen's kappa between two raters, unweighted or weighted."""
    from studyhub.stats import cohen_kappa

    if weights not in (None, "linear", "quadratic"):
        raise InputError(f"--weights {weights!r} is unknown; use linear or quadratic, or omit it")
    _show(
        cohen_kappa(
            read_csv(csv),
            subjects=subjects,
            raters=raters,
            ratings=ratings,
            weights=cast(Literal["linear", "quadratic"] | None, weights),
            confidence=confidence,
        ),
        "Cohen's kappa",
        as_json,
    )


@app.command("mrmc")
def mrmc_cmd(
    csv: CsvArg,
    reader: Annotated[str, typer.Option(help="Column of the readers.")] = "reader",
    modality: Annotated[str, typer.Option(help="Column of the modalities (arms).")] = "modality",
    case: Annotated[str, typer.Option(help="Column of the cases.")] = "case",
    truth: Annotated[str, typer.Option(help="Column of the truth (0/1).")] = "truth",
    rating: Annotated[str, typer.Option(help="Column of the confidence ratings.")] = "rating",
    threshold: Annotated[
        float | None, typer.Option(help="Ratings at or above it count as positive.")
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            help="Diagnosis answers: column of the chosen class (the rating column then holds "
            "the confidence 0-100 in it, the truth column the case's class); needs --positive."
        ),
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option(help="With --label: the positive class(es), comma-separated."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    imrmc_out: Annotated[
        Path | None, typer.Option("--imrmc-out", help="Also write the data in iMRMC format.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Obuchowski-Rockette MRMC ROC analysis (Hillis ddf), as OR-DBM MRMC and iMRMC report.

    Diagnosis answers (a class and a confidence, as studyhub export writes them) are
    turned into the confidence that the case is positive: the confidence when the
    chosen class is positive, else 100 minus it (give --label and --positive).
    """
    from studyhub.stats import mrmc, write_imrmc

    if imrmc_out is not None:
        writable_file(imrmc_out, option="--imrmc-out")
    data = read_csv(csv)
    if (label is None) != (positive is None):
        raise InputError(
            "--label and --positive go together: give the column of the chosen class and the "
            "positive class(es), e.g. --label label --positive lesion"
        )
    if label is not None and positive is not None:
        from studyhub.stats._data import require_columns
        from studyhub.stats._mrmc_endpoint import positivity_ratings

        require_columns(data, label=label, rating=rating, truth=truth)
        classes = [c.strip() for c in positive.split(",") if c.strip()]
        data = positivity_ratings(data, label=label, value=rating, truth=truth, positive=classes)
        data = data.drop(columns=[rating, truth]).rename(
            columns={"_rating": rating, "_truth": truth}
        )
    res = mrmc(
        data,
        reader=reader,
        modality=modality,
        case=case,
        truth=truth,
        rating=rating,
        positive_threshold=threshold,
        alpha=alpha,
    )
    _show(res, "MRMC (Obuchowski-Rockette)", as_json)
    if imrmc_out is not None:
        write_imrmc(
            data, imrmc_out, reader=reader, modality=modality, case=case, truth=truth, rating=rating
        )
        if not as_json:
            out.print(f"iMRMC input written to {imrmc_out}", markup=False)


@app.command("correlation")
def correlation_cmd(
    csv: CsvArg,
    cases: Annotated[str, typer.Option(help="Column of the cases (bootstrap clusters).")] = "case",
    ratings: Annotated[str, typer.Option(help="Column of the human judgements.")] = "rating",
    metric: Annotated[str, typer.Option(help="Column of the quantitative metric.")] = "metric",
    n_boot: BootOpt = 2000,
    seed: SeedOpt = 0,
    confidence: ConfOpt = 0.95,
    as_json: JsonOpt = False,
) -> None:
    """Spearman correlation of judgements with a metric, case-clustered bootstrap CI."""
    from studyhub.stats import metric_correlation

    _show(
        metric_correlation(
            read_csv(csv),
            cases=cases,
            ratings=ratings,
            metric=metric,
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
        ),
        "Human judgement vs metric",
        as_json,
    )


@app.command("compare")
def compare_cmd(
    csv: CsvArg,
    arm: Annotated[str, typer.Option(help="Column of the arms.")] = "arm",
    rating: Annotated[str, typer.Option(help="Column of the ratings.")] = "rating",
    rater: Annotated[str, typer.Option(help="Column of the raters.")] = "rater",
    case: Annotated[str, typer.Option(help="Column of the cases.")] = "case",
    reference: Annotated[
        str | None, typer.Option(help="Reference arm: every other arm is compared with it.")
    ] = None,
    method: Annotated[
        str, typer.Option(help="mixed_model, ordinal, friedman or cluster_bootstrap.")
    ] = "mixed_model",
    hypothesis: Annotated[
        str, typer.Option(help="superiority, non_inferiority or two_sided.")
    ] = "superiority",
    margin: Annotated[float, typer.Option(help="Non-inferiority margin.")] = 0.0,
    alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
    multiplicity: Annotated[
        str, typer.Option(help="holm, bonferroni, fixed_sequence or none.")
    ] = "holm",
    rater_by_arm: Annotated[
        bool | None,
        typer.Option(
            "--rater-by-arm/--no-rater-by-arm",
            help="Mixed model: random rater x arm intercept (default on).",
        ),
    ] = None,
    case_by_arm: Annotated[
        bool | None,
        typer.Option(
            "--case-by-arm/--no-case-by-arm",
            help="Mixed model: random case x arm intercept (default on).",
        ),
    ] = None,
    rater_by_case: Annotated[
        bool | None,
        typer.Option(
            "--rater-by-case/--no-rater-by-case",
            help="Mixed model: random rater x case intercept (default on).",
        ),
    ] = None,
    contrast: Annotated[
        list[str] | None,
        typer.Option(
            "--contrast",
            help="ARM:VERSUS, repeated for several contrasts, in the testing order "
            "(fixed_sequence needs it); instead of --reference.",
        ),
    ] = None,
    confidence: Annotated[
        float | None,
        typer.Option(
            "--confidence",
            min=0.5,
            max=0.999,
            help="Coverage of the intervals: one-sided lower bounds for one-sided hypotheses. "
            "Default: two-sided 1 - alpha (two_sided) or 1 - 2 alpha (one-sided).",
        ),
    ] = None,
    n_boot: BootOpt = 2000,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Compare arms: mixed model with crossed rater and case effects, or the alternatives."""
    from studyhub.stats import compare_arms

    data = read_csv(csv)
    res = compare_arms(
        data,
        arm=arm,
        rating=rating,
        rater=rater,
        case=case,
        reference=reference,
        contrasts=_contrasts(contrast, data, arm) if contrast else None,
        confidence=confidence,
        method=method,  # type: ignore[arg-type]
        hypothesis=hypothesis,  # type: ignore[arg-type]
        margin=margin,
        alpha=alpha,
        multiplicity=multiplicity,
        rater_by_arm=rater_by_arm,
        case_by_arm=case_by_arm,
        rater_by_case=rater_by_case,
        n_boot=n_boot,
        seed=seed,
    )
    _show(res, f"Arm comparison ({method})", as_json)


def _contrasts(given: list[str], data: pd.DataFrame, arm: str) -> list[tuple[Any, Any]]:
    """``--contrast ARM:VERSUS`` options as pairs of the arm column's own values."""
    labels = {str(v): v for v in data[arm].dropna().unique()} if arm in data.columns else {}
    pairs = []
    for text in given:
        parts = text.split(":")
        if len(parts) != 2 or not all(parts):
            raise InputError(
                f"--contrast {text!r} is not ARM:VERSUS; write the two arms separated by one "
                "colon, e.g. --contrast ig:random_map"
            )
        pairs.append((labels.get(parts[0], parts[0]), labels.get(parts[1], parts[1])))
    return pairs


@app.command("criteria")
def criteria_cmd(
    csv: CsvArg,
    protocol: Annotated[
        Path | None,
        typer.Option(
            "--protocol",
            help="A protocol file whose analysis plan is applied; unless it is the plan "
            "registered in --db, every verdict is exploratory.",
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option("--study", help="Apply the plan registered for this study in --db."),
    ] = None,
    measure: Annotated[
        str | None,
        typer.Option(
            help="Column of the instrument item (default: measure, else item as studyhub "
            "export writes it)."
        ),
    ] = None,
    truth: Annotated[
        str | None, typer.Option(help="Column of the case truth (reader-task endpoints).")
    ] = None,
    repeat: Annotated[
        str | None,
        typer.Option(help="Column marking repeat readings (intra-rater; default: repeat if any)."),
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="CSV of stimulus metrics (case, arm, metric columns).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate every endpoint of a plan on a CSV of ratings: PASS, FAIL or NOT EVALUABLE.

    The CSV is long: columns rater, case, arm, measure (the instrument item) and value;
    the answers.csv of studyhub export works as it is (its attention-check rows, flagged
    in a catch column, are left out). The plan's data rules (excluded raters, washout)
    are applied by studyhub analyze, not here.
    With --study the registered plan is applied (checked against its registration);
    with --protocol the file's plan, and the first line says whether it is the
    registered one: verdicts of any other plan are exploratory.
    """
    import json

    from studyhub.commands.criteria_table import print_criteria
    from studyhub.evidence.analyze import criteria_dict
    from studyhub.stats import evaluate_criteria

    if (protocol is None) == (study is None):
        raise InputError(
            "stats criteria needs exactly one of --study (the registered plan in --db) or "
            "--protocol FILE (a plan file: exploratory unless it is the registered one)"
        )
    plan, seed, warning = _criteria_plan(protocol, study)
    ratings = read_csv(csv)
    if "catch" in ratings.columns:
        ratings = ratings[~ratings["catch"].astype(str).str.lower().isin(("true", "1"))]
    if measure is None:
        measure = "item" if "measure" not in ratings.columns and "item" in ratings else "measure"
    if repeat is None and "repeat" in ratings.columns:
        repeat = "repeat"
        ratings = ratings.assign(repeat=ratings["repeat"].astype(str).str.lower() == "true")
    report = evaluate_criteria(
        ratings,
        plan=plan,
        measure=measure,
        truth=truth,
        repeat=repeat,
        metrics=read_csv(metrics) if metrics is not None else None,
        seed=seed,
    )
    criteria = criteria_dict(report)
    if as_json:
        body = {"exploratory": warning is not None, "warning": warning, **criteria}
        out.print(json.dumps(body, indent=2), markup=False, soft_wrap=True)
        return
    if warning is not None:
        out.print(warning, markup=False, soft_wrap=True)
    print_criteria(criteria, out, exploratory=warning is not None)


def _criteria_plan(protocol: Path | None, study: str | None) -> tuple[Any, int, str | None]:
    """(plan, seed, exploratory warning or None) for ``stats criteria``."""
    from studyhub.cli import state
    from studyhub.evidence.analyze import registered_plan_of
    from studyhub.protocol.load import load_study
    from studyhub.store.db import open_store
    from studyhub.store.studies import get_study, registered_protocol_of

    if study is not None:
        store = open_store(state.db, create=False)
        try:
            with store.snapshot() as s:
                row = get_study(s, study)
                proto = registered_protocol_of(s, row)
                return registered_plan_of(row), proto.seed, None
        finally:
            store.dispose()
    files = load_study(cast(Path, protocol))  # one of the two is given (checked by the caller)
    registered = _registered_plan_hash(files.protocol.id, state.db)
    if registered == files.plan_hash:
        return files.plan, files.protocol.seed, None
    why = (
        f"study {files.protocol.id!r} registered plan {registered[:12]}…, this file's plan is "
        f"{files.plan_hash[:12]}…"
        if registered is not None
        else f"no study {files.protocol.id!r} is registered in the database"
    )
    return (
        files.plan,
        files.protocol.seed,
        f"EXPLORATORY: {files.plan_path.name} is not the registered analysis plan ({why}); "
        "every verdict below is exploratory, not a test of the registered plan (use --study "
        "to apply the registered plan)",
    )


def _registered_plan_hash(study_id: str, db: str | None) -> str | None:
    from studyhub.errors import StudyhubError
    from studyhub.store.db import open_store
    from studyhub.store.models import Study

    try:
        store = open_store(db, create=False)
    except StudyhubError:
        return None
    try:
        with store.snapshot() as s:
            row = s.get(Study, study_id)
            return None if row is None else row.plan_hash
    finally:
        store.dispose()
