"""Random YAML never crashes the loader: it validates or raises a ProtocolError."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyhub.errors import ProtocolError
from studyhub.protocol import load_study
from tests.paths import DEMO_PROTOCOL

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["demo", "csv", "ig", "likert", "auc", "metric:x", "../x.yaml", "a:b"]),
)
keys = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(
        ["id", "arms", "data", "model", "sampling", "instrument", "items", "kind", "method"]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=25,
)


def _load(path: Path) -> None:
    try:
        load_study(path)
    except ProtocolError as exc:
        message = str(exc)
        assert str(path) in message
        assert "Fix" in message


@FUZZ
@given(text=st.text(max_size=400))
def test_random_text(tmp_path_factory, text: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_text(text, encoding="utf-8")
    _load(path)


@FUZZ
@given(data=values)
def test_random_yaml_structures(tmp_path_factory, data: object) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    _load(path)


@FUZZ
@given(
    section=st.sampled_from(
        [
            "data",
            "model",
            "sampling",
            "arms",
            "instrument",
            "reading",
            "cues",
            "rendering",
            "seed",
            "design",
        ]
    ),
    value=values,
)
def test_random_values_in_a_valid_protocol(tmp_path_factory, section: str, value: object) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("fuzz")
    data = yaml.safe_load(DEMO_PROTOCOL.read_text())
    data["analysis_plan"] = str(DEMO_PROTOCOL.parent.parent / "analysis" / "inspection_demo.yaml")
    data[section] = value
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    _load(path)


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes(tmp_path_factory, data: bytes) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_bytes(data)
    _load(path)


def test_alias_bomb_is_refused_or_bounded(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}]\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    _load(path)
