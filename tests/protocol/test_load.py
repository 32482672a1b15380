"""Loading protocols and plans: the example, canonical hashing, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from studyhub.errors import ProtocolError
from studyhub.protocol import load_study
from tests.paths import DEMO_PROTOCOL


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
    plan.write_text(plan.read_text().replace("alpha: 0.05", "alpha: 0.025"))
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
