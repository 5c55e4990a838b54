"""Routing rules against header tags: each matcher kind, priorities, and the explanation."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset

from agent.config import Rule
from agent.routing import NO_RULE_MATCHED, explain


def rule(name: str, match: dict[str, Any], priority: int = 0) -> Rule:
    return Rule.model_validate(
        {
            "name": name,
            "match": match,
            "pipeline": f"{name}-pipeline",
            "destinations": ["local"],
            "priority": priority,
        }
    )


@pytest.fixture
def chest_ct() -> Dataset:
    ds = Dataset()
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesDescription = "Thorax 1.0 B70f"
    ds.SliceThickness = "1.25"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.StationName = ""
    return ds


@pytest.mark.parametrize(
    ("match", "matched"),
    [
        ({"Modality": "CT"}, True),
        ({"Modality": "ct"}, False),
        ({"SeriesDescription": {"regex": "^Thorax"}}, True),
        ({"SeriesDescription": {"regex": "(?i)thorax"}}, True),
        ({"SeriesDescription": {"regex": "^Abdomen"}}, False),
        ({"SliceThickness": {"range": [0.5, 2.0]}}, True),
        ({"SliceThickness": {"range": [2, 5]}}, False),
        ({"SeriesDescription": {"range": [0, 5]}}, False),
        ({"BodyPartExamined": {"in": ["LUNG", "CHEST"]}}, True),
        ({"BodyPartExamined": {"in": ["ABDOMEN"]}}, False),
        ({"ImageType": "ORIGINAL\\PRIMARY\\AXIAL"}, True),
        ({"ImageType": {"regex": "LOCALIZER"}}, False),
        ({"Modality": "CT", "BodyPartExamined": "HEAD"}, False),
        ({}, True),
    ],
)
def test_each_matcher_kind(chest_ct: Dataset, match: dict[str, Any], matched: bool) -> None:
    chosen = explain([rule("only", match)], chest_ct).chosen
    assert (chosen is not None) is matched


@pytest.mark.parametrize("keyword", ["PatientAge", "StationName"])
def test_absent_or_empty_tag_never_matches(chest_ct: Dataset, keyword: str) -> None:
    explanation = explain([rule("needs-tag", {keyword: {"regex": ".*"}})], chest_ct)
    (check,) = explanation.rules[0].checks
    assert explanation.chosen is None
    assert check.actual is None
    assert check.reason == "absent, empty or not a text value"


def test_highest_priority_wins_then_configuration_order(chest_ct: Dataset) -> None:
    rules = [
        rule("first-any", {}),
        rule("second-ct", {"Modality": "CT"}),
        rule("urgent-ct", {"Modality": "CT"}, priority=5),
        rule("urgent-mr", {"Modality": "MR"}, priority=9),
    ]
    explanation = explain(rules, chest_ct)
    assert [checked.rule.name for checked in explanation.rules] == [
        "urgent-mr",
        "urgent-ct",
        "first-any",
        "second-ct",
    ]
    assert explanation.chosen is not None
    assert explanation.chosen.name == "urgent-ct"


def test_explanation_says_why_for_people(chest_ct: Dataset) -> None:
    rules = [
        rule("mr-brain", {"Modality": "MR", "SliceThickness": {"range": [0, 1]}}),
        rule("ct-chest", {"Modality": "CT"}),
    ]
    lines = explain(rules, chest_ct).lines()
    assert lines == [
        "rule mr-brain (priority 0, pipeline mr-brain-pipeline): does not match",
        "  FAIL Modality == 'MR': 'CT' is not 'MR'",
        "  FAIL SliceThickness in [0, 1]: 1.25 is outside [0, 1]",
        "rule ct-chest (priority 0, pipeline ct-chest-pipeline): matches <- chosen",
        "  ok   Modality == 'CT': 'CT' is 'CT'",
        "result: ct-chest",
    ]


def test_no_rule_matched(chest_ct: Dataset) -> None:
    explanation = explain([rule("mr", {"Modality": "MR"})], chest_ct)
    assert explanation.chosen is None
    assert explanation.lines()[-1] == f"result: {NO_RULE_MATCHED}"
