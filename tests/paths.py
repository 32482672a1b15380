"""Paths the tests share."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_PROTOCOL = ROOT / "protocols" / "inspection_demo.yaml"
DEMO_PLAN = ROOT / "analysis" / "inspection_demo.yaml"
DATA = ROOT / "tests" / "data"
