"""Runs broken on purpose are diagnosed from their run folders, with error-level findings."""

from __future__ import annotations

from pathlib import Path

from conftest import WNUT_SAMPLE

from tunecard.config import build_config
from tunecard.doctor import diagnose, doctor_command
from tunecard.pipeline import train


def _codes(report) -> set[str]:
    return {finding.code for finding in report.findings}


def test_learning_rate_one_is_diagnosed(tiny_bert_cased, tmp_path, capsys):
    config = build_config(None, dict(
        task="ner", model=str(tiny_bert_cased), train=str(WNUT_SAMPLE / "train.conll"),
        validation=str(WNUT_SAMPLE / "dev.conll"), output=str(tmp_path / "lr1"), learning_rate=1.0, num_epochs=2,
        max_train_examples=128, max_eval_examples=64, precision="fp32"))
    result = train(config, progress=False)
    report = diagnose(result.output)
    codes = _codes(report)
    assert "D304" in codes  # learning rate far too high for fine-tuning
    assert codes & {"D101", "D102", "D201", "D202", "D301", "D302", "D303"}, codes
    assert report.errors
    assert doctor_command(result.output, as_json=True, strict=True) == 1
    capsys.readouterr()
    card = (result.output / "README.md").read_text()
    assert "D304" in card


def test_a_model_that_can_only_predict_o_is_diagnosed(tiny_bert_cased, tmp_path):
    # Training data whose only entity is a single word: the model learns to say O everywhere.
    words = [line.split("\t")[0] for line in (WNUT_SAMPLE / "train.conll").read_text().splitlines() if line.strip()]
    sentences = [words[i:i + 12] for i in range(0, 12 * 80, 12)]
    lines = []
    for index, sentence in enumerate(sentences):
        for position, word in enumerate(sentence):
            tag = "B-person" if index == 0 and position == 0 else "O"
            lines.append(f"{word}\t{tag}")
        lines.append("")
    train_file = tmp_path / "train.conll"
    train_file.write_text("\n".join(lines), encoding="utf-8")
    dev_file = tmp_path / "dev.conll"
    dev_file.write_text("Taylor\tB-person\nsings\tO\n\nAdele\tB-person\nsings\tO\n", encoding="utf-8")
    config = build_config(None, dict(
        task="ner", model=str(tiny_bert_cased), train=str(train_file), validation=str(dev_file),
        output=str(tmp_path / "only-o"), learning_rate=1e-3, num_epochs=2, precision="fp32"))
    result = train(config, progress=False)
    assert result.metrics["validation"]["predicted_entities"] == 0
    report = diagnose(Path(result.output))
    codes = _codes(report)
    assert "D102" in codes  # predicts no entities
    assert "D601" in codes  # tiny training set
    assert any(f.severity == "error" for f in report.findings)


def test_a_run_without_a_validation_split_is_judged_on_its_test_split(tiny_bert_cased, tmp_path):
    # Only train and test: no per-epoch evaluations, yet the test split is judged against its baselines and the
    # report says which checks had nothing to read and why (it used to print "No problems found").
    config = build_config(None, dict(
        task="ner", model=str(tiny_bert_cased), train=str(WNUT_SAMPLE / "train.conll"),
        test=str(WNUT_SAMPLE / "test.conll"), output=str(tmp_path / "no-validation"), num_epochs=1,
        max_train_examples=64, max_eval_examples=64, precision="fp32"))
    result = train(config, progress=False)
    report = diagnose(result.output)
    assert result.metrics["validation"] is None and result.metrics["test"] is not None
    assert any("no validation split" in item and "test split" in item for item in report.not_run)
    assert _codes(report) & {"D102", "D201", "D202", "D203"}, _codes(report)
    assert any(f.severity in ("error", "warning") and "test" in f.evidence for f in report.findings)
    card = (result.output / "README.md").read_text()
    assert "Not run:" in card and "no validation split" in card
