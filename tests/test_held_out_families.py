"""Families the code was not written against (tests/families.py, HELD_OUT), as tiny random models built offline:
what the code must find out from the model itself, not from a list of model types.

- MPNet counts positions after its padding index, as RoBERTa does: the packed rows' position ids start there
  (read from its position embedding), and it packs.
- ConvBERT's convolution mixes neighbouring positions: two texts in one row change each other, so the packing check
  refuses it for NER and text classification, even where a freshly initialised head's small logits shrink the
  difference below an absolute bound.
- ConvBERT and Funnel compute over padding (the convolution; Funnel's pooling and relative positions): the
  predictor runs each text alone, unpadded, so `predict` gives what pipeline gives for that text.
- Longformer divides its query projection in place: the fused projections allow that, and `speed: auto` trains
  it to `speed: off`'s losses.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import WNUT_SAMPLE
from test_families import LOSS_TOLERANCE, RAW_TEXTS, family_folder  # noqa: F401 (the fixture)

from tunecard import environment
from tunecard.encoding.batching import PadCollator
from tunecard.encoding.encoder import Encoder
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.speed import packing

NER_LABELS = {0: "O", 1: "B-X", 2: "I-X"}


def _features(folder, task: str):
    from tunecard.data import read_corpus
    from tunecard.data.example import TextExample

    tokenizer = load_tokenizer(str(folder))
    examples = read_corpus(WNUT_SAMPLE / "train.conll", task="ner").examples[:16]
    if task == "ner":
        tags = sorted({tag for example in examples for tag in example.tags})
        label2id = {tag: i for i, tag in enumerate(tags)}
        features = Encoder(tokenizer, label2id, 128).encode_tokens(examples)
    else:
        label2id = {"a": 0, "b": 1, "c": 2}
        texts = [TextExample(text=" ".join(example.tokens), label="abc"[i % 3]) for i, example in enumerate(examples)]
        features = Encoder(tokenizer, label2id, 128).encode_texts(texts)
    kind = "token-classification" if task == "ner" else "text-classification"
    model = load_model(str(folder), kind, {i: label for label, i in label2id.items()})
    return tokenizer, model, features


def test_positions_after_the_padding_index_are_read_from_the_model(family_folder):
    tokenizer, model, features = _features(family_folder("mpnet"), "ner")
    assert environment.position_offset(model) == 2  # its position embedding's padding row is 1
    tokenizer.model_max_length = int(1e30)  # no limit from the tokenizer: the model's table decides
    assert environment.model_max_length(tokenizer, model) == model.config.max_position_embeddings - 2
    collator, layout, _ = packing.choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                                  tokenizer.pad_token_id)
    assert layout == packing.PACKED
    rows, _ = collator.pack([feature.model_inputs() for feature in features[:2]])
    length = len(features[0])
    assert rows["position_ids"][0, :length].tolist() == list(range(2, 2 + length))


@pytest.mark.parametrize("task", ["ner", "text"])
def test_a_model_that_mixes_neighbouring_positions_does_not_pack(family_folder, task):
    tokenizer, model, features = _features(family_folder("convbert"), task)
    _, layout, _ = packing.choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                           tokenizer.pad_token_id, padding_free=True, classify=task == "text")
    assert layout == packing.REFUSED


def _token_classifier(family_folder, family: str, tmp_path):
    """A saved token classifier of the family (its random head), as a fine-tuned folder would hold it."""
    from transformers import AutoModelForTokenClassification

    folder = family_folder(family)
    torch.manual_seed(1)
    model = AutoModelForTokenClassification.from_pretrained(folder, id2label=NER_LABELS,
                                                            label2id={v: k for k, v in NER_LABELS.items()})
    model.save_pretrained(tmp_path / family)
    load_tokenizer(str(folder)).save_pretrained(tmp_path / family)
    return tmp_path / family


@pytest.mark.parametrize("family", ["convbert", "funnel", "bert"])
def test_a_model_that_computes_over_padding_predicts_each_text_alone(family_folder, family, tmp_path):
    from transformers import pipeline

    from tunecard.inference.predictor import Predictor

    folder = _token_classifier(family_folder, family, tmp_path)
    predictor = Predictor(folder, precision="fp32")
    assert predictor.one_text_per_pass is (family != "bert")  # BERT masks padding out: batches as usual
    features, words = predictor.encoder.encode_raw_texts(RAW_TEXTS)
    tags = predictor._tag_words([[w for w, _, _ in ws] for ws in words], None, features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_token = pipeline("token-classification", model=str(folder), device="cpu", aggregation_strategy="none",
                            ignore_labels=[])
    for feature, text, text_tags in zip(features, RAW_TEXTS, tags):
        labels = {token["index"]: token["entity"] for token in by_token(text)}
        assert [text_tags[word][0] for _, word in feature.word_positions] == [
            labels[position] for position, _ in feature.word_positions], text


@pytest.mark.slow
def test_longformer_trains_with_the_speed_layer_to_the_same_losses(family_folder, tmp_path):
    from tunecard.config import build_config
    from tunecard.pipeline import train

    runs = {}
    for speed in ("auto", "off"):
        values = dict(task="ner", model=str(family_folder("longformer")), train=str(WNUT_SAMPLE / "train.conll"),
                      validation=str(WNUT_SAMPLE / "dev.conll"), output=str(tmp_path / speed), num_epochs=1,
                      max_train_examples=48, max_eval_examples=16, train_batch_size=16, learning_rate=1e-3,
                      precision="fp32", save_strategy="no", speed=speed)
        runs[speed] = train(build_config(None, values), progress=False)
    record = runs["auto"].metrics["speed"]
    assert record["fallback"] is None and record["levers"]["fuse_qkv"]["used"]
    losses = {speed: [step["loss"] for step in run.history["steps"]] for speed, run in runs.items()}
    assert len(losses["auto"]) == 3
    assert losses["auto"] == pytest.approx(losses["off"], abs=LOSS_TOLERANCE)


@pytest.mark.parametrize("family", ["funnel", "bert"])
def test_a_run_evaluates_a_model_that_computes_over_padding_as_tunecard_evaluate_does(family_folder, family, tmp_path):
    """The card's scores are `tunecard evaluate`'s: a Funnel run's evaluations pass each text alone (padded
    batches moved its logits, so the loss differed); BERT masks padding out and keeps its batches."""
    from tunecard.config import build_config
    from tunecard.inference.predictor import evaluate_folder
    from tunecard.pipeline import train

    folder = family_folder(family)
    values = dict(task="ner", model=str(folder), train=str(WNUT_SAMPLE / "train.conll"),
                  validation=str(WNUT_SAMPLE / "dev.conll"), output=str(tmp_path / "run"), num_epochs=1,
                  max_train_examples=32, train_batch_size=16, learning_rate=1e-3, precision="fp32",
                  save_strategy="no")
    result = train(build_config(None, values), progress=False)
    alone = family != "bert"
    assert result.metrics["training"]["evaluation_batches"].startswith("one text" if alone else "length-sorted")
    evaluated = evaluate_folder(result.output, WNUT_SAMPLE / "dev.conll", precision="fp32")
    recorded = result.metrics["validation"]
    # fp32 both ways: only the order of summing the loss over texts may differ
    assert evaluated["loss"] == pytest.approx(recorded["loss"], rel=1e-5)
    # each text alone both ways is the same arithmetic, so the same tags; BERT's batches may be composed otherwise
    # by the run's and the predictor's plans, where a near-tied token can take the other tag on another CPU's kernels
    assert evaluated["f1"] == pytest.approx(recorded["f1"], abs=1e-12 if alone else 0.02)
