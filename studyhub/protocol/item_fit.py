"""Statistics that fit the measured item's type, and cues that give an answer away.

:func:`check_item_fit` refuses (``validate`` and ``register`` exit 2) an endpoint
whose statistic cannot analyse its item: an arm comparison of a single choice's
position, accuracy of a Likert rating, a cue-mark share when raters cannot mark
cues. :func:`cue_warnings` only warns: a study may deliberately show the model's
prediction, but then an item asking for it measures reading, not understanding.

Which statistic fits which item type (free text is refused by every statistic):

============================  ======  ======  =============  =========
statistic                     likert  yes_no  single_choice  diagnosis
============================  ======  ======  =============  =========
mixed_model, cluster_bootstrap,  yes   yes     no             no
friedman, ordinal, icc
krippendorff_alpha            yes     yes     level nominal  level nominal
fleiss_kappa                  yes     yes     yes            yes (class)
cohen_kappa                   yes     yes     weights null   weights null
intra_rater                   yes     yes     kappa, weights null
accuracy                      no      no      yes            yes (class)
spearman (options.item)       yes     yes     no             no
mrmc (options.item)           no      no      no             yes
============================  ======  ======  =============  =========

Fleiss' kappa and unweighted Cohen's kappa on a Likert item are allowed: they
treat its points as unordered categories (weighted Cohen's kappa or ordinal
Krippendorff's alpha use the order). A single choice's position and a
diagnosis' confidence are not ordered ratings of the same thing, so ordered
statistics are refused on them.
"""

from __future__ import annotations

from typing import Any

from studyhub.protocol.plan import AnalysisPlan, Endpoint
from studyhub.protocol.reading import Item
from studyhub.protocol.schema import Protocol
from studyhub.protocol.yamlsource import Located, PathKey, Problem, format_path

__all__ = ["PREDICTION_WORDS", "asks_for_prediction", "check_item_fit", "cue_warnings"]

_NUMERIC = ("likert", "yes_no")
_CATEGORICAL = ("single_choice", "diagnosis")
_ORDERED = ("mixed_model", "cluster_bootstrap", "friedman", "ordinal", "icc")

#: Words of a prompt that refer to the model, and words that ask for its output.
PREDICTION_WORDS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("model", "network", "classifier", "algorithm", "ai ", "a.i."),
    ("predict", "decid", "decision", "classif", "output", "label", "call", "think"),
)


def asks_for_prediction(prompt: str) -> bool:
    """True when a prompt asks what the model predicts (a keyword heuristic).

    The prompt must name the model (one of ``PREDICTION_WORDS[0]``: model,
    network, classifier, algorithm, AI) and ask for its output (one of
    ``PREDICTION_WORDS[1]``: predict, decide / decision, classify, output,
    label, call, think), case-insensitive, e.g. "Which class did the model
    predict?". It can miss a paraphrase and flag a prompt that mentions the
    model's decision without asking for it; it only ever warns.
    """
    text = f" {prompt.lower()} "
    subjects, verbs = PREDICTION_WORDS
    return any(w in text for w in subjects) and any(w in text for w in verbs)


def _fix_for(item: Item) -> str:
    if item.type in _NUMERIC:
        return (
            "use an arm comparison (mixed_model, cluster_bootstrap), agreement (icc, "
            "krippendorff_alpha, cohen_kappa, fleiss_kappa) or spearman on this item"
        )
    return (
        "use fleiss_kappa, cohen_kappa (weights: null) or krippendorff_alpha (level: nominal) "
        "for agreement, or accuracy against truth or prediction"
        + (", or mrmc (measure: auc)" if item.type == "diagnosis" else "")
    )


def _misfit(ep: Endpoint, item: Item) -> str | None:
    """Why ``ep``'s statistic cannot analyse ``item``, or None when it fits."""
    stat, opts, kind = ep.statistic, ep.options, item.type
    if kind == "free_text":  # a measured free-text item is refused by the measure check
        via_option = stat in ("spearman", "mrmc")
        return "free text is counted and listed, never analysed" if via_option else None
    if stat in _ORDERED or stat == "spearman":
        return None if kind in _NUMERIC else "it needs ordered numeric ratings"
    if stat == "accuracy":
        return None if kind in _CATEGORICAL else "it compares a named class with the truth"
    if stat == "mrmc":
        return None if kind == "diagnosis" else "it needs a diagnosis (class and confidence)"
    if kind in _NUMERIC:
        return None
    if stat == "krippendorff_alpha" and opts.get("level", "ordinal") != "nominal":
        return f"level {opts.get('level', 'ordinal')} orders the answers; set level: nominal"
    if stat == "cohen_kappa" and opts.get("weights") is not None:
        return f"weights {opts['weights']} order the answers; set weights: null"
    if stat == "intra_rater" and (
        opts.get("method", "kappa") != "kappa" or opts.get("weights", "quadratic") is not None
    ):
        return "only unweighted kappa fits categories; set method: kappa and weights: null"
    return None


def _problem(src: Located, key: PathKey, message: str, fix: str) -> Problem:
    return Problem(src.line_of(key), format_path(key), message, fix)


def check_item_fit(protocol: Protocol, plan: AnalysisPlan, src: Located) -> list[Problem]:
    """Each endpoint's statistic fits its item's type; accuracy choices name the classes;
    cue-mark endpoints need cue marking."""
    items = {i.id: i for i in protocol.instrument.items}
    problems: list[Problem] = []
    for n, ep in enumerate(plan.endpoints):
        where: PathKey = ("endpoints", n)
        item_id = ep.options.get("item") if ep.statistic in ("mrmc", "spearman") else ep.measure
        if ep.statistic == "mrmc" and item_id is None:
            item_id = "diagnosis"
        item = items.get(str(item_id)) if isinstance(item_id, str) else None
        if item is not None:
            why = _misfit(ep, item)
            if why is not None:
                key: PathKey = (*where, "statistic")
                problems.append(
                    _problem(
                        src,
                        key,
                        f"endpoint {ep.id!r} analyses item {item.id!r} ({item.type}) with "
                        f"{ep.statistic}, which does not fit a {item.type} item: {why}",
                        _fix_for(item),
                    )
                )
        if ep.statistic == "accuracy" and item is not None and item.type == "single_choice":
            problems.extend(_choices_name_labels(protocol, ep, item, src, where))
        if ep.statistic == "cue_marks" and not protocol.instrument.cue_marking:
            problems.append(
                _problem(
                    src,
                    (*where, "statistic"),
                    f"endpoint {ep.id!r} analyses cue marks, but the protocol's "
                    "instrument.cue_marking is false, so raters place none",
                    "set instrument.cue_marking: true in the protocol, or remove the endpoint",
                )
            )
        positive = ep.options.get("positive")
        if ep.statistic == "mrmc" and positive is not None and positive not in protocol.data.labels:
            problems.append(
                _problem(
                    src,
                    (*where, "options", "positive"),
                    f"positive class {positive!r} of endpoint {ep.id!r} is not in "
                    f"data.labels {protocol.data.labels}",
                    f"use one of {', '.join(protocol.data.labels)}",
                )
            )
    return problems


def _choices_name_labels(
    protocol: Protocol, ep: Endpoint, item: Item, src: Located, where: PathKey
) -> list[Problem]:
    mapping: dict[str, Any] = dict(ep.options.get("choice_labels", {}))
    labels = protocol.data.labels
    problems: list[Problem] = []
    for choice, label in mapping.items():
        if choice not in item.choices or label not in labels:
            problems.append(
                _problem(
                    src,
                    (*where, "options", "choice_labels", choice),
                    f"choice_labels of endpoint {ep.id!r} maps {choice!r} to {label!r}, but "
                    f"item {item.id!r} has choices {item.choices} and data.labels are {labels}",
                    "map each choice of the item to one of data.labels",
                )
            )
    named = {mapping.get(c, c) for c in item.choices}
    missing = [label for label in labels if label not in named]
    if missing:
        problems.append(
            _problem(
                src,
                (*where, "measure"),
                f"endpoint {ep.id!r} measures accuracy of single_choice item {item.id!r}, but "
                f"its choices {item.choices} name no choice for the class(es) {missing} of "
                "data.labels, so those cases could never be answered correctly",
                "spell the item's choices as the labels, or map them with options: "
                "{choice_labels: {CHOICE: LABEL}}",
            )
        )
    return problems


def cue_warnings(protocol: Protocol, plan: AnalysisPlan) -> list[str]:
    """Warnings (not refusals) where a cue shown to raters gives the answer to an item away."""
    if not protocol.cues.show_prediction:
        return []
    out: list[str] = []
    for ep in plan.endpoints:
        if ep.statistic == "accuracy" and ep.options.get("against") == "prediction":
            out.append(
                f"endpoint {ep.id!r} measures accuracy against the model's prediction, but "
                "cues.show_prediction is true: raters see the predicted class, so the answer "
                "is given away; set cues.show_prediction: false, or measure against: truth"
            )
    for item in protocol.instrument.items:
        if item.type in _CATEGORICAL and asks_for_prediction(item.prompt):
            out.append(
                f"item {item.id!r} ({item.type}) asks {item.prompt!r}, which reads as a "
                "question about the model's prediction, but cues.show_prediction is true: "
                "raters see the answer beside the image; set cues.show_prediction: false, or "
                "reword the prompt if it asks something else"
            )
    return out
