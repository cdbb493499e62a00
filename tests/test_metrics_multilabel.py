"""Multi-label metrics: the streaming scorer gives scikit-learn's numbers, thresholds are tuned per label, and the
baselines are what they say."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss

from tunecard.errors import ConfigError
from tunecard.metrics import (DEFAULT_THRESHOLD, MultiLabelScorer, decide, label_prior_baseline, label_set_baseline,
                              multilabel_scores, tune_thresholds)

LABELS = ["acting", "music", "plot", "visuals"]


def _sets(seed: int, n: int, share: float = 0.3) -> list[list[str]]:
    rng = random.Random(seed)
    return [[label for label in LABELS if rng.random() < share] for _ in range(n)]


def _close(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-12), path
    else:
        assert a == b, path


def _binary(sets):
    return np.array([[label in item for label in LABELS] for item in sets], dtype=int)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_scorer_equals_sklearn(seed):
    gold, pred = _sets(seed, 150), _sets(seed + 10, 150)
    pred[3], gold[3] = [], []  # an empty gold and predicted set: 0 in the samples averages (zero_division=0)
    expected = multilabel_scores(gold, pred, LABELS)
    scorer = MultiLabelScorer(LABELS)
    for start in range(0, len(gold), 13):  # in batches, as evaluation streams them
        scorer.update(gold[start:start + 13], pred[start:start + 13])
    _close(expected, scorer.result())


def test_scores_are_sklearns_own_numbers():
    gold, pred = _sets(5, 80), _sets(6, 80)
    result = multilabel_scores(gold, pred, LABELS)
    y_true, y_pred = _binary(gold), _binary(pred)
    assert result["f1"] == result["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="micro"))
    assert result["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert result["samples_f1"] == pytest.approx(f1_score(y_true, y_pred, average="samples", zero_division=0))
    assert result["subset_accuracy"] == result["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert result["hamming_loss"] == pytest.approx(hamming_loss(y_true, y_pred))
    assert result["average"] == "micro"


def test_per_label_counts_and_a_label_never_predicted():
    gold = [["acting"], ["acting", "music"], ["music"], []]
    pred = [["acting"], ["acting"], [], []]
    result = multilabel_scores(gold, pred, LABELS)
    assert result["per_label"]["acting"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2, "predicted": 2}
    assert result["per_label"]["music"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2, "predicted": 0}
    assert result["subset_accuracy"] == 0.5  # texts 1 and 4
    assert result["hamming_loss"] == 2 / 16
    assert result["empty_predictions"] == 2


def test_unknown_labels_and_lengths_are_coded_errors():
    with pytest.raises(ConfigError) as error:
        MultiLabelScorer(LABELS).update([["acting"]], [["dialogue"]])
    assert error.value.code == "E262" and "dialogue" in str(error.value)
    with pytest.raises(ConfigError) as error:
        multilabel_scores([["acting"]], [], LABELS)
    assert error.value.code == "E261"


def test_an_unknown_label_names_its_batch_and_leaves_the_counts_alone():
    scorer = MultiLabelScorer(LABELS)
    scorer.update([["acting"]], [["acting"]])
    before = scorer.result()
    with pytest.raises(ConfigError) as error:
        scorer.update([["music"], ["dialogue"]], [["music"], ["acting"]])  # the second example's gold is unknown
    assert error.value.code == "E262" and "batch 1: gold labels ['dialogue']" in error.value.message
    with pytest.raises(ConfigError) as error:
        scorer.update([["music"], []], [["music"], ["dialogue", "music"]])
    assert error.value.code == "E262" and "batch 1: predicted labels ['dialogue']" in error.value.message
    assert scorer.result() == before and scorer.batches == 1


def test_thresholds_maximise_each_labels_f1():
    rng = np.random.default_rng(0)
    probabilities = rng.random((60, 2))
    gold = np.zeros((60, 2), dtype=int)
    gold[:, 0] = probabilities[:, 0] + rng.normal(0, 0.2, 60) > 0.7  # label 0: positives score high
    tuned = tune_thresholds(probabilities, gold)
    assert tuned[1] == {"threshold": DEFAULT_THRESHOLD, "tuned": False, "support": 0, "f1": None}
    entry = tuned[0]
    assert entry["tuned"] and entry["support"] == int(gold[:, 0].sum())
    # no threshold does better on this label, and the reported F1 is the F1 at the threshold
    best = max(f1_score(gold[:, 0], probabilities[:, 0] >= t) for t in np.unique(probabilities[:, 0]))
    at_threshold = f1_score(gold[:, 0], probabilities[:, 0] >= entry["threshold"])
    assert entry["f1"] == pytest.approx(best) == pytest.approx(at_threshold)
    # the threshold sits strictly between the scores it separates
    assert not np.any(probabilities[:, 0] == entry["threshold"])


def test_threshold_is_a_midpoint_and_ties_stay_together():
    tuned = tune_thresholds([[0.9], [0.6], [0.4], [0.2]], [[1], [0], [1], [0]])
    assert tuned[0]["threshold"] == pytest.approx(0.3) and tuned[0]["f1"] == pytest.approx(0.8)
    # two texts with the same score are both in or both out: no cut between them
    tied = tune_thresholds([[0.7], [0.7], [0.1]], [[1], [0], [0]])
    assert tied[0]["threshold"] == pytest.approx(0.4)


def test_decide_is_at_or_above():
    assert decide([[0.5, 0.49, 0.9]], [0.5, 0.5, 0.95]) == [[0]]


def test_label_set_baseline_predicts_the_commonest_set():
    train = [["acting"], ["acting"], ["music", "plot"], []]
    result = label_set_baseline(train, [["acting"], ["music"]], LABELS)
    assert result["label_set"] == ["acting"]
    assert result["subset_accuracy"] == 0.5 and result["per_label"]["acting"]["predicted"] == 2


def test_label_prior_baseline_draws_at_the_training_frequency():
    train = [["acting"]] * 50 + [[]] * 50  # acting: prior 0.5; the others never occur
    gold = [["acting"]] * 200 + [[]] * 200
    result = label_prior_baseline(train, gold, LABELS, draws=5, seed=0)
    assert result["priors"]["acting"] == 0.5 and result["priors"]["music"] == 0.0
    assert result["per_label"]["acting"]["predicted"] == pytest.approx(200, rel=0.15)  # about half of 400 texts
    assert result["per_label"]["music"]["predicted"] == 0
    assert result["per_label"]["acting"]["recall"] == pytest.approx(0.5, abs=0.08)
    assert label_prior_baseline(train, gold, LABELS, draws=5, seed=0) == result  # seeded: reproducible
