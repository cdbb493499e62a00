"""Multi-label classification metrics: each text has a set of labels (possibly empty), each decided on its own.

``multilabel_scores`` calls scikit-learn on whole lists; ``MultiLabelScorer`` keeps only counts (per label: true
positives, predicted, gold; per example: the samples averages' sums, exact matches, wrong decisions), so memory is
bounded by the number of labels, and ``tests/test_metrics_multilabel.py`` proves both give scikit-learn's numbers.

Every metric scores the (text, label) decisions:

* ``precision``/``recall``/``f1`` are the **micro** averages (every decision pooled; ``average`` says so), also
  under ``micro_*``; ``macro_*`` (the mean over labels), ``weighted_*`` (by support) and ``samples_*`` (per text,
  then the mean over texts) are always present;
* ``subset_accuracy`` (also ``accuracy``): the share of texts whose predicted set is exactly the gold set;
* ``hamming_loss``: the share of wrong (text, label) decisions (lower is better);
* ``per_label``: precision, recall, F1, support (texts that carry the label) and predicted (texts given it).

An undefined ratio is 0 (scikit-learn's ``zero_division=0``): a label with no support and no prediction scores 0
in the macro average, and so does, in the samples average, a text with no gold and no predicted label.

Decisions come from probabilities (the sigmoid of each label's logit) and one threshold per label:
:func:`tune_thresholds` picks, for each label, the threshold that maximises its F1 on a validation split, and
:data:`DEFAULT_THRESHOLD` (0.5) where the split has no example of the label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tunecard.errors import ConfigError
from tunecard.metrics.classification import LENGTH_MISMATCH, _check_known, _ratio, _resolve_labels

DEFAULT_THRESHOLD = 0.5
AVERAGES = ("micro", "macro", "weighted", "samples")


def _check_lengths(gold: Sequence, pred: Sequence, where: str = "") -> None:
    if len(gold) != len(pred):
        raise ConfigError(LENGTH_MISMATCH, f"{where}{len(gold)} gold label sets but {len(pred)} predicted ones.",
                          fix="predict one label set per example.")


def multilabel_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
                      labels: Sequence[str] | None = None) -> dict:
    """Score predicted label sets against gold ones with scikit-learn.

    Args:
        gold: the reference label sets, one per example (empty lists allowed).
        pred: the predicted label sets, aligned with ``gold``.
        labels: the task's labels, in report order; default: the sorted union of gold and predicted.

    Returns:
        The keys of :meth:`MultiLabelScorer.result` (see the module docstring).

    Raises:
        ConfigError: lengths differ (E261) or a label outside ``labels`` (E262).
    """
    from sklearn.metrics import accuracy_score, hamming_loss, precision_recall_fscore_support

    gold, pred = [list(g) for g in gold], [list(p) for p in pred]
    _check_lengths(gold, pred)
    labels = _resolve_labels(labels, {label for item in gold + pred for label in item})
    _check_known({label for item in gold for label in item}, labels, "gold")
    _check_known({label for item in pred for label in item}, labels, "predicted")
    if not gold or not labels:
        return MultiLabelScorer(labels).result()
    y_true, y_pred = _binarize(gold, labels), _binarize(pred, labels)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    per_label = {label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                         "support": int(support[i]), "predicted": int(y_pred[:, i].sum())}
                 for i, label in enumerate(labels)}
    averages = {}
    for average in AVERAGES:
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
        averages.update({f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)})
    return _assemble(labels, per_label, averages, float(accuracy_score(y_true, y_pred)),
                     float(hamming_loss(y_true, y_pred)), len(gold), int((y_pred.sum(axis=1) == 0).sum()))


def _binarize(sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(sets), len(labels)), dtype=int)
    for row, item in enumerate(sets):
        for label in item:
            matrix[row, index[label]] = 1
    return matrix


def _assemble(labels: Sequence[str], per_label: dict, averages: dict, subset_accuracy: float, hamming: float, n: int,
              empty_predictions: int) -> dict:
    return {
        "precision": averages["micro_precision"],
        "recall": averages["micro_recall"],
        "f1": averages["micro_f1"],
        "average": "micro",
        **averages,
        "subset_accuracy": subset_accuracy,
        "accuracy": subset_accuracy,
        "hamming_loss": hamming,
        "per_label": per_label,
        "labels": list(labels),
        "n": n,
        "empty_predictions": empty_predictions,  # texts given no label at all
        "positive_label": None,
    }


class MultiLabelScorer:
    """Streaming multi-label scorer: counts only (see the module docstring).

    Args:
        labels: the task's labels, in report order; any other label raises ConfigError (E262).
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = _resolve_labels(labels, ())
        self._index = {label: i for i, label in enumerate(self.labels)}
        self._true_positives = [0] * len(self.labels)
        self._predicted = [0] * len(self.labels)
        self._support = [0] * len(self.labels)
        self._samples = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
        self._exact = 0
        self._wrong = 0
        self._empty = 0
        self.n = 0
        self.batches = 0

    def update(self, gold_batch: Sequence[Sequence[str]], pred_batch: Sequence[Sequence[str]]) -> None:
        """Add a batch of examples: gold and predicted label sets, aligned.

        Raises:
            ConfigError: lengths differ (the batch is named) or an unknown label.
        """
        _check_lengths(gold_batch, pred_batch, f"batch {self.batches}: ")
        gold_batch, pred_batch = [set(gold) for gold in gold_batch], [set(pred) for pred in pred_batch]
        # the whole batch is checked before any count changes, as ClassificationScorer.update does
        _check_known(set().union(*gold_batch), self.labels, f"batch {self.batches}: gold")
        _check_known(set().union(*pred_batch), self.labels, f"batch {self.batches}: predicted")
        for gold, pred in zip(gold_batch, pred_batch):
            hits = gold & pred
            for label in hits:
                self._true_positives[self._index[label]] += 1
            for label in pred:
                self._predicted[self._index[label]] += 1
            for label in gold:
                self._support[self._index[label]] += 1
            self._samples["precision"] += _ratio(len(hits), len(pred))
            self._samples["recall"] += _ratio(len(hits), len(gold))
            self._samples["f1"] += _ratio(2 * len(hits), len(gold) + len(pred))  # scikit-learn's formula
            self._exact += gold == pred
            self._wrong += len(gold ^ pred)
            self._empty += not pred
            self.n += 1
        self.batches += 1

    def result(self) -> dict:
        """The metrics over every example seen so far (the keys of the module docstring)."""
        per_label = {}
        for i, label in enumerate(self.labels):
            tp, predicted, support = self._true_positives[i], self._predicted[i], self._support[i]
            per_label[label] = {"precision": _ratio(tp, predicted), "recall": _ratio(tp, support),
                                "f1": _ratio(2 * tp, support + predicted), "support": support, "predicted": predicted}
        rows = list(per_label.values())
        supports = [row["support"] for row in rows]
        tp, predicted, support = sum(self._true_positives), sum(self._predicted), sum(self._support)
        averages = {"micro_precision": _ratio(tp, predicted), "micro_recall": _ratio(tp, support),
                    "micro_f1": _ratio(2 * tp, support + predicted)}
        for metric in ("precision", "recall", "f1"):
            values = [row[metric] for row in rows]
            averages[f"macro_{metric}"] = _ratio(sum(values), len(values))
            averages[f"weighted_{metric}"] = _ratio(sum(v * s for v, s in zip(values, supports)), sum(supports))
            averages[f"samples_{metric}"] = _ratio(self._samples[metric], self.n)
        decisions = self.n * len(self.labels)
        return _assemble(self.labels, per_label, averages, _ratio(self._exact, self.n), _ratio(self._wrong, decisions),
                         self.n, self._empty)


def decide(probabilities: Sequence[Sequence[float]], thresholds: Sequence[float]) -> list[list[int]]:
    """Each row's predicted label indices: the labels whose probability is at or above its threshold."""
    return [[i for i, (p, t) in enumerate(zip(row, thresholds)) if p >= t] for row in probabilities]


def tune_thresholds(probabilities, gold, default: float = DEFAULT_THRESHOLD) -> list[dict]:
    """Per label, the decision threshold that maximises that label's F1 on these examples.

    The candidates are cuts between distinct probabilities: a cut predicts the label for every example scored at or
    above it. The threshold is the midpoint between the lowest probability kept and the next one below it (the
    lowest kept halved if it is the lowest of all), so it sits between the scores it separates. Among cuts of equal
    F1 the one whose threshold is nearest ``default`` wins. A label with no positive example here keeps ``default``.

    Args:
        probabilities: [examples, labels] probabilities (array-like).
        gold: [examples, labels] 0/1 gold decisions (array-like).
        default: the threshold of a label with no positive example (0.5).

    Returns:
        One dict per label: ``threshold``, ``tuned`` (False: the default was kept), ``support`` (positive
        examples), and ``f1`` at the threshold on these examples.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(len(gold), -1)
    gold = np.asarray(gold, dtype=bool).reshape(probabilities.shape)
    tuned = []
    for column in range(probabilities.shape[1]):
        scores, positives = probabilities[:, column], gold[:, column]
        support = int(positives.sum())
        if support == 0:
            tuned.append({"threshold": default, "tuned": False, "support": 0, "f1": None})
            continue
        order = np.argsort(-scores, kind="stable")
        ranked, hits = scores[order], np.cumsum(positives[order])
        # cut after position k (predict the k + 1 highest): only where the next score is lower (ties stay together)
        ends = np.flatnonzero(np.append(ranked[1:] < ranked[:-1], True))
        f1 = 2 * hits[ends] / (ends + 1 + support)
        below = np.append(ranked[1:], 0.0)[ends]
        cuts = (ranked[ends] + below) / 2
        best = np.flatnonzero(f1 >= f1.max() - 1e-12)
        choice = best[np.argmin(np.abs(cuts[best] - default))]
        tuned.append({"threshold": float(cuts[choice]), "tuned": True, "support": support,
                      "f1": float(f1[choice])})
    return tuned


__all__ = ["DEFAULT_THRESHOLD", "MultiLabelScorer", "decide", "multilabel_scores", "tune_thresholds"]
