"""Training end to end on tiny random encoders: the run folder, the card's honesty, reproducibility, loading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import WNUT_SAMPLE

from tunecard import environment
from tunecard.config import CONFIG_FILE, build_config
from tunecard.errors import ConfigError, OutputError
from tunecard.pipeline import train
from tunecard.training import recorder as recorder_module
from tunecard.training.recorder import ProgressBar

FAST = dict(max_train_examples=160, max_eval_examples=60, train_batch_size=16, learning_rate=1e-3, precision="fp32")


def _ner_config(model: Path, output: Path, **overrides):
    values = dict(task="ner", model=str(model), train=str(WNUT_SAMPLE / "train.conll"),
                  validation=str(WNUT_SAMPLE / "dev.conll"), test=str(WNUT_SAMPLE / "test.conll"),
                  output=str(output), num_epochs=2, **FAST)
    values.update(overrides)
    return build_config(None, values)


@pytest.fixture(scope="module")
def ner_run(tiny_bert_cased, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs") / "ner"
    return train(_ner_config(tiny_bert_cased, output, eval_on_start=True), progress=False)


def _card_table(card: str) -> list[dict[str, str]]:
    """Parse the card's 'Training results' pipe table."""
    section = card.split("### Training results", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells)))
    return rows


def test_run_folder_has_everything(ner_run):
    folder = ner_run.output
    for name in ("model.safetensors", "config.json", "tokenizer.json", CONFIG_FILE, "history.json", "metrics.json",
                 "README.md"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"]["0"] == "O"
    assert set(config["label2id"]) == set(ner_run.metrics["labels"])
    assert not list(folder.parent.glob(".ner.*")), "temporary folders left behind"


def test_card_numbers_equal_history(ner_run):
    card = (ner_run.output / "README.md").read_text()
    history = json.loads((ner_run.output / "history.json").read_text())
    metrics = json.loads((ner_run.output / "metrics.json").read_text())
    table = _card_table(card)
    assert len(table) == len(history["rows"]) == 3  # step 0 + two epochs
    for line, row in zip(table, history["rows"]):
        assert line["Step"] == str(row["step"])
        assert float(line["Epoch"]) == pytest.approx(row["epoch"])
        assert line["Validation Loss"] == f"{row['validation_loss']:.4f}"
        for title, key in (("Precision", "precision"), ("Recall", "recall"), ("F1", "f1"), ("Accuracy", "accuracy")):
            assert line[title] == f"{row[key]:.4f}"
        expected_train = "No log" if row["training_loss"] is None else f"{row['training_loss']:.4f}"
        assert line["Training Loss"] == expected_train
    # The saved checkpoint is the marked row, and the headline equals both it and metrics.json.
    best = history["best"]
    marked = [line for line in table if line["Saved"] == "✓"]
    assert len(marked) == 1 and marked[0]["Step"] == str(best["step"])
    headline = dict(re.findall(r"^- (Loss|Precision|Recall|F1|Accuracy): ([0-9.]+)$", card.split("It achieves the following results")[1].split("\n\n")[0], re.M))
    validation = metrics["validation"]
    assert headline["F1"] == f"{validation['f1']:.4f}" == marked[0]["F1"]
    assert headline["Precision"] == f"{validation['precision']:.4f}" == marked[0]["Precision"]
    assert headline["Loss"] == f"{validation['loss']:.4f}"
    # model-index in the YAML header reports the same numbers.
    header = yaml.safe_load(card.split("---")[1])
    reported = {(r["dataset"]["split"], m["type"]): m["value"] for r in header["model-index"][0]["results"] for m in r["metrics"]}
    assert reported[("validation", "f1")] == round(validation["f1"], 4)
    assert reported[("test", "f1")] == round(metrics["test"]["f1"], 4)


def test_card_has_the_trainer_fields_and_more(ner_run):
    card = (ner_run.output / "README.md").read_text()
    for text in ("This model is a fine-tuned version of", "It achieves the following results on the evaluation set:",
                 "- learning_rate: 0.001", "- train_batch_size: 16", "- seed: 42",
                 "- optimizer: AdamW with betas=(0.9,0.999) and epsilon=1e-08", "- lr_scheduler_type: linear",
                 "- num_epochs: 2", "| Training Loss | Epoch", "### Framework versions", "- Transformers ",
                 "- Pytorch ", "- Datasets ", "- Tokenizers ", "baseline", "### Results per entity type",
                 "### Label map", "## Training and evaluation data", "### Test results", "pipeline(",
                 "Precision: fp32 (the CPU's bf16: "):
        assert text in card, text
    # The card says why `precision: auto` chose what it did on this CPU: the same words as `tunecard env`.
    assert f"(the CPU's bf16: {environment.cpu_bf16_kind()})" in card


def test_card_shows_its_plots(ner_run):
    card = (ner_run.output / "README.md").read_text()
    for name in ("loss", "metrics", "per_label", "confusion", "learning_rate"):
        path = ner_run.output / "plots" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"](plots/{name}.png)" in card


def test_training_loss_falls_and_history_is_complete(ner_run):
    rows = ner_run.history["rows"]
    assert rows[0]["step"] == 0 and rows[0]["training_loss"] is None
    assert rows[2]["training_loss"] < rows[1]["training_loss"]
    assert rows[-1]["validation_loss"] < rows[0]["validation_loss"]
    steps = ner_run.history["steps"]
    assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))


def test_resolved_config_reproduces_the_run(ner_run, tmp_path):
    saved = ner_run.output / CONFIG_FILE
    again = train(build_config(saved, {"output": str(tmp_path / "again")}), progress=False)
    first = ner_run.history["rows"]
    second = again.history["rows"]
    assert [r["step"] for r in first] == [r["step"] for r in second]
    for a, b in zip(first, second):
        assert b["validation_loss"] == pytest.approx(a["validation_loss"], abs=1e-5)
        assert b["f1"] == pytest.approx(a["f1"], abs=1e-6)


def test_pipeline_and_automodel_load_the_folder(ner_run):
    from transformers import AutoModelForTokenClassification, pipeline

    model = AutoModelForTokenClassification.from_pretrained(ner_run.output)
    assert model.config.id2label[0] == "O"
    ner = pipeline("token-classification", model=str(ner_run.output), aggregation_strategy="first")
    result = ner("Heading to Seattle with Taylor Swift tonight")
    assert isinstance(result, list)


def test_predict_offsets_match_the_text(ner_run):
    import tunecard

    predictor = tunecard.load(ner_run.output)
    texts = ["Dr. O'Neil (Paris) met Zoë Saldaña at 5:30pm, right?!", "東京 and Москва are cities.", ""]
    results = predictor.predict(texts)
    assert len(results) == 3 and results[2] == []
    for text, entities in zip(texts, results):
        for entity in entities:
            assert text[entity["start"]:entity["end"]] == entity["text"]
            assert entity["text"] == entity["text"].strip()
            assert 0.0 <= entity["score"] <= 1.0


def test_existing_output_is_not_overwritten(ner_run, tiny_bert_cased):
    before = (ner_run.output / "README.md").read_text()
    with pytest.raises(OutputError) as error:
        train(_ner_config(tiny_bert_cased, ner_run.output), progress=False)
    assert error.value.code == "E402"
    assert (ner_run.output / "README.md").read_text() == before


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError) as error:
        build_config(None, {"learning_rate": -1.0})
    assert "learning_rate" in str(error.value)
    with pytest.raises(ConfigError):
        build_config(None, None, ["not_a_key=1"])
    with pytest.raises(ConfigError):
        build_config(None, {"eval_strategy": "steps"})


def test_early_stopping_keeps_the_best_and_says_so(tiny_bert_cased, tmp_path):
    # A learning rate this small changes nothing: F1 cannot improve, so patience 1 stops after 2 evaluations.
    result = train(_ner_config(tiny_bert_cased, tmp_path / "early", num_epochs=5, learning_rate=1e-12,
                               early_stopping_patience=1), progress=False)
    assert result.history["stopped_by"] == {"reason": "early_stopping", "evaluation": 2, "patience": 1}
    assert len(result.history["rows"]) == 2
    assert result.history["best"]["step"] == result.history["rows"][0]["step"]
    card = (result.output / "README.md").read_text()
    assert "Training stopped early" in card
    assert "D402" in card  # the doctor: the best epoch is not the last


def test_redirected_output_gets_plain_progress_lines(monkeypatch, capsys):
    # Under pytest stderr is not a terminal: no live bar, a plain line per interval (here every step).
    from transformers import TrainerControl, TrainerState, TrainingArguments

    monkeypatch.setattr(recorder_module, "PLAIN_PROGRESS_SECONDS", 0.0)
    state, control = TrainerState(max_steps=4), TrainerControl()
    args = TrainingArguments(output_dir="unused", report_to=[])
    progress = ProgressBar(samples_per_step=8)
    progress.on_train_begin(args, state, control)
    for step in (1, 2):
        state.global_step = step
        progress.on_log(args, state, control, logs={"loss": 1.0 / step})
        progress.on_step_end(args, state, control)
    lines = capsys.readouterr().err.splitlines()
    assert progress.bar is None and len(lines) == 2
    assert lines[0].startswith("train: step 1/4 (25.0%), loss 1.0000, ") and lines[0].endswith(" left")
    assert lines[1].startswith("train: step 2/4 (50.0%), loss 0.5000, ") and "samples/s" in lines[1]
    quiet = ProgressBar(samples_per_step=8, enabled=False)  # progress=False: nothing at all
    quiet.on_train_begin(args, state, control)
    quiet.on_step_end(args, state, control)
    assert capsys.readouterr().err == ""
