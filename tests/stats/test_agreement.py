"""Tests of studyhub.stats.agreement, the public face of the agreement statistics.

The statistics are tested against published reference numbers in the tests of
their own modules: test_icc.py, test_kappa.py, test_krippendorff.py and
test_intra_rater.py. Here: the face exports the same names as before the split,
as the very objects of those modules.
"""

from __future__ import annotations

from importlib import import_module

from studyhub.stats import agreement

# import_module: the package attribute studyhub.stats.icc is the function icc, which
# studyhub/stats/__init__.py re-exports over the submodule of the same name.
icc = import_module("studyhub.stats.icc")
intra_rater = import_module("studyhub.stats.intra_rater")
kappa = import_module("studyhub.stats.kappa")
krippendorff = import_module("studyhub.stats.krippendorff")

PUBLIC = [
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


def test_agreement_exports_the_same_names() -> None:
    assert sorted(agreement.__all__) == PUBLIC


def test_agreement_names_are_the_objects_of_the_topic_modules() -> None:
    homes = {
        "CohenKappaResult": kappa,
        "FleissKappaResult": kappa,
        "ICCForm": icc,
        "ICCResult": icc,
        "IntraRaterResult": intra_rater,
        "KrippendorffAlphaResult": krippendorff,
        "cohen_kappa": kappa,
        "fleiss_kappa": kappa,
        "icc": icc,
        "intra_rater_agreement": intra_rater,
        "krippendorff_alpha": krippendorff,
    }
    for name, module in homes.items():
        assert getattr(agreement, name) is getattr(module, name), name
        assert name in module.__all__, name
    # the bootstrap helper the old single-module tests imported stays importable
    assert agreement._AlphaParts is krippendorff._AlphaParts
