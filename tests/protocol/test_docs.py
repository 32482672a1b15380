"""Every field is documented, and the documentation's examples run."""

from __future__ import annotations

from pydantic import Field

from studyhub.protocol import reference
from studyhub.protocol._base import Strict
from studyhub.protocol.reference import field_reference, undocumented_fields
from tests.paths import ROOT


def test_every_protocol_and_plan_field_has_documentation() -> None:
    assert undocumented_fields() == []


def test_the_check_finds_an_undocumented_field(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    class Loose(Strict):
        documented: int = Field(description="yes")
        bare: int = 0

    monkeypatch.setattr(reference, "Protocol", Loose)
    assert undocumented_fields() == ["Loose.bare"]


def test_reference_lists_every_field() -> None:
    text = field_reference()
    for name in ("analysis_plan", "normalize_percentile", "success_criterion", "washout_days"):
        assert f"`{name}`" in text


def test_reference_doc_is_current() -> None:
    """docs/protocol-reference.md is generated: regenerate it with the command it names."""
    doc = (ROOT / "docs" / "protocol-reference.md").read_text()
    assert doc.strip() == field_reference().strip()


def test_every_shipped_protocol_validates(cli) -> None:  # type: ignore[no-untyped-def]
    protocols = sorted((ROOT / "protocols").glob("*.yaml"))
    assert protocols
    for path in protocols:
        result = cli("validate", str(path))
        assert result.exit_code == 0, result.output
