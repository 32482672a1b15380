"""The demo's stamp shortcut: explanations expose it and the narrative flags it.

The demo CNN learned that a stamp mark means "pit" (90% of training pits carry
it). On held-out stamped images, "shortcut cases" are non-pit images the model
calls pit. An explanation that tells the truth puts more of its evidence on the
stamp for those cases than for stamped cases the model classifies otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from studyhub.demo.synth import CLASS_NAMES, MASK_LABELS, STAMP_LABEL, generate
from studyhub.explain.arms import build_arm
from studyhub.explain.narrative import narrate
from studyhub.models import load_model, logits


@pytest.fixture(scope="module")
def stamped() -> dict[str, object]:
    model = load_model("studyhub.demo.model:load")
    samples = [s for s in generate(600, split="test", seed=0) if s.metadata["stamp"]]
    pred = logits(model, [s.image for s in samples], n_classes=len(CLASS_NAMES)).argmax(axis=1)
    x = torch.stack([model.preprocess(s.image) for s in samples])
    labels = np.array([s.label for s in samples])
    predicted = np.array([CLASS_NAMES[k] for k in pred])
    return {
        "model": model,
        "samples": samples,
        "x": x,
        "target": torch.tensor(pred),
        "shortcut": (predicted == "pit") & (labels != "pit"),
        "other": predicted != "pit",
    }


def _maps(stamped: dict[str, object], method: str) -> np.ndarray:
    model = stamped["model"]
    arm = build_arm(
        method, model.module, {}, target_layer="features.conv3", preprocess=model.preprocess
    )  # type: ignore[attr-defined]
    return arm.attribute(stamped["x"], stamped["target"], seed=0).sum(dim=1).numpy()  # type: ignore[arg-type]


def test_there_are_shortcut_cases_to_study(stamped: dict[str, object]) -> None:
    assert int(np.sum(stamped["shortcut"])) >= 15  # type: ignore[call-overload]
    assert int(np.sum(stamped["other"])) >= 100  # type: ignore[call-overload]


def test_gradcam_puts_more_evidence_on_the_stamp_for_shortcut_cases(
    stamped: dict[str, object],
) -> None:
    maps = _maps(stamped, "gradcam")
    samples = stamped["samples"]
    share = []
    for i, s in enumerate(samples):  # type: ignore[arg-type]
        pos = np.clip(maps[i], 0, None)
        share.append(pos[s.mask == STAMP_LABEL].sum() / pos.sum() if pos.sum() > 0 else 0.0)
    share_arr = np.asarray(share)
    short, other = share_arr[stamped["shortcut"]], share_arr[stamped["other"]]  # type: ignore[index]
    assert short.mean() > 2 * other.mean()
    assert stats.mannwhitneyu(short, other, alternative="greater").pvalue < 0.01


def test_the_narrative_flags_the_stamp_for_shortcut_cases(stamped: dict[str, object]) -> None:
    maps = _maps(stamped, "gradcam")
    flagged = np.array(
        [
            "marker"
            in narrate(maps[i], s.mask, region_terms=MASK_LABELS, marker_labels=[STAMP_LABEL]).flags
            for i, s in enumerate(stamped["samples"])  # type: ignore[arg-type]
        ]
    )
    short, other = flagged[stamped["shortcut"]], flagged[stamped["other"]]  # type: ignore[index]
    assert short.sum() >= 2 and short.mean() > other.mean()
    table = [[short.sum(), (~short).sum()], [other.sum(), (~other).sum()]]
    assert stats.fisher_exact(table, alternative="greater").pvalue < 0.01
    example = next(i for i in np.flatnonzero(stamped["shortcut"]) if flagged[i])
    text = narrate(
        maps[example],
        stamped["samples"][example].mask,
        region_terms=MASK_LABELS,
        marker_labels=[STAMP_LABEL],
    ).text  # type: ignore[index]
    assert "stamp mark" in text and "a marker rather than a finding" in text
