"""validate refuses a statistic that does not fit the item's type, and warns about give-aways.

Each refusal runs through the real command (validate and register): exit 2, one
message naming the endpoint, the item, its type, the statistic and the fix, and
no database file written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studyhub.protocol.item_fit import asks_for_prediction
from studyhub.protocol.load import load_study
from tests.paths import DEMO_PROTOCOL

ITEMS = """  items:
    - id: usefulness
      type: likert
      prompt: How useful is the highlight for checking the model's decision?
      scale_min: 1
      scale_max: 5
    - id: defect
      type: single_choice
      prompt: Which defect do you see?
      choices: [none, crack, scratch, pit, cannot tell]
    - id: diagnosis
      type: diagnosis
      prompt: Your diagnosis of this surface
    - id: comment
      type: free_text
      prompt: Anything misleading or notable?
      required: false
"""

PRIMARY = """  - id: ig_vs_random
    primary: true
    description: Usefulness of integrated-gradients maps versus random maps
    measure: usefulness
    statistic: mixed_model
    comparison: {arm: ig, versus: random_map}
    hypothesis: {type: superiority}
    success_criterion: The mean usefulness of ig exceeds that of random_map, one-sided.
"""


def _study(tmp_path: Path, endpoint: str, *, protocol_edit: tuple[str, str] | None = None) -> Path:
    text = DEMO_PROTOCOL.read_text()
    start = text.index("  items:\n")
    end = text.index("\nraters:")
    text = text[:start] + ITEMS + text[end:]
    if protocol_edit is not None:
        assert protocol_edit[0] in text
        text = text.replace(*protocol_edit)
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "id: sap\nprotocol: inspection_demo\nalpha: 0.05\nconfidence: 0.95\nendpoints:\n"
        + PRIMARY
        + endpoint
    )
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(
        text.replace("analysis_plan: ../analysis/inspection_demo.yaml", f"analysis_plan: {plan}")
    )
    return protocol


def _endpoint(statistic: str, measure: str, hypothesis: str, options: str = "{}") -> str:
    return f"""  - id: second
    description: the endpoint under test
    measure: {measure}
    statistic: {statistic}
    hypothesis: {hypothesis}
    success_criterion: The lower 95% limit reaches the threshold.
    options: {options}
"""


AGREE = "{type: agreement, threshold: 0.4}"
PROP = "{type: proportion, threshold: 0.6}"
REFUSED = [
    (
        "mixed_model_single_choice",
        _endpoint("mixed_model", "defect", "{type: superiority}").replace(
            "    hypothesis:", "    comparison: {arm: ig, versus: gradcam}\n    hypothesis:"
        ),
        ["'second'", "item 'defect' (single_choice)", "mixed_model", "Fix: use fleiss_kappa"],
    ),
    (
        "weighted_kappa_single_choice",
        _endpoint("cohen_kappa", "defect", AGREE, "{weights: linear}"),
        ["item 'defect' (single_choice)", "weights linear", "set weights: null"],
    ),
    (
        "ordinal_alpha_diagnosis",
        _endpoint("krippendorff_alpha", "diagnosis", AGREE, "{level: ordinal}"),
        ["item 'diagnosis' (diagnosis)", "level ordinal", "set level: nominal", "mrmc"],
    ),
    (
        "icc_diagnosis",
        _endpoint("icc", "diagnosis", AGREE),
        ["item 'diagnosis' (diagnosis) with icc", "needs ordered numeric ratings"],
    ),
    (
        "accuracy_likert",
        _endpoint("accuracy", "usefulness", PROP),
        ["item 'usefulness' (likert) with accuracy", "Fix: use an arm comparison"],
    ),
    (
        "spearman_single_choice",
        _endpoint(
            "spearman",
            "metric:deletion_auc",
            "{type: correlation, threshold: 0.2}",
            "{item: defect}",
        ),
        ["item 'defect' (single_choice) with spearman", "needs ordered numeric ratings"],
    ),
    (
        "choices_without_a_label",
        "",  # set in the test: the protocol's choices lack 'pit'
        ["choices", "name no choice for the class(es) ['pit']", "choice_labels: {CHOICE: LABEL}"],
    ),
    (
        "mrmc_positive_unknown",
        "",
        ["positive class 'lesion'", "not in data.labels", "use one of none, crack"],
    ),
]


@pytest.mark.parametrize("command", ["validate", "register"])
@pytest.mark.parametrize(("name", "endpoint", "phrases"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_statistic_that_does_not_fit_is_refused(  # type: ignore[no-untyped-def]
    name: str, endpoint: str, phrases: list[str], command: str, tmp_path: Path, cli
) -> None:
    edit = None
    if name == "choices_without_a_label":
        edit = (
            "choices: [none, crack, scratch, pit, cannot tell]",
            "choices: [none, crack, scratch]",
        )
        endpoint = _endpoint("accuracy", "defect", PROP)
    if name == "mrmc_positive_unknown":
        edit = ("task: rate_explanation", "task: reader_diagnosis")
        endpoint = (
            "  - id: second\n    description: reader AUC\n    measure: auc\n    statistic: mrmc\n"
            "    comparison: {arm: ig, versus: gradcam}\n    hypothesis: {type: superiority}\n"
            "    success_criterion: ig AUC exceeds gradcam AUC.\n    options: {positive: lesion}\n"
        )
    protocol = _study(tmp_path, endpoint, protocol_edit=edit)
    db = tmp_path / "never.db"
    result = cli("--db", f"sqlite:///{db}", command, str(protocol))
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert message.startswith("error: ") and "plan.yaml" in message
    assert "endpoints[1]" in message
    for phrase in phrases:
        assert phrase in message, message
    assert not db.exists()


def test_cue_marks_refused_when_raters_cannot_mark(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    endpoint = _endpoint("cue_marks", "cue_marks", PROP)
    protocol = _study(tmp_path, endpoint, protocol_edit=("cue_marking: true", "cue_marking: false"))
    db = tmp_path / "never.db"
    result = cli("--db", f"sqlite:///{db}", "validate", str(protocol))
    assert result.exit_code == 2
    assert "endpoints[1].statistic" in result.stderr
    assert "instrument.cue_marking is false" in result.stderr
    assert "set instrument.cue_marking: true" in result.stderr
    assert not db.exists()


def test_categorical_endpoints_that_fit_validate(tmp_path: Path) -> None:
    endpoints = (
        _endpoint("fleiss_kappa", "defect", AGREE)
        + _endpoint("accuracy", "defect", PROP, "{choice_labels: {cannot tell: none}}").replace(
            "id: second", "id: third"
        )
        + _endpoint("cohen_kappa", "diagnosis", AGREE).replace("id: second", "id: fourth")
        + _endpoint("cue_marks", "cue_marks", PROP).replace("id: second", "id: fifth")
        + _endpoint("fleiss_kappa", "usefulness", AGREE).replace("id: second", "id: sixth")
    )
    files = load_study(_study(tmp_path, endpoints))
    assert [ep.statistic for ep in files.plan.endpoints][1:] == [
        "fleiss_kappa",
        "accuracy",
        "cohen_kappa",
        "cue_marks",
        "fleiss_kappa",
    ]


def test_a_cue_that_gives_the_answer_away_is_a_warning(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    endpoint = _endpoint("accuracy", "defect", PROP, "{against: prediction}")
    edit = ("prompt: Which defect do you see?", "prompt: Which class did the model predict?")
    protocol = _study(tmp_path, endpoint, protocol_edit=edit)
    result = cli("validate", str(protocol))
    assert result.exit_code == 0, result.output
    assert "warning: endpoint 'second' measures accuracy against the model's prediction" in (
        result.stderr
    )
    assert "set cues.show_prediction: false" in result.stderr
    assert "warning: item 'defect' (single_choice) asks 'Which class did the model predict?'" in (
        result.stderr
    )
    hidden = _study(
        tmp_path,
        endpoint,
        protocol_edit=("  show_prediction: true", "  show_prediction: false"),
    )
    assert load_study(hidden).warnings == ()


@pytest.mark.parametrize(
    ("prompt", "asks"),
    [
        ("Which class did the model predict?", True),
        ("What do you think the network decided?", True),
        ("Which defect do you see?", False),
        ("How useful is the highlight?", False),
    ],
)
def test_the_prediction_heuristic(prompt: str, asks: bool) -> None:
    assert asks_for_prediction(prompt) is asks
