"""The reporting checklists point only at places that exist and say honestly what is missing."""

from __future__ import annotations

import dataclasses
import re

import pytest

from studyhub.evidence.checklist import GUIDELINES, ChecklistItem, checklist
from studyhub.evidence.report import SECTION_TITLES, ReportInput
from tests.evidence.report_fixtures import report_input

PACKAGE_PLACES = (
    "protocol/",
    "plan/",
    "data/",
    "audit/",
    "results/results.json",
    "environment.json",
    "SHA256SUMS",
    "ro-crate-metadata.json",
)
#: DECIDE-AI numbers read in a published table of the checklist (see checklist.py's sources).
CHECKED_NUMBERS = {"DECIDE-AI": {"1", "2", "3", "4", "I", "II", "III"}}


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> ReportInput:
    return report_input(tmp_path_factory.mktemp("plan"))


def _by_topic(items: list[ChecklistItem], guideline: str, topic: str) -> ChecklistItem:
    (item,) = [i for i in items if i.guideline == guideline and i.topic == topic]
    return item


def test_every_place_named_exists(full: ReportInput) -> None:
    items = checklist(full)
    assert {i.guideline for i in items} == set(GUIDELINES)
    for item in items:
        for title in re.findall(r"report section “([^”]+)”", item.where):
            assert title in SECTION_TITLES, item
        if item.status != "not answered":
            named = re.findall(r"report section “", item.where) or [
                p for p in PACKAGE_PLACES if p in item.where
            ]
            assert named, item


def test_numbers_only_where_checked(full: ReportInput) -> None:
    for item in checklist(full):
        if item.number:
            assert item.number in CHECKED_NUMBERS.get(item.guideline, set()), item


def test_each_guideline_lists_what_it_cannot_answer(full: ReportInput) -> None:
    items = checklist(full)
    for guideline in GUIDELINES:
        statuses = {i.status for i in items if i.guideline == guideline}
        assert statuses == {"answered", "partly answered", "not answered"}, guideline
    for item in items:
        assert item.where, item  # a place, or the reason it is not answered


def test_answers_follow_the_study(full: ReportInput) -> None:
    with_parts = checklist(full)
    without = checklist(
        dataclasses.replace(full, mrmc=None, calibration=None, sampling_report=None)
    )
    topic = "Accuracy estimates and their precision"
    assert _by_topic(with_parts, "STARD-AI", topic).status == "answered"
    assert "MRMC reader ROC analysis" in _by_topic(with_parts, "STARD-AI", topic).where
    assert _by_topic(without, "STARD-AI", topic).status == "not answered"
    assert "no reader-diagnosis (MRMC) endpoint" in _by_topic(without, "STARD-AI", topic).where
    cal = "Calibration of the model's probabilities"
    assert _by_topic(with_parts, "CLAIM 2024", cal).status == "answered"
    assert _by_topic(without, "CLAIM 2024", cal).status == "not answered"
    base = "Baseline characteristics"
    assert _by_topic(with_parts, "STARD-AI", base).status == "partly answered"
    assert _by_topic(without, "STARD-AI", base).status == "not answered"
