"""A short structured narrative per stimulus, in the domain's own words.

:func:`narrate` states the prediction and its verbal confidence, where the
positive attribution mass lies among the labelled mask regions ("64% of the
positive attribution lies on the crack, 22% on the stamp mark, 14% elsewhere"),
flags likely confounders (mass on the image border, on markers such as a stamp,
outside every labelled region) and how much of the highlighted region is
uncertain. Everything is plain numpy on the ``(H, W)`` arrays, so each number can
be checked by hand: a share is ``sum(max(a, 0)[region]) / sum(max(a, 0))``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from studyhub.errors import InputError
from studyhub.explain.cues import ConfidenceCue
from studyhub.explain.maps import check_map, top_k_mask

__all__ = ["ELSEWHERE", "Narrative", "border_band", "narrate", "rounded_percents"]

ELSEWHERE: str = "elsewhere"
"""Key of :attr:`Narrative.region_shares` for mass outside every labelled region."""


@dataclass(frozen=True)
class Narrative:
    """The narrative of one stimulus.

    Attributes
    ----------
    text : str
        The sentences, one per line, as raters read them.
    region_shares : dict of str to float
        Domain term -> share of the positive attribution mass on that region,
        largest first, with :data:`ELSEWHERE` last; the shares sum to 1. Empty
        when the map has no positive mass or no mask was given.
    flags : list of str
        Confounder flags raised: ``"border"``, ``"marker"``, ``"outside"``.
    border_share : float
        Share of the positive mass in the outer border band (:func:`border_band`).
    marker_share : float
        Share of the positive mass on marker regions.
    outside_share : float or None
        Share outside every labelled region; ``None`` without a mask.
    uncertain_share : float or None
        Share of the highlighted (top-k) pixels whose uncertainty reaches the
        threshold; ``None`` without an uncertainty map or highlighted pixels.
    positive_mass : float
        ``sum(max(a, 0))``, the denominator of every share.
    sentences : list of str
        The lines of :attr:`text`.
    """

    text: str
    region_shares: dict[str, float]
    flags: list[str]
    border_share: float = 0.0
    marker_share: float = 0.0
    outside_share: float | None = None
    uncertain_share: float | None = None
    positive_mass: float = 0.0
    sentences: list[str] = field(default_factory=list)


def rounded_percents(shares: list[float]) -> list[int]:
    """Whole percentages that sum to 100 (largest-remainder rounding).

    ``[0.644, 0.221, 0.135] -> [64, 22, 14]``; ``[1/3, 1/3, 1/3] -> [34, 33, 33]``
    (ties go to the earlier entry).
    """
    if not shares:
        return []
    raw = np.asarray(shares, dtype=np.float64) * 100.0 / max(float(np.sum(shares)), 1e-300)
    floors = np.floor(raw + 1e-9).astype(int)
    missing = 100 - int(floors.sum())
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - floors[i]), i))
    for i in order[: max(missing, 0)]:
        floors[i] += 1
    return [int(v) for v in floors]


def border_band(shape: tuple[int, int], fraction: float = 0.08) -> NDArray[np.bool_]:
    """The outer band of an image: ``max(1, round(fraction * side))`` pixels on each edge.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``.
    fraction : float, default 0.08
        Band width as a share of each side, in (0, 0.5).

    Returns
    -------
    numpy.ndarray
        Boolean ``(H, W)`` mask, true in the band.
    """
    if not 0.0 < fraction < 0.5:
        raise InputError(f"border_fraction is {fraction!r}; pass a value in (0, 0.5), e.g. 0.08")
    h, w = shape
    bh, bw = max(1, round(fraction * h)), max(1, round(fraction * w))
    band = np.ones((h, w), dtype=bool)
    band[bh : h - bh, bw : w - bw] = False
    return band


def _check_mask(mask: object, shape: tuple[int, ...]) -> NDArray[np.int64]:
    values = np.asarray(mask)
    if values.shape != shape:
        raise InputError(
            f"mask has shape {values.shape} but the attribution has shape {shape}; "
            "pass the case's region mask at the image's resolution"
        )
    if not (np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_):
        raise InputError(f"mask has dtype {values.dtype}; pass integer region labels (e.g. uint8)")
    return values.astype(np.int64)


def _join(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else ", ".join(terms[:-1]) + " and " + terms[-1]


def _area(fraction: float) -> str:
    return "under 1%" if fraction < 0.01 else f"{round(fraction * 100)}%"


def narrate(
    attribution: object,
    mask: object | None = None,
    *,
    region_terms: Mapping[int, str] | None = None,
    label_terms: Mapping[str, str] | None = None,
    cue: ConfidenceCue | None = None,
    marker_labels: Collection[int] = (),
    background_label: int = 0,
    border_fraction: float = 0.08,
    border_threshold: float = 0.4,
    marker_threshold: float = 0.05,
    marker_enrichment: float = 5.0,
    outside_threshold: float = 0.5,
    uncertainty: object | None = None,
    uncertainty_threshold: float = 0.5,
    highlight_percent: float = 10.0,
) -> Narrative:
    """Write the narrative of one stimulus.

    Parameters
    ----------
    attribution : array-like
        ``(H, W)`` attribution map; only its positive part ``max(a, 0)`` counts.
    mask : array-like, optional
        ``(H, W)`` integer region labels (e.g. :attr:`studyhub.demo.synth.Sample.mask`).
    region_terms : mapping of int to str
        Mask value -> region name (e.g. :data:`studyhub.demo.synth.MASK_LABELS`);
        needed with a mask.
    label_terms : mapping of str to str, optional
        ``DataSource.label_terms``: region name -> plain domain words (``pit ->
        pitting``); names without a term are used as they are.
    cue : ConfidenceCue, optional
        The prediction and its confidence, stated first.
    marker_labels : collection of int, default ()
        Mask values of markers that are not findings (e.g.
        :data:`studyhub.demo.synth.STAMP_LABEL`).
    background_label : int, default 0
        Mask value of "no region"; its mass is reported as :data:`ELSEWHERE`.
    border_fraction : float, default 0.08
        Width of the border band per side (:func:`border_band`). A uniform map
        puts 1 - (1 - 2·0.08)² ≈ 29% of its mass there.
    border_threshold, marker_threshold, outside_threshold : float
        A flag is raised when its share is strictly above the threshold. The
        ``outside`` flag needs a labelled region that is not a marker.
    marker_enrichment : float, default 5.0
        The ``marker`` flag also needs the markers' share of the attribution to be
        at least this many times their share of the image's area: a stamp covering
        0.5% of the image that draws 9% of the evidence is flagged, a large ruler
        that draws its area's worth is not.
    uncertainty : array-like, optional
        ``(H, W)`` uncertainty map on the same scale as ``uncertainty_threshold``.
    uncertainty_threshold : float, default 0.5
        Pixels with ``uncertainty >= uncertainty_threshold`` count as uncertain.
    highlight_percent : float, default 10.0
        The highlighted region is the top ``highlight_percent`` % of positive
        pixels (:func:`~studyhub.explain.render.top_k_mask`), as outlined in the rendering.

    Returns
    -------
    Narrative

    Raises
    ------
    InputError
        On shape mismatches, NaN values, a non-integer mask, or a mask value
        missing from ``region_terms``.
    """
    attr = check_map(attribution, "attribution")
    positive = np.maximum(attr, 0.0)
    total = float(positive.sum())
    sentences = [cue.text() + "."] if cue is not None and cue.text() else []
    labels = _check_mask(mask, attr.shape) if mask is not None else None
    unc = None if uncertainty is None else check_map(uncertainty, "uncertainty", shape=attr.shape)
    if labels is not None:
        present = [int(v) for v in np.unique(labels) if int(v) != background_label]
        missing = [v for v in present if v not in (region_terms or {})]
        if missing:
            raise InputError(
                f"mask value(s) {missing} have no entry in region_terms; pass region_terms "
                "that name every mask value (e.g. studyhub.demo.synth.MASK_LABELS)"
            )
    if total <= 0.0:
        sentences.append("The map shows no positive attribution.")
        return Narrative("\n".join(sentences), {}, [], sentences=sentences)

    def term(value: int) -> str:
        name = (region_terms or {})[value]
        return (label_terms or {}).get(name, name)

    flags: list[str] = []
    shares: dict[str, float] = {}
    marker_share, outside_share = 0.0, None
    if labels is not None:
        present = [int(v) for v in np.unique(labels) if int(v) != background_label]
        for value in present:
            name = term(value)
            shares[name] = shares.get(name, 0.0) + float(positive[labels == value].sum()) / total
        shares = dict(sorted(shares.items(), key=lambda kv: -kv[1]))
        outside_share = float(positive[~np.isin(labels, present)].sum()) / total
        shares[ELSEWHERE] = outside_share
        if present:
            percents = rounded_percents(list(shares.values()))
            parts = [f"{p}% on the {name}" for name, p in zip(shares, percents, strict=True)]
            parts[-1] = f"{percents[-1]}% {ELSEWHERE}"
            sentences.append(_shares_sentence(parts))
        else:
            sentences.append("The image has no labelled region.")
        markers = [v for v in present if v in set(marker_labels)]
        on_marker = np.isin(labels, markers)
        marker_share = float(positive[on_marker].sum()) / total
        marker_area = float(on_marker.mean())
        if (
            markers
            and marker_share > marker_threshold
            and marker_share >= marker_enrichment * marker_area
        ):
            flags.append("marker")
            names = _join(sorted({term(v) for v in markers}))
            sentences.append(
                f"Caution: {round(marker_share * 100)}% of the positive attribution lies on "
                f"the {names}, which covers {_area(marker_area)} of the image: a marker "
                "rather than a finding."
            )
        findings = [v for v in present if v not in set(marker_labels)]
        if findings and outside_share > outside_threshold:
            flags.append("outside")
            sentences.append(
                f"Caution: {round(outside_share * 100)}% of the positive attribution lies "
                "outside every labelled region."
            )
    band = border_band((attr.shape[0], attr.shape[1]), border_fraction)
    border_share = float(positive[band].sum()) / total
    if border_share > border_threshold:
        flags.append("border")
        sentences.append(
            f"Caution: {round(border_share * 100)}% of the positive attribution lies on the "
            "image border."
        )
    uncertain_share = None
    if unc is not None:
        highlighted = top_k_mask(positive, highlight_percent)
        if highlighted.any():
            uncertain_share = float(np.mean(unc[highlighted] >= uncertainty_threshold))
            sentences.append(
                f"The highlighted region is uncertain in {round(uncertain_share * 100)}% "
                "of its area."
            )
    return Narrative(
        text="\n".join(sentences),
        region_shares=shares,
        flags=flags,
        border_share=border_share,
        marker_share=marker_share,
        outside_share=outside_share,
        uncertain_share=uncertain_share,
        positive_mass=total,
        sentences=sentences,
    )


def _shares_sentence(parts: list[str]) -> str:
    first, rest = parts[0], parts[1:]
    percent, _, where = first.partition("% ")
    head = f"{percent}% of the positive attribution lies {where}"
    return ", ".join([head, *rest]) + "."
