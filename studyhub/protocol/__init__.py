"""Protocols and analysis plans: schemas, loading with located errors, canonical hashing."""

from studyhub.protocol.load import StudyFiles, canonical_json, load_plan, load_protocol, load_study
from studyhub.protocol.plan import AnalysisPlan, Endpoint, Hypothesis
from studyhub.protocol.schema import Arm, Protocol

__all__ = [
    "AnalysisPlan",
    "Arm",
    "Endpoint",
    "Hypothesis",
    "Protocol",
    "StudyFiles",
    "canonical_json",
    "load_plan",
    "load_protocol",
    "load_study",
]
