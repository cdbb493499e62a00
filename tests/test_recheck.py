"""bf16 prediction with close calls predicted again in fp32 (`Predictor(recheck_margin=...)`)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import SAMPLE_TEXTS, WNUT_SAMPLE, saved_classifier
from typer.testing import CliRunner

from tunecard.cli import RECHECK_HELP, app
from tunecard.data import read_corpus
from tunecard.encoding.batching import forward_batches
from tunecard.encoding.encoder import Feature, split_words
from tunecard.errors import ModelError
from tunecard.inference.predictor import MAX_TIED_CHOICES, Predictor, evaluate_folder
from tunecard.metrics import score_entities
from tunecard.training.evaluate import RECHECK_MARGIN

runner = CliRunner()


@pytest.fixture(scope="module")
def ner_folder(tiny_bert_cased, tmp_path_factory):
    labels = sorted({tag for example in read_corpus(WNUT_SAMPLE / "train.conll").examples for tag in example.tags})
    return saved_classifier(tiny_bert_cased, tmp_path_factory.mktemp("ner"), True, labels)


@pytest.fixture(scope="module")
def cls_folder(tiny_bert_cased, tmp_path_factory):
    return saved_classifier(tiny_bert_cased, tmp_path_factory.mktemp("cls"), False, ["negative", "neutral", "positive"])


@pytest.fixture(scope="module")
def texts():
    sentences = [" ".join(example.tokens) for example in read_corpus(WNUT_SAMPLE / "train.conll").examples[:80]]
    return [*SAMPLE_TEXTS, *sentences]


def _words(predictor, texts):
    return [[w for w, _, _ in ws] for ws in split_words(predictor.encoder.backend, texts)]


def _smallest_gaps(predictor, features) -> list[float]:
    """Per feature, the smallest gap between its two best logits over the words it owns (NER)."""
    gaps = [float("inf")] * len(features)
    for indices, logits, _ in forward_batches(predictor.model, features, predictor.collator, predictor.batch_size,
                                              with_labels=False, packed=predictor.packed):
        best_two = logits.topk(2, dim=-1).values
        gap = best_two[..., 0] - best_two[..., 1]
        for row, index in enumerate(indices):
            for position, _ in features[index].word_positions:
                gaps[index] = min(gaps[index], gap[row, position].item())
    return gaps


def test_a_margin_wider_than_every_gap_gives_fp32s_predictions(ner_folder, texts):
    fp32 = Predictor(ner_folder, precision="fp32")
    everything = Predictor(ner_folder, precision="bf16", recheck_margin=1e9)
    assert {p.dtype for p in everything.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in everything.fp32_model.parameters()} == {torch.float32}
    assert everything.predict(texts) == fp32.predict(texts)  # labels, offsets and scores
    features = everything.encode(texts)
    assert everything.rechecked == sum(1 for f in features if f.word_positions)  # windows with words, not texts


def test_exactly_the_close_calls_are_predicted_again(ner_folder, texts):
    fp32 = Predictor(ner_folder, precision="fp32")
    bf16 = Predictor(ner_folder, precision="bf16", recheck_margin=0)
    assert bf16.fp32_model is None
    words = _words(fp32, texts)
    gaps = _smallest_gaps(bf16, bf16._encode_words(words))
    margin = sorted(g for g in gaps if g != float("inf"))[len(gaps) // 3]  # a third of the sentences are close calls
    close = {i for i, gap in enumerate(gaps) if gap < margin}  # one feature per sentence: none is windowed
    assert 0 < len(close) < len(words)
    rechecking = Predictor(ner_folder, precision="bf16", recheck_margin=margin)
    tags = rechecking.predict_words(words)
    assert rechecking.rechecked == len(close)
    expected_fp32, expected_bf16 = fp32.predict_words(words), bf16.predict_words(words)
    for index, sentence in enumerate(tags):
        expected = expected_fp32 if index in close else expected_bf16
        assert [tag for tag, _ in sentence] == [tag for tag, _ in expected[index]], index
        assert [p for _, p in sentence] == pytest.approx([p for _, p in expected[index]], abs=1e-5)


def _logits_for(predictor, tied_words: dict[int, list[str]], best: list[str]) -> torch.Tensor:
    """Logits [1 + words, labels] (position 0 is [CLS]) whose best label per word is `best`, with the labels in
    `tied_words[word]` 0.05 below it and every other label far below."""
    label2id = {label: i for i, label in predictor.id2label.items()}
    logits = torch.full((1 + len(best), len(label2id)), -5.0)
    for word, tag in enumerate(best):
        logits[1 + word, label2id[tag]] = 3.0
        for tied in tied_words.get(word, []):
            logits[1 + word, label2id[tied]] = 2.95
    return logits


def test_a_close_call_counts_for_predict_only_if_it_can_change_the_entities(ner_folder):
    predictor = Predictor(ner_folder, precision="bf16")
    words = [["Taylor", "sings", "in", "New", "York"]]
    may_change = predictor._entities_may_change(words)
    feature = Feature({"input_ids": [0] * 7}, [], 0, [(1 + i, i) for i in range(5)])
    best = ["B-person", "O", "O", "B-location", "I-location"]
    assert not may_change(feature, _logits_for(predictor, {}, best), 0.15)  # no tie at all
    # B- or I- for a word after O starts the same entity either way
    assert not may_change(feature, _logits_for(predictor, {0: ["I-person"], 3: ["I-location"]}, best), 0.15)
    assert may_change(feature, _logits_for(predictor, {4: ["B-location"]}, best), 0.15)  # one entity or two
    assert may_change(feature, _logits_for(predictor, {1: ["I-person"]}, best), 0.15)  # a longer person
    assert may_change(feature, _logits_for(predictor, {3: ["B-person"]}, best), 0.15)  # another label
    assert not may_change(feature, _logits_for(predictor, {3: ["B-person"]}, best), 0.01)  # outside the margin
    # the window of a longer sentence: the words beside its edges are in another window
    window = Feature({"input_ids": [0] * 7}, [], 0, [(1 + i, 10 + i) for i in range(5)])
    long_words = [["w"] * 30]
    assert predictor._entities_may_change(long_words)(window, _logits_for(predictor, {}, best), 0.15)
    # too many combinations of tied labels to try: predicted again
    tags = ["O"] * 5
    labels = sorted(set(predictor.id2label.values()))
    every = {word: [t for t in labels if t != "O"] for word in range(3)}
    assert len(labels) ** 3 > MAX_TIED_CHOICES
    assert may_change(feature, _logits_for(predictor, every, tags), 0.15)


def test_predict_gives_the_entities_of_rechecking_every_close_call(ner_folder, texts):
    bf16 = Predictor(ner_folder, precision="bf16", recheck_margin=0)
    gaps = _smallest_gaps(bf16, bf16._encode_words(_words(bf16, texts)))
    margin = sorted(g for g in gaps if g != float("inf"))[len(gaps) // 2]  # half of the sentences are close calls
    every = Predictor(ner_folder, precision="bf16", recheck_margin=margin)
    every._entities_may_change = lambda words: None  # tag-level rechecking, as predict_words does
    entity_level = Predictor(ner_folder, precision="bf16", recheck_margin=margin)

    def spans(results):
        return [[(e["label"], e["start"], e["end"]) for e in entities] for entities in results]

    assert spans(entity_level.predict(texts)) == spans(every.predict(texts))
    assert 0 < entity_level.rechecked <= every.rechecked  # the tiny random model: its ties mostly matter
    assert every.rechecked == sum(1 for gap in gaps if gap < margin)


def test_evaluate_scores_what_predict_predicts(ner_folder):
    data = WNUT_SAMPLE / "train.conll"
    examples = read_corpus(data).examples
    bf16 = Predictor(ner_folder, precision="bf16", recheck_margin=0)
    gaps = _smallest_gaps(bf16, bf16._encode_words([e.tokens for e in examples]))
    margin = sorted(g for g in gaps if g != float("inf"))[len(gaps) // 3]
    results = {}
    for name, options in {"bf16": dict(recheck_margin=0), "rechecked": dict(recheck_margin=margin),
                          "everything": dict(recheck_margin=1e9)}.items():
        predictor = Predictor(ner_folder, precision="bf16", **options)
        tags = [[tag for tag, _ in words] for words in predictor.predict_words([e.tokens for e in examples])]
        predicted = score_entities([e.tags for e in examples], tags)
        results[name] = evaluate_folder(ner_folder, data, precision="bf16", **options)
        for key in ("f1", "precision", "recall", "accuracy", "predicted_entities"):
            assert results[name][key] == predicted[key], (name, key)
    fp32 = evaluate_folder(ner_folder, data, precision="fp32")
    assert results["everything"]["f1"] == fp32["f1"]
    assert results["everything"]["loss"] == pytest.approx(fp32["loss"], rel=1e-5)
    assert results["rechecked"]["loss"] != results["bf16"]["loss"]  # the rechecked sentences' loss is fp32's


def test_rechecking_finds_fp32s_label_for_close_texts(cls_folder, texts):
    fp32 = Predictor(cls_folder, precision="fp32")
    everything = Predictor(cls_folder, precision="bf16", recheck_margin=1e9)
    assert everything.predict(texts) == fp32.predict(texts)
    assert everything.rechecked == len(texts)
    assert Predictor(cls_folder, precision="bf16", recheck_margin=0).predict(texts)[0]["label"]


def test_the_default_applies_to_bf16_only(ner_folder):
    assert Predictor(ner_folder, precision="bf16").recheck_margin == RECHECK_MARGIN
    fp32 = Predictor(ner_folder, precision="fp32")
    assert fp32.recheck_margin == 0 and fp32.fp32_model is None


@pytest.mark.parametrize("options", [dict(recheck_margin=-0.1), dict(recheck_margin=float("nan")),
                                     dict(backend="onnx", recheck_margin=0.2)])
def test_impossible_recheck_options_are_refused(ner_folder, options):
    with pytest.raises(ModelError) as error:
        Predictor(ner_folder, **options)
    assert error.value.code == "E324"


def test_the_cli_takes_the_margin(ner_folder):
    assert str(RECHECK_MARGIN) in RECHECK_HELP
    outputs = {}
    for margin in ("0", "1e9"):
        result = runner.invoke(app, ["predict", str(ner_folder), "--precision", "bf16", "--recheck-margin", margin,
                                     "--text", "Taylor Swift sings in Seattle ."])
        assert result.exit_code == 0, result.output
        outputs[margin] = result.stdout
    fp32 = runner.invoke(app, ["predict", str(ner_folder), "--precision", "fp32", "--text",
                               "Taylor Swift sings in Seattle ."])
    assert outputs["1e9"] == fp32.stdout
    refused = runner.invoke(app, ["predict", str(ner_folder), "--recheck-margin", "-1", "--text", "x"])
    assert refused.exit_code != 0 and isinstance(refused.exception, ModelError) and refused.exception.code == "E324"
    scores = {}
    for margin in ("0", "1e9"):
        result = runner.invoke(app, ["evaluate", str(ner_folder), "--data", str(WNUT_SAMPLE / "dev.conll"), "--json",
                                     "--precision", "bf16", "--recheck-margin", margin])
        assert result.exit_code == 0, result.output
        scores[margin] = json.loads(result.stdout)["loss"]
    fp32 = json.loads(runner.invoke(app, ["evaluate", str(ner_folder), "--data", str(WNUT_SAMPLE / "dev.conll"),
                                          "--json", "--precision", "fp32"]).stdout)["loss"]
    assert scores["1e9"] == pytest.approx(fp32, rel=1e-5) and scores["0"] != scores["1e9"]


def test_an_fp32_pass_in_mixed_precision_training_runs_in_fp32(ner_folder, texts):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from transformers import AutoModelForTokenClassification

    plain = AutoModelForTokenClassification.from_pretrained(ner_folder).eval()
    AcceleratorState._reset_state(reset_partial_state=True)  # an earlier test's Trainer may have set fp32
    try:
        prepared = Accelerator(mixed_precision="bf16", cpu=True).prepare_model(
            AutoModelForTokenClassification.from_pretrained(ner_folder))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    wrapped = prepared.forward
    predictor = Predictor(ner_folder, precision="fp32", speed="off")
    features = predictor.encode(texts)

    def logits(model, bf16):
        return {tuple(i): l for i, l, _ in forward_batches(model, features, predictor.collator, 8, bf16=bf16,
                                                           with_labels=False)}

    expected, found = logits(plain, False), logits(prepared, False)
    assert all(torch.equal(expected[key], found[key]) for key in expected)
    assert prepared.forward is wrapped  # training goes on under autocast
    autocast = logits(prepared, True)
    assert any(not torch.equal(expected[key], autocast[key]) for key in expected)


def test_training_evaluations_in_bf16_score_fp32s_predictions(tiny_bert_cased, tmp_path):
    from conftest import quick_ner_values

    from tunecard.config import build_config
    from tunecard.pipeline import train

    values = quick_ner_values(tiny_bert_cased, tmp_path, validation=str(WNUT_SAMPLE / "dev.conll"))
    values.update(precision="bf16", learning_rate=1e-3)
    result = train(build_config(None, values), progress=False)
    assert "close call" in result.metrics["training"]["evaluation_precision"]
    fp32 = evaluate_folder(result.output, WNUT_SAMPLE / "dev.conll", precision="fp32")
    recorded = result.metrics["validation"]
    assert (recorded["f1"], recorded["accuracy"]) == (fp32["f1"], fp32["accuracy"])
