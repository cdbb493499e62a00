"""The doctor on the labelled corpus of real Trainer cards (tests/cards/real): issue 28's targets, measured by
benchmarks/doctor_eval.py, hold; every card is read without a check failing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tunecard.doctor import diagnose

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "cards" / "real"


def _eval_module():
    spec = importlib.util.spec_from_file_location("doctor_eval", ROOT / "benchmarks" / "doctor_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result():
    module = _eval_module()
    cards, codes = module.load()
    return module.evaluate(cards, codes)


def test_the_corpus_is_real_and_labelled():
    module = _eval_module()
    cards, codes = module.load()
    assert len(cards) >= 60
    for card in cards:
        assert (CORPUS / card["file"]).is_file()
        assert card["source"].startswith("https://huggingface.co/") and card["via"].startswith("https://github.com/")
        assert isinstance(card["healthy"], bool)
        assert card["healthy"] == (not any(f["severity"] in ("error", "warning") for f in card["findings"])), card["id"]
    assert sum(c["healthy"] for c in cards) >= 15
    assert {c["task"] for c in cards} >= {"binary", "multiclass", "ner", "regression"}


def test_major_findings_are_matched(result):
    assert result["matched_share"] >= 0.95, [c for c in result["per_card"] if c["missed"]]


def test_no_error_on_a_healthy_card(result):
    assert result["errors_on_healthy_cards"] == []


def test_false_warnings_are_rare(result):
    assert result["false_share"] <= 0.02, [(c["id"], c["false"]) for c in result["per_card"] if c["false"]]


def test_framework_versions_are_never_above_info(result):
    assert set(result["d701"]) <= {"info"}


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.md")), ids=lambda p: p.stem[:40])
def test_every_real_card_is_read_without_a_check_failing(path):
    report = diagnose(path, installed={})
    assert not [item for item in report.unparsed if item.startswith("check ") or "could not be read (" in item]
    assert report.read["results_rows"] > 0
