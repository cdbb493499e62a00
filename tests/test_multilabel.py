"""Multi-label text classification: read by shape, trained with BCE, thresholds tuned per label and saved in
config.json, which transformers' pipeline loads without tunecard, and predict / evaluate / serve apply."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import pytest
import torch
from conftest import saved_classifier

from tunecard.config import build_config
from tunecard.data import read_corpus
from tunecard.data.example import MULTI_LABEL_TASK, TEXT_TASK, ReadOptions
from tunecard.errors import ConfigError, DataError

TOPICS = {"sport": ["goal", "match", "team", "score"], "music": ["song", "guitar", "album", "band"],
          "film": ["movie", "actor", "scene", "cinema"]}
FILLER = ["the", "a", "was", "today", "really", "very", "and", "it"]


def _records(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        labels = sorted(label for label in TOPICS if rng.random() < 0.4)
        words = [rng.choice(FILLER) for _ in range(3)] + [w for label in labels for w in rng.sample(TOPICS[label], 2)]
        rng.shuffle(words)
        records.append({"text": " ".join(words), "labels": labels})
    return records


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- reading ---------------------------------------------------------------------------------------------------


def test_jsonl_label_lists_are_multi_label_by_shape(tmp_path):
    path = _write_jsonl(tmp_path / "train.jsonl", [
        {"text": "goal and song", "labels": ["sport", "music", "sport"]},  # a repeated label counts once
        {"text": "nothing here", "labels": []},
        {"text": "a movie", "labels": "film"},  # a plain label beside lists: a one-label set
    ])
    for task in (None, "text-classification", "multi-label"):
        corpus = read_corpus(path, task=task)
        assert corpus.task == MULTI_LABEL_TASK and corpus.format == "text-jsonl"
        assert [ex.labels for ex in corpus.examples] == [["music", "sport"], [], ["film"]]
        assert corpus.labels == ["film", "music", "sport"]
    with pytest.raises(DataError) as error:
        read_corpus(path, task="ner")
    assert error.value.code == "E115"


def test_a_bad_label_in_a_list_names_the_line(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"text": "x", "labels": ["a"]}, {"text": "y", "labels": ["a", {}]}])
    with pytest.raises(DataError) as error:
        read_corpus(path, task="text-classification")
    assert error.value.code == "E104" and error.value.line == 2


def test_csv_with_a_label_separator(tmp_path):
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([["text", "labels"], ["great acting, bad music", "acting|music"], ["plain", ""],
                          ["lovely score", " music "]])
    corpus = read_corpus(path, ReadOptions(label_separator="|"), task="text-classification")
    assert corpus.task == MULTI_LABEL_TASK
    assert [ex.labels for ex in corpus.examples] == [["acting", "music"], [], ["music"]]
    path.write_text("text,labels\nx,a||b\n", encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_corpus(path, ReadOptions(label_separator="|"))
    assert error.value.code == "E104" and error.value.line == 2 and "label_separator" in error.value.message


def test_list_like_labels_without_a_separator_are_warned_about(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('text,label\nx,"acting,music"\ny,acting\nz,"music,plot"\nw,plot\n', encoding="utf-8")
    corpus = read_corpus(path, task="text-classification")
    assert corpus.task == TEXT_TASK  # read as asked, one class per cell, but not silently
    assert any("label_separator ','" in warning for warning in corpus.warnings)


def test_one_label_files_read_for_a_multi_label_task_are_one_label_sets(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("good film\tfilm\nnice song\tmusic\n", encoding="utf-8")
    corpus = read_corpus(path, task="multi-label-classification")
    assert corpus.task == MULTI_LABEL_TASK and [ex.labels for ex in corpus.examples] == [["film"], ["music"]]


def test_datasets_label_sequences_are_multi_label(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    features = Features({"text": Value("string"), "labels": Sequence(ClassLabel(names=["anger", "joy", "fear"]))})
    Dataset.from_dict({"text": ["a", "b"], "labels": [[0, 1], []]}, features=features).save_to_disk(tmp_path / "ds")
    corpus = read_corpus(tmp_path / "ds", task="text-classification")
    assert corpus.task == MULTI_LABEL_TASK and [ex.labels for ex in corpus.examples] == [["anger", "joy"], []]


def test_a_bad_label_in_a_datasets_list_names_the_column_split_and_row(tmp_path):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    ids = Features({"text": Value("string"), "emotions": Sequence(ClassLabel(names=["anger", "joy"]))})
    DatasetDict({"train": Dataset.from_dict({"text": ["a", "b"], "emotions": [[0], [1, -1]]}, features=ids)}
                ).save_to_disk(tmp_path / "ids")
    names = Features({"text": Value("string"), "emotions": Sequence(Value("string"))})
    DatasetDict({"train": Dataset.from_dict({"text": ["a", "b"], "emotions": [["joy"], ["joy", " "]]},
                                            features=names)}).save_to_disk(tmp_path / "names")
    for folder, found in (("ids", "label id -1"), ("names", "label ' '")):
        with pytest.raises(DataError) as error:
            read_corpus(tmp_path / folder, ReadOptions(split="train", label_column="emotions"))
        assert error.value.code == "E104" and error.value.line == 2, error.value
        assert error.value.path.endswith("[train]") and found in error.value.message
        assert "column 'emotions'" in error.value.message and "emotions" in error.value.fix


def test_a_bad_label_in_a_json_list_names_the_key(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"text": "x", "topics": ["a", None]}])
    with pytest.raises(DataError) as error:
        read_corpus(path, ReadOptions(label_column="topics"), task="text-classification")
    assert error.value.code == "E104" and "key 'topics'" in error.value.message and '"topics"' in error.value.fix


@pytest.mark.parametrize("alias", ["multi-label", "multilabel", "multi-label-classification", "Multi-Label"])
def test_task_aliases(alias, tmp_path):
    assert build_config(None, {"task": alias, "output": str(tmp_path)}).task == "multi-label-classification"


def test_data_stats_counts_label_sets(tmp_path):
    from tunecard.data.stats import corpus_stats

    stats = corpus_stats(read_corpus(_write_jsonl(tmp_path / "t.jsonl", _records(30, 0)), task="multi-label"))
    assert stats["task"] == MULTI_LABEL_TASK and stats["labels_per_example"]["max"] <= 3
    assert stats["without_labels"] == sum(not r["labels"] for r in _records(30, 0))


# --- training, the saved folder, and what reads it ------------------------------------------------------------


@pytest.fixture(scope="module")
def multi_label_run(tiny_bert_cased, tmp_path_factory):
    from tunecard.pipeline import train

    root = tmp_path_factory.mktemp("multi-label")
    paths = {split: str(_write_jsonl(root / f"{split}.jsonl", _records(n, seed)))
             for split, n, seed in (("train", 64, 0), ("validation", 32, 1), ("test", 32, 2))}
    config = build_config(None, dict(task="text-classification", model=str(tiny_bert_cased), output=str(root / "run"),
                                     num_epochs=2, learning_rate=1e-3, precision="fp32", save_strategy="no",
                                     **paths))
    result = train(config, progress=False)
    return result, paths


def test_training_is_multi_label_with_thresholds_in_config_json(multi_label_run):
    result, _ = multi_label_run
    metrics = result.metrics
    assert metrics["task"] == "multi-label-classification" and metrics["labels"] == ["film", "music", "sport"]
    saved = json.loads((result.output / "config.json").read_text())
    assert saved["problem_type"] == "multi_label_classification"
    assert saved["tunecard"]["thresholds"] == {label: t["threshold"] for label, t in metrics["thresholds"].items()}
    assert all(t["tuned"] for t in metrics["thresholds"].values())  # every label has validation examples
    for split in ("validation", "test"):
        scores = metrics[split]
        assert {"f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss"} <= scores.keys()
        assert scores["average"] == "micro"
    assert set(metrics["baselines"]["test"]) == {"label_set", "label_prior"}
    assert "task: multi-label-classification" in (result.output / "train_config.yaml").read_text()
    # the speed layer's packed classification batches carry the float targets: no fallback
    assert metrics["speed"]["fallback"] is None


def test_the_card_says_which_f1_and_lists_the_thresholds(multi_label_run):
    result, _ = multi_label_run
    card = (result.output / "README.md").read_text()
    assert "- Micro F1: " in card and "- Macro F1: " in card and "- Hamming Loss: " in card
    assert "### Decision thresholds" in card and "tuned on validation" in card
    assert "pipeline_tag: text-classification" in card and "multi-label-classification" in card
    assert "most frequent label set baseline" in card and "per-label prior baseline" in card
    from markupsafe import escape

    from tunecard.reporting.report import write_report

    page = write_report(result.output, result.output.parent / "report.html").read_text()
    assert "Decision thresholds" in page and "Micro F1" in page
    # each label's threshold row reads the same on the card and in the report
    for label, t in result.metrics["thresholds"].items():
        cells = [label, f"{t['threshold']:.4f}", t["source"], str(t["support"]),
                 f"{t['f1']:.4f}" if t.get("f1") is not None else "-"]
        assert "| " + " | ".join(cells) + " |" in card
        aligned = ['<td class="text">', "<td>", '<td class="text">', "<td>", "<td>"]  # the report's columns
        assert "".join(f"{td}{escape(c)}</td>" for td, c in zip(aligned, cells)) in page


def _copy_run(folder, target, never: list[str]):
    """The run's doctor inputs (history, metrics, config, card), with the labels `never` predicted by the saved
    model on both evaluation splits (metrics.json's per-label counts and the card's Predicted column)."""
    import re
    import shutil

    target.mkdir()
    for name in ("history.json", "train_config.yaml"):
        shutil.copy(folder / name, target / name)
    metrics = json.loads((folder / "metrics.json").read_text())
    for split in ("validation", "test"):
        for label in never:
            metrics[split]["per_label"][label]["predicted"] = 0
    (target / "metrics.json").write_text(json.dumps(metrics))
    card = (folder / "README.md").read_text()
    for label in never:  # the per-label rows: | label | P | R | F1 | support | predicted |
        card = re.sub(rf"^(\| {label} \| [^|]+\| [^|]+\| [^|]+\| \d+ \| )\d+ \|$", r"\g<1>0 |", card, flags=re.M)
    (target / "README.md").write_text(card)
    return target


def test_the_doctor_finds_labels_never_predicted_in_runs_and_cards(multi_label_run, tmp_path):
    """A label with support that the saved model never predicts is a collapse of that label's yes/no decision
    (D105): a warning while other labels work, an error when no label is ever predicted; the same from the card."""
    from tunecard.doctor import diagnose_card, diagnose_run_folder

    result, _ = multi_label_run
    healthy = diagnose_run_folder(result.output, installed={})
    assert "D105" not in {f.code for f in healthy.findings}
    assert "D105" not in {f.code for f in diagnose_card((result.output / "README.md").read_text(), installed={}).findings}
    for never, severity in ((["music"], "warning"), (["film", "music", "sport"], "error")):
        folder = _copy_run(result.output, tmp_path / "-".join(never), never)
        for report in (diagnose_run_folder(folder, installed={}),
                       diagnose_card((folder / "README.md").read_text(), installed={})):
            found = [f for f in report.findings if f.code == "D105"]
            assert len(found) == 1 and found[0].severity == severity, report.source
            assert all(f"'{label}' (support" in found[0].evidence for label in never)
            assert "one-class" not in " ".join(f.title for f in report.findings)  # no single-label formula ran
    # a Predicted cell that holds no number is no count of 0: no D105 for it
    import re

    card = (result.output / "README.md").read_text()
    blank = re.sub(r"^(\| music \| [^|]+\| [^|]+\| [^|]+\| \d+ \| )\d+ \|$", r"\g<1>- |", card, flags=re.M)
    assert blank != card
    assert "D105" not in {f.code for f in diagnose_card(blank, installed={}).findings}


def test_transformers_pipeline_loads_it_without_tunecard(multi_label_run):
    """The folder is a plain transformers model: pipeline gives every label's sigmoid probability."""
    from tunecard.inference.predictor import load

    result, _ = multi_label_run
    texts = ["goal match song", "the movie actor was very good", "nothing"]
    script = (
        "import json, sys\n"
        "sys.modules['tunecard'] = None  # any import of tunecard fails\n"
        "from transformers import pipeline\n"
        f"classify = pipeline('text-classification', model={str(result.output)!r}, top_k=None)\n"
        f"print(json.dumps([{{s['label']: s['score'] for s in scores}} for scores in classify({texts!r})]))\n"
        "print(json.dumps(classify.model.config.tunecard['thresholds']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    scores, thresholds = json.loads(lines[-2]), json.loads(lines[-1])
    predictor = load(result.output, precision="fp32")
    for text, pipeline_scores, ours in zip(texts, scores, predictor.predict(texts)):
        for label, p in pipeline_scores.items():
            assert ours["probabilities"][label] == pytest.approx(p, abs=1e-4), text
        # predict gives exactly the labels at or above their thresholds, best first
        expected = [label for label, p in sorted(ours["probabilities"].items(), key=lambda kv: -kv[1])
                    if p >= thresholds[label]]
        assert [entry["label"] for entry in ours["labels"]] == expected


def test_evaluate_scores_the_saved_model_as_training_did(multi_label_run):
    """Both splits: validation's scores come from the pass that tuned the thresholds (an fp32 run), test's from
    a pass of its own; `tunecard evaluate` gives them from the saved folder at its saved thresholds (fp32; another
    batching than training's, so to 1e-6)."""
    from tunecard.inference.predictor import evaluate_folder

    result, paths = multi_label_run
    for split in ("validation", "test"):
        scores = evaluate_folder(result.output, paths[split], precision="fp32")
        for key in ("f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss", "loss"):
            assert scores[key] == pytest.approx(result.metrics[split][key], abs=1e-6), (split, key)
        for label, counts in result.metrics[split]["per_label"].items():
            assert scores["per_label"][label] == pytest.approx(counts, abs=1e-6), (split, label)


def test_the_saved_thresholds_are_the_saved_model_s_best_on_validation(multi_label_run):
    """What metrics.json and config.json keep is each label's F1-best threshold on the saved model's validation
    probabilities (computed here with transformers alone, a text at a time in fp32: no padding, where training's
    pass had padded batches, so the thresholds to 1e-5)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunecard.metrics import tune_thresholds

    result, paths = multi_label_run
    records = [json.loads(line) for line in open(paths["validation"], encoding="utf-8")]
    tokenizer = AutoTokenizer.from_pretrained(result.output)
    model = AutoModelForSequenceClassification.from_pretrained(result.output).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert labels == result.metrics["labels"]
    with torch.no_grad():
        probabilities = [torch.sigmoid(model(**tokenizer(r["text"], return_tensors="pt")).logits[0]).tolist()
                         for r in records]
    gold = [[float(label in r["labels"]) for label in labels] for r in records]
    for label, entry in zip(labels, tune_thresholds(probabilities, gold)):
        assert result.metrics["thresholds"][label]["threshold"] == pytest.approx(entry["threshold"], abs=1e-5)
        assert result.metrics["thresholds"][label]["f1"] == pytest.approx(entry["f1"], abs=1e-9)


def test_scores_at_tuned_thresholds_from_the_tuning_pass_are_a_second_pass_s(no_dropout_bert):
    """`Evaluation.rescored`: the tuning pass's kept probabilities, decided at other thresholds and scored batch
    by batch in the pass's order, give exactly what a second fp32 pass of the model at those thresholds gives."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunecard.config import MULTI_LABEL
    from tunecard.data.example import TextExample
    from tunecard.encoding.batching import PadCollator
    from tunecard.encoding.encoder import Encoder
    from tunecard.training.evaluate import RECHECK_MARGIN, Evaluation, evaluate_features, tuned_thresholds

    id2label = {0: "film", 1: "music", 2: "sport"}
    tokenizer = AutoTokenizer.from_pretrained(no_dropout_bert)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        no_dropout_bert, num_labels=3, problem_type="multi_label_classification", id2label=id2label)
    records = _records(40, 5)
    examples = [TextExample(text=r["text"], label=None, labels=r["labels"]) for r in records]
    features = Encoder(tokenizer, {v: k for k, v in id2label.items()}, 64).encode_texts(examples)
    collator = PadCollator(tokenizer.pad_token_id)
    tuning = Evaluation(MULTI_LABEL, id2label, keep_probabilities=True)
    tuning.add(model, features, examples, collator=collator, batch_size=8)  # 5 length-sorted batches
    thresholds = [entry["threshold"] for entry in tuned_thresholds(tuning).values()]
    assert thresholds != [0.5] * 3
    second = evaluate_features(model, features, examples, task=MULTI_LABEL, id2label=id2label, collator=collator,
                               batch_size=8, recheck_margin=RECHECK_MARGIN, thresholds=thresholds)
    assert tuning.rescored(thresholds) == second  # bit for bit, every key
    assert tuning.rescored([0.5] * 3) == tuning.result() != second  # the tuned thresholds change decisions
    with pytest.raises(ValueError):
        Evaluation(MULTI_LABEL, id2label).rescored(thresholds)


def test_predict_and_serve_apply_saved_thresholds(tiny_bert_cased, tmp_path):
    """Thresholds written into config.json decide which labels come back, in predict and over HTTP."""
    from starlette.testclient import TestClient

    from tunecard.inference.predictor import load
    from tunecard.serve.app import create_app

    folder = saved_classifier(tiny_bert_cased, tmp_path / "model", ner=False, labels=["a", "b", "c"])
    settings = json.loads((folder / "config.json").read_text())
    settings["problem_type"] = "multi_label_classification"
    (folder / "config.json").write_text(json.dumps(settings))
    texts = ["one text", "another, longer text with more words", "a third"]
    probabilities = [p["probabilities"] for p in load(folder, precision="fp32").predict(texts)]
    # a threshold between each label's lowest and highest probability over the texts: some in, some out
    thresholds = {label: (min(p[label] for p in probabilities) + max(p[label] for p in probabilities)) / 2
                  for label in "abc"}
    settings["tunecard"] = {"thresholds": thresholds}
    (folder / "config.json").write_text(json.dumps(settings))
    predictor = load(folder, precision="fp32")
    assert predictor.task == "multi-label-classification"
    answers = predictor.predict(texts)
    for answer, p in zip(answers, probabilities):
        assert {entry["label"] for entry in answer["labels"]} == {label for label in "abc"
                                                                  if p[label] >= thresholds[label]}
        assert all(entry["score"] == p[entry["label"]] for entry in answer["labels"])
    assert any(answer["labels"] for answer in answers) and any(len(a["labels"]) < 3 for a in answers)
    with TestClient(create_app(predictor, folder)) as client:
        served = client.post("/predict", json={"texts": texts}).json()["predictions"]
        metadata = client.get("/metadata").json()
    assert [s["prediction"] for s in served] == answers
    assert metadata["task"] == "multi-label-classification" and metadata["thresholds"] == pytest.approx(thresholds)


def test_packed_batches_carry_float_targets_and_give_padding_s_loss(no_dropout_bert):
    """The speed layer's packed text-classification batches: one row of float targets per item, and the model's
    BCE the same as on padded batches."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunecard.data.example import TextExample
    from tunecard.encoding.batching import PadCollator
    from tunecard.encoding.encoder import Encoder
    from tunecard.speed.packing import choose_collator, read_first_tokens

    tokenizer = AutoTokenizer.from_pretrained(no_dropout_bert)
    model = AutoModelForSequenceClassification.from_pretrained(
        no_dropout_bert, num_labels=3, problem_type="multi_label_classification")
    examples = [TextExample(text=r["text"], label=None, labels=r["labels"]) for r in _records(8, 3)]
    features = Encoder(tokenizer, {"film": 0, "music": 1, "sport": 2}, 64).encode_texts(examples)
    padded = PadCollator(tokenizer.pad_token_id)
    collator, layout, point = choose_collator(model, features, padded, tokenizer.pad_token_id, padding_free=True,
                                              classify=True)
    assert layout in ("packed", "packed, padding-free")
    items = [f.model_inputs() for f in features]
    packed_batch, padded_batch = collator(items), padded(items)
    assert packed_batch["labels"].dtype == torch.float32 and packed_batch["labels"].shape == (8, 3)
    assert torch.equal(packed_batch["labels"], padded_batch["labels"])
    model.eval()
    with torch.no_grad():
        reference = model(**padded_batch).loss
        read_first_tokens(model, point)
        with collator.passes(model):  # padding-free batches run under the speed layer's attention
            packed_loss = model(**packed_batch).loss
    assert packed_loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_positive_label_is_refused_for_multi_label(tiny_bert_cased, tmp_path):
    from tunecard.pipeline import train

    path = _write_jsonl(tmp_path / "t.jsonl", _records(8, 0))
    config = build_config(None, dict(task="multi-label", model=str(tiny_bert_cased), train=str(path),
                                     output=str(tmp_path / "run"), positive_label="film", max_steps=1))
    with pytest.raises(ConfigError) as error:
        train(config, progress=False)
    assert error.value.code == "E208"


def test_the_command_line_trains_predicts_and_evaluates_a_label_separated_csv(tiny_bert_cased, tmp_path):
    """--label-separator makes a CSV multi-label in train, data stats and evaluate; --class-weights balanced
    reaches the run; predict prints the Predictor's answer (the labels at the saved thresholds, tested above)."""
    from typer.testing import CliRunner

    from tunecard.cli import app
    from tunecard.inference.predictor import load

    runner = CliRunner()
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "labels"])
        writer.writerows([r["text"], "|".join(r["labels"])] for r in _records(24, 5))
    stats = runner.invoke(app, ["data", "stats", str(path), "--label-separator", "|", "--json"])
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["task"] == MULTI_LABEL_TASK
    output = tmp_path / "run"
    trained = runner.invoke(app, ["train", "--task", "text-classification", "--model", str(tiny_bert_cased),
                                  "--train", str(path), "--validation", str(path), "--output", str(output),
                                  "--label-separator", "|", "--class-weights", "balanced", "--precision", "fp32",
                                  "--quiet", "--set", "max_steps=2", "--set", "save_strategy=no"])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["task"] == MULTI_LABEL_TASK and metrics["class_weights"]["setting"] == "balanced"
    predicted = runner.invoke(app, ["predict", str(output), "--text", "goal match song", "--precision", "fp32"])
    assert predicted.exit_code == 0, predicted.output
    line = json.loads(predicted.stdout.strip().splitlines()[-1])
    answer = line["prediction"]
    assert line["text"] == "goal match song"
    assert answer == load(output, precision="fp32").predict(["goal match song"])[0]  # thresholds applied (above)
    assert set(json.loads((output / "config.json").read_text())["tunecard"]["thresholds"]) == {"film", "music",
                                                                                                "sport"}
    scored = runner.invoke(app, ["evaluate", str(output), "--data", str(path), "--label-separator", "|", "--json",
                                 "--precision", "fp32"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["samples_f1"] == pytest.approx(metrics["validation"]["samples_f1"], abs=1e-6)
