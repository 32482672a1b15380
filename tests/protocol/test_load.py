"""Loading protocols and plans: the example, canonical hashing, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from studyhub.errors import ProtocolError
from studyhub.protocol import load_study
from tests.paths import DEMO_PLAN, DEMO_PROTOCOL


def test_example_pair_is_valid() -> None:
    files = load_study(DEMO_PROTOCOL)
    assert files.protocol.id == "inspection_demo"
    assert files.plan.protocol == files.protocol.id
    assert {a.id for a in files.protocol.arms} == {
        "ig",
        "gradcam",
        "random_map",
        "randomized_model",
    }
    assert len(files.registration_hash) == 64


def _rewrite(path: Path, data: dict, *, style: str = "block") -> None:
    flow = style == "flow"
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=flow, width=4096))


def test_hash_ignores_whitespace_comments_key_order_and_number_spelling(
    demo_copy: Path,
) -> None:
    before = load_study(demo_copy)
    data = yaml.safe_load(demo_copy.read_text())
    reordered = dict(reversed(list(data.items())))
    reordered["blinding"] = {"shuffle": True, "code_length": 10}
    reordered["rendering"] = dict(reversed(list(data["rendering"].items())))
    reordered["rendering"]["normalize_percentile"] = 99.0
    _rewrite(demo_copy, reordered, style="flow")
    demo_copy.write_text("# a new comment\n\n" + demo_copy.read_text() + "\n\n")
    after = load_study(demo_copy)
    assert after.protocol_text != before.protocol_text
    assert after.protocol_hash == before.protocol_hash
    assert after.registration_hash == before.registration_hash


@pytest.mark.parametrize(
    ("key", "value"),
    [("seed", 7), ("title", "Another title"), ("design", "prospective")],
)
def test_hash_changes_with_meaning(demo_copy: Path, key: str, value: object) -> None:
    before = load_study(demo_copy).registration_hash
    data = yaml.safe_load(demo_copy.read_text())
    data[key] = value
    _rewrite(demo_copy, data)
    assert load_study(demo_copy).registration_hash != before


def test_hash_survives_a_new_optional_field(demo_copy: Path) -> None:
    """Defaults a file leaves out are not hashed: a later schema with more optional
    fields gives a registered protocol the same hash."""
    from studyhub.protocol.load import canonical_json

    files = load_study(demo_copy)
    assert '"hide_other_raters"' not in canonical_json(files.protocol)


def test_plan_change_changes_registration_hash(demo_copy: Path) -> None:
    before = load_study(demo_copy)
    plan = demo_copy.parent.parent / "analysis" / "inspection_demo.yaml"
    text = plan.read_text().replace("alpha: 0.05", "alpha: 0.025")
    plan.write_text(text.replace("confidence: 0.95", "confidence: 0.975"))  # 1 - alpha
    after = load_study(demo_copy)
    assert after.protocol_hash == before.protocol_hash
    assert after.plan_hash != before.plan_hash
    assert after.registration_hash != before.registration_hash


def test_errors_name_file_line_key_and_fix(demo_copy: Path) -> None:
    text = demo_copy.read_text().replace(
        "method: integrated_gradients", "method: integrated_gradient"
    )
    demo_copy.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "integrated_gradient" in row)
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    message = str(info.value)
    assert str(demo_copy) in message
    assert f"line {line}, key arms[0].method" in message
    assert "'integrated_gradient'" in message
    assert "Fix: use one of the listed values" in message


def test_every_problem_is_listed_at_once(demo_copy: Path) -> None:
    text = demo_copy.read_text()
    text = text.replace("seed: 20261126", "seed: -1").replace("canvas_px: 448", "canvas_px: huge")
    demo_copy.write_text(text)
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    message = str(info.value)
    assert "2 problems" in message
    assert "key seed" in message and "key rendering.canvas_px" in message


def test_missing_key_points_at_its_parent_and_names_the_key(demo_copy: Path) -> None:
    text = demo_copy.read_text().replace("  n_cases: 40\n", "")
    demo_copy.write_text(text)
    parent = next(i for i, row in enumerate(text.splitlines(), 1) if row.startswith("sampling:"))
    with pytest.raises(ProtocolError, match=rf"line {parent}, key sampling.n_cases: required key"):
        load_study(demo_copy)


def test_typo_gets_a_suggestion(demo_copy: Path) -> None:
    demo_copy.write_text(demo_copy.read_text().replace("objective:", "objectve:"))
    with pytest.raises(ProtocolError, match="did you mean 'objective'"):
        load_study(demo_copy)


def test_plan_cross_references_are_checked(demo_copy: Path) -> None:
    plan = demo_copy.parent.parent / "analysis" / "inspection_demo.yaml"
    plan.write_text(plan.read_text().replace("versus: random_map", "versus: random_mapp"))
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    message = str(info.value)
    assert str(plan) in message
    assert "endpoints[0].comparison.versus" in message
    assert "'random_mapp' is not an arm" in message
    assert "use one of ig, gradcam, random_map, randomized_model" in message


def test_plan_must_belong_to_the_protocol(demo_copy: Path) -> None:
    plan = demo_copy.parent.parent / "analysis" / "inspection_demo.yaml"
    plan.write_text(plan.read_text().replace("protocol: inspection_demo", "protocol: other_study"))
    with pytest.raises(ProtocolError, match="belongs to protocol 'other_study'"):
        load_study(demo_copy)


def test_missing_plan_file_is_named(demo_copy: Path) -> None:
    (demo_copy.parent.parent / "analysis" / "inspection_demo.yaml").unlink()
    with pytest.raises(
        ProtocolError, match=r"key analysis_plan: file .*inspection_demo.yaml' does not exist"
    ):
        load_study(demo_copy)


def test_duplicate_keys_are_refused(demo_copy: Path) -> None:
    demo_copy.write_text(demo_copy.read_text() + "seed: 5\n")
    with pytest.raises(ProtocolError, match=r"key seed: duplicate key \(first given on line \d+\)"):
        load_study(demo_copy)


PRESETS = (
    "  opacity: 0.5\n"
    "  window_presets:\n"
    "    - {name: Soft tissue, center: 40, width: 400}\n"
    "    - {name: Lung, center: -600, width: 1500}\n"
    "    - {name: Bone, center: 300, width: 2000}\n"
)


def test_window_presets_parse_in_order_and_change_the_hash(demo_copy: Path) -> None:
    from studyhub.protocol.load import canonical_json

    before = load_study(demo_copy)
    assert before.protocol.rendering.window_presets == []
    assert "window_presets" not in canonical_json(before.protocol)  # old hashes are kept
    demo_copy.write_text(demo_copy.read_text().replace("  opacity: 0.5\n", PRESETS))
    after = load_study(demo_copy)
    presets = [(p.name, p.center, p.width) for p in after.protocol.rendering.window_presets]
    assert presets == [
        ("Soft tissue", 40.0, 400.0),
        ("Lung", -600.0, 1500.0),
        ("Bone", 300.0, 2000.0),
    ]
    assert after.registration_hash != before.registration_hash


@pytest.mark.parametrize(
    ("preset", "key", "phrase"),
    [
        (
            "{name: Lung, center: 40, width: 400}",
            "key rendering.window_presets",
            "window preset names must be unique, ['Lung'] repeat. Fix: give each preset its own name",
        ),
        (
            "{name: Flat, center: 40, width: -5}",
            "key rendering.window_presets[3].width",
            "greater than 0 (found -5)",
        ),
        (
            "{name: Flat, center: 40, width: 0}",
            "key rendering.window_presets[3].width",
            "greater than 0 (found 0)",
        ),
        (
            "{name: Flat, center: .nan, width: 10}",
            "key rendering.window_presets[3].center",
            "finite number",
        ),
        (
            f"{{name: {'x' * 41}, center: 40, width: 400}}",
            "key rendering.window_presets[3].name",
            "at most 40 characters",
        ),
        (
            "{name: '', center: 40, width: 400}",
            "key rendering.window_presets[3].name",
            "at least 1 character",
        ),
        ("{name: Flat, width: 400}", "key rendering.window_presets[3].center", "required key"),
    ],
)
def test_bad_window_presets_are_refused_with_located_messages(
    demo_copy: Path, preset: str, key: str, phrase: str
) -> None:
    demo_copy.write_text(
        demo_copy.read_text().replace("  opacity: 0.5\n", PRESETS + f"    - {preset}\n")
    )
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    message = str(info.value)
    assert "1 problem" in message, message
    assert key in message and phrase in message, message


# --- canonical hashing: stable for registered files, different for every written value ----

STABLE = Path(__file__).parent / "stable" / "every_method.yaml"

#: Hashes computed at commit f7aad66, before arm params and endpoint options had schemas and
#: before values were parsed strictly: checking values must not change what studies locked.
PINNED = {
    "demo": (
        "c9f29b67166d85887b4c1987d9eeefc5bcf3dbb15c4a5b0a62e3eb391757501e",
        "c3313a151367bb29f4485fcab3a8733437c7e58db6fccba8952a2e6e164dfc06",
        "5466a1bbe12605bba26b0bad5448b86bc1a816c9ebff8ae3ddfb8efddf494c00",
    ),
    "every_method": (
        "21d5ddf97af2314ac35e4ecf67d4ac1480f9e5e0f5fd30adb5ba5545144bcf99",
        "6763c7ec98b848fc775d30dd8be0abb391a7408178e7b4b2f44c66a0ed2f01fb",
        "8d02d1fde337370efee16d906bc4b511b46c5d03f96753a1bd695f15f5a07a03",
    ),
}


#: The demo's rendering block as it was at f7aad66; issue 13 gave the demo the readable look
#: (plasma, smoothed outline, bicubic) since, with fields that a file left without them lacks.
DEMO_RENDERING_F7AAD66 = (
    "rendering:\n  colormap: cividis\n  sign: positive\n  normalize_percentile: 99\n"
    "  top_k_percent: 10\n  canvas_px: 448\n  opacity: 0.5\n"
)


@pytest.mark.parametrize(("name", "path"), [("demo", DEMO_PROTOCOL), ("every_method", STABLE)])
def test_registered_hashes_are_stable(name: str, path: Path, demo_copy: Path) -> None:
    if name == "demo":  # the file as registered then: new optional fields change no hash
        text = demo_copy.read_text()
        start = text.index("rendering:\n")
        end = text.index("\n\n", start) + 1
        demo_copy.write_text(text[:start] + DEMO_RENDERING_F7AAD66 + text[end:])
        path = demo_copy
    files = load_study(path)
    assert (files.protocol_hash, files.plan_hash, files.registration_hash) == PINNED[name]


def test_params_and_options_are_hashed_as_written() -> None:
    """Validated against their schemas, but no default is filled in and no number retyped."""
    from studyhub.protocol.load import canonical_json

    files = load_study(STABLE)
    canonical = canonical_json(files.protocol)
    assert '"params":{"sigma":4}' in canonical  # a float parameter written as 4 stays 4
    assert '"params":{"n_steps":32,"baseline":"black"}' not in canonical  # keys are sorted
    assert '"params":{"baseline":"black","n_steps":32}' in canonical
    assert '"options":{"form":"ICC2"}' in canonical_json(files.plan)


def test_canonical_forms_exist_before_load_study_returns(demo_copy: Path) -> None:
    """register opens the store only after this: canonicalising cannot fail behind it."""
    files = load_study(demo_copy)
    assert {"protocol_canonical", "plan_canonical"} <= set(vars(files))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new))


IG = "params: {n_steps: 32, baseline: black}"

#: Pairs of spellings of one key that mean different things: each must hash differently.
DIFFERENT = [
    ("protocol", "top_k_percent: 10", "top_k_percent: null"),  # a value vs null
    ("protocol", "  top_k_percent: 10\n", ""),  # written vs absent (the default)
    ("protocol", "  canvas_px: 448\n", ""),  # written as the default vs absent
    ("protocol", "  shuffle: true\n", "  shuffle: false\n"),
    ("protocol", IG, "params: {n_steps: 32}"),  # a param as the default vs absent
    ("protocol", IG, "params: {n_steps: 32, baseline: black, internal_batch_size: 32}"),
    ("protocol", "    method: random\n", "    method: random\n    params: {sigma: 4}\n"),
    ("protocol", "    method: random\n", "    method: random\n    params: {}\n"),  # {} vs absent
    (
        "plan",
        "options: {rater_by_arm: true}\n\n  - id: gradcam_vs_ig",
        "options: {rater_by_arm: true, case_by_arm: true}\n\n  - id: gradcam_vs_ig",
    ),
    (
        "plan",
        "options: {rater_by_arm: true}\n\n  - id: gradcam_vs_ig",
        "options: {}\n\n  - id: gradcam_vs_ig",
    ),
    ("plan", "threshold: 0.4", "threshold: 0.41"),
]


@pytest.mark.parametrize(("which", "old", "new"), DIFFERENT)
def test_every_written_value_changes_the_hash(
    demo_copy: Path, which: str, old: str, new: str
) -> None:
    path = (
        demo_copy if which == "protocol" else demo_copy.parent.parent / "analysis" / DEMO_PLAN.name
    )
    before = load_study(demo_copy).registration_hash
    _edit(path, old, new)
    assert load_study(demo_copy).registration_hash != before


#: Values that lax parsing would read as another value that hashes alike: refused instead.
COLLIDING = [
    ("protocol", "seed: 20261126", "seed: true", "key seed: input should be a valid integer"),
    (
        "protocol",
        "  shuffle: true\n",
        "  shuffle: 1\n",
        "blinding.shuffle: input should be a valid boolean",
    ),
    (
        "protocol",
        "n_cases: 40",
        "n_cases: 40.0",
        "sampling.n_cases: input should be a valid integer",
    ),
    (
        "protocol",
        "n_cases: 40",
        'n_cases: "40"',
        "sampling.n_cases: input should be a valid integer",
    ),
    (
        "protocol",
        IG,
        "params: {n_steps: 32.0, baseline: black}",
        "arms[0].params.n_steps: input should be a valid integer",
    ),
    (
        "protocol",
        IG,
        "params: {n_steps: null, baseline: black}",
        "arms[0].params.n_steps: input should be a valid integer",
    ),
    (
        "protocol",
        IG,
        "params: {n_steps: .nan, baseline: black}",
        "arms[0].params.n_steps: input should be a valid integer (found nan)",
    ),
    (
        "protocol",
        IG,
        "params: {n_steps: .inf, baseline: black}",
        "arms[0].params.n_steps: input should be a valid integer (found inf)",
    ),
    (
        "plan",
        "options: {n_boot: 2000}",
        'options: {n_boot: "2000"}',
        "endpoints[2].options.n_boot: input should be a valid integer",
    ),
]


@pytest.mark.parametrize(("which", "old", "new", "message"), COLLIDING)
def test_values_that_would_hash_alike_are_refused(
    demo_copy: Path, which: str, old: str, new: str, message: str
) -> None:
    path = (
        demo_copy if which == "protocol" else demo_copy.parent.parent / "analysis" / DEMO_PLAN.name
    )
    _edit(path, old, new)
    with pytest.raises(ProtocolError) as info:
        load_study(demo_copy)
    assert message in str(info.value)
    assert "Fix: write" in str(info.value)


@pytest.mark.parametrize("spelling", ["0.050", "5.0e-2", "5e-2", "0.5E-1", "0.05"])
def test_number_spelling_does_not_change_the_hash(demo_copy: Path, spelling: str) -> None:
    """YAML 1.2 / JSON spellings too: PyYAML alone reads 5e-2 as text."""
    plan = demo_copy.parent.parent / "analysis" / DEMO_PLAN.name
    before = load_study(demo_copy)
    _edit(plan, "alpha: 0.05", f"alpha: {spelling}")
    after = load_study(demo_copy)
    assert after.plan.alpha == 0.05
    assert after.plan_hash == before.plan_hash


def test_a_parameter_is_hashed_as_written(demo_copy: Path) -> None:
    """Typed fields hash their value (99 and 99.0 alike); params and options hash what is
    written, so 4 and 4.0 differ there (the README states this rule)."""
    hashes = []
    for sigma in ("4", "4.0"):
        text = DEMO_PROTOCOL.read_text().replace(
            "    method: random\n", f"    method: random\n    params: {{sigma: {sigma}}}\n"
        )
        demo_copy.write_text(text)
        hashes.append(load_study(demo_copy).protocol_hash)
    assert hashes[0] != hashes[1]
