"""NER decoding: `argmax` (each word's best tag, as transformers.pipeline) or `constrained` (the best tag sequence
IOB2 allows, by Viterbi), the same in training's evaluations, `evaluate`, `predict` and the card."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import WNUT_SAMPLE, quick_ner_values, saved_classifier
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.config import build_config
from tunecard.data import read_corpus
from tunecard.errors import ConfigError, ModelError
from tunecard.metrics import EntityScorer, score_entities
from tunecard.metrics.decoding import TagDecoder, iob2_rules
from tunecard.metrics.entities import breaks_iob2
from tunecard.training.evaluate import decoded_ids

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
ID2LABEL = dict(enumerate(LABELS))


def _valid(tags: list[str], continues: bool = False) -> bool:
    for i, tag in enumerate(tags):
        if not tag.startswith("I-"):
            continue
        if i == 0 and not continues:
            return False
        if i > 0 and tags[i - 1][2:] != tag[2:]:  # O, or another type, before an I-X
            return False
    return True


def _score(logp: torch.Tensor, ids: list[int]) -> float:
    return sum(float(logp[t, label]) for t, label in enumerate(ids))


_sentences = st.lists(st.tuples(st.integers(min_value=0, max_value=5), st.booleans()), min_size=1, max_size=4)


@given(_sentences, st.integers(min_value=0, max_value=2**31 - 1))
@settings(max_examples=150, deadline=None)
def test_constrained_decoding_is_the_best_valid_sequence(sentences, seed):
    """Against brute force over every tag sequence: the answer is valid and no valid sequence scores higher.
    Tolerance 1e-4 on the summed log-probabilities: Viterbi adds them in another order than the sum here."""
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.randn(length, len(LABELS), generator=generator) * 3 for length, _ in sentences]
    continues = [flag for _, flag in sentences]
    decoded = TagDecoder(ID2LABEL).decode(scores, continues)
    for logits, flag, ids in zip(scores, continues, decoded):
        assert len(ids) == len(logits)
        if not len(logits):
            continue
        tags = [LABELS[i] for i in ids]
        assert _valid(tags, flag)
        logp = torch.log_softmax(logits, dim=-1)
        best = max(_score(logp, list(seq)) for seq in itertools.product(range(len(LABELS)), repeat=len(logits))
                   if _valid([LABELS[i] for i in seq], flag))
        assert _score(logp, ids) == pytest.approx(best, abs=1e-4)
        argmax = logits.argmax(dim=-1).tolist()
        if _valid([LABELS[i] for i in argmax], flag):  # nothing to repair: the words' own best tags
            assert ids == argmax


@given(_sentences, st.integers(min_value=0, max_value=2**31 - 1))
@settings(max_examples=50, deadline=None)
def test_a_sentence_decodes_the_same_alone_and_in_a_batch(sentences, seed):
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.randn(length, len(LABELS), generator=generator) * 3 for length, _ in sentences]
    continues = [flag for _, flag in sentences]
    decoder = TagDecoder(ID2LABEL)
    together = decoder.decode(scores, continues)
    assert together == [decoder.decode([s], [c])[0] for s, c in zip(scores, continues)]


@given(st.lists(st.sampled_from(LABELS), max_size=8))
@settings(max_examples=300, deadline=None)
def test_the_scorer_counts_the_sequences_constrained_decoding_forbids(tags):
    """`breaks_iob2` (the scorer's `invalid_sentences`, the doctor's D106) is exactly the decoder's rule."""
    assert breaks_iob2(tags) == (not _valid(tags))
    scorer = EntityScorer()
    scorer.update(["O"] * len(tags), tags)
    assert scorer.result()["invalid_sentences"] == int(not _valid(tags))


def test_the_rules_are_iob2s_and_other_schemes_are_refused():
    first, transition = iob2_rules(LABELS)
    assert first.tolist() == [0.0, 0.0, float("-inf"), 0.0, float("-inf")]
    assert transition[LABELS.index("O"), LABELS.index("I-LOC")] == float("-inf")
    assert transition[LABELS.index("B-PER"), LABELS.index("I-LOC")] == float("-inf")
    assert transition[LABELS.index("B-LOC"), LABELS.index("I-LOC")] == 0.0
    assert transition[LABELS.index("I-LOC"), LABELS.index("I-LOC")] == 0.0
    assert transition[LABELS.index("I-PER"), LABELS.index("B-LOC")] == 0.0
    with pytest.raises(ValueError, match="E-LOC"):
        iob2_rules(["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC"])


def test_decoded_ids_follow_each_windows_words_and_a_later_window_may_open_inside_an_entity():
    """Positions are decoded in word order whatever order word_positions lists them in; a window that starts
    after the sentence's first word (a long sentence's second window) may open with I-X."""
    logits = torch.full((2, 5, len(LABELS)), -5.0)
    for row in (0, 1):  # position 1: I-PER first (B-PER a close second); position 2: I-PER
        logits[row, 1, LABELS.index("I-PER")] = 2.0
        logits[row, 1, LABELS.index("B-PER")] = 1.5
        logits[row, 2, LABELS.index("I-PER")] = 2.0
    first = SimpleNamespace(word_positions=[(2, 1), (1, 0)])  # words 0 and 1: a sentence's start
    later = SimpleNamespace(word_positions=[(1, 7), (2, 8)])  # words 7 and 8: a later window
    found = decoded_ids(TagDecoder(ID2LABEL), logits, [first, later])
    assert found[0] == {1: LABELS.index("B-PER"), 2: LABELS.index("I-PER")}  # repaired: an entity opens with B
    assert found[1] == {1: LABELS.index("I-PER"), 2: LABELS.index("I-PER")}  # continues the window before


def test_decoding_is_checked_in_the_config(tmp_path):
    base = dict(task="ner", train="t.conll", output=str(tmp_path / "out"))
    assert build_config(None, base).decoding == "argmax"
    assert build_config(None, {**base, "decoding": "constrained"}).decoding == "constrained"
    with pytest.raises(ConfigError, match="applies to NER"):
        build_config(None, {**base, "task": "text-classification", "decoding": "constrained"})
    with pytest.raises(ConfigError, match="decoding"):
        build_config(None, {**base, "decoding": "viterbi"})


# ---- a model whose words' best tags often break IOB2 ---------------------------------------------------------

def _wnut_labels() -> list[str]:
    types = sorted({tag[2:] for ex in read_corpus(WNUT_SAMPLE / "train.conll").examples for tag in ex.tags
                    if tag != "O"})
    return ["O", *[f"{prefix}-{t}" for t in types for prefix in "BI"]]


@pytest.fixture(scope="module")
def spread_tagger(tiny_bert_cased, tmp_path_factory):
    """An untrained tagger with a widened head: its words' best tags are all over the place."""
    return saved_classifier(tiny_bert_cased, tmp_path_factory.mktemp("spread-tagger"), True, _wnut_labels())


def test_predict_and_evaluate_decode_alike_and_constrained_tags_are_always_valid(spread_tagger):
    from tunecard.inference.predictor import Predictor, evaluate_folder

    dev = read_corpus(WNUT_SAMPLE / "dev.conll").examples
    words = [ex.tokens for ex in dev]
    options = dict(precision="fp32", speed="off")
    argmax = [[tag for tag, _ in tags] for tags in Predictor(spread_tagger, **options).predict_words(words)]
    assert sum(not _valid(tags) for tags in argmax) > len(dev) // 4  # the test has something to repair
    constrained = Predictor(spread_tagger, decoding="constrained", **options)
    tagged = constrained.predict_words(words)
    assert all(_valid([tag for tag, _ in tags]) for tags in tagged)
    for tags in tagged:  # each word's score is the probability of the tag chosen, at most its best
        assert all(0.0 < p <= 1.0 for _, p in tags)
    for decoding, predicted in (("argmax", argmax), ("constrained", [[t for t, _ in tags] for tags in tagged])):
        expected = score_entities([ex.tags for ex in dev], predicted)["f1"]
        result = evaluate_folder(spread_tagger, WNUT_SAMPLE / "dev.conll", decoding=decoding, **options)
        assert result["f1"] == pytest.approx(expected, abs=1e-12)  # the same tags, scored by the same scorer


def test_a_model_that_is_not_iob2_refuses_constrained_decoding(tiny_bert_cased, tmp_path):
    from tunecard.inference.predictor import Predictor

    folder = saved_classifier(tiny_bert_cased, tmp_path / "bioes", True, ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC"])
    assert Predictor(folder, precision="fp32").decoding == "argmax"  # argmax decodes any label set
    with pytest.raises(ModelError) as error:
        Predictor(folder, precision="fp32", decoding="constrained")
    assert error.value.code == "E324" and "IOB2" in str(error.value)
    with pytest.raises(ModelError, match="argmax or constrained"):
        Predictor(folder, precision="fp32", decoding="viterbi")
    classifier = saved_classifier(tiny_bert_cased, tmp_path / "classifier", False, ["neg", "pos"])
    with pytest.raises(ModelError, match="chooses NER tags"):
        Predictor(classifier, precision="fp32", decoding="constrained")
    assert Predictor(classifier, precision="fp32", decoding="argmax").decoding == "argmax"


def test_a_run_trained_with_constrained_decoding_scores_predicts_and_says_so(no_dropout_bert, tmp_path):
    from tunecard.inference.predictor import Predictor, evaluate_folder
    from tunecard.pipeline import train

    dev = WNUT_SAMPLE / "dev.conll"
    run = train(build_config(None, quick_ner_values(no_dropout_bert, tmp_path, validation=str(dev),
                                                    learning_rate=1e-3, decoding="constrained")), progress=False)
    saved = yaml.safe_load((run.output / "train_config.yaml").read_text(encoding="utf-8"))
    assert saved["decoding"] == "constrained"
    predictor = Predictor(run.output, precision="fp32", speed="off")
    assert predictor.decoding == "constrained"  # from the run, not asked for
    result = evaluate_folder(run.output, dev, precision="fp32", speed="off")
    assert result["f1"] == pytest.approx(run.metrics["validation"]["f1"], abs=1e-9)
    card = (run.output / "README.md").read_text(encoding="utf-8")
    assert "- decoding: constrained" in card and "**Decoding.**" in card
    output = CliRunner().invoke(app, ["evaluate", str(run.output), "--data", str(dev), "--json",
                                      "--precision", "fp32", "--decoding", "argmax"])
    assert output.exit_code == 0, output.output
    assert "f1" in json.loads(output.stdout[output.stdout.index("{"):])
