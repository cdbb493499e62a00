"""Text classification metrics: scikit-learn for whole lists, a confusion-matrix scorer for streams.

``classification_scores`` calls scikit-learn directly. ``ClassificationScorer`` accumulates only a
confusion matrix (memory bounded by the number of labels, not of examples) and derives every metric from
it; ``tests/test_metrics_classification.py`` proves both give scikit-learn's numbers.

Binary tasks (exactly two labels): ``precision``/``recall``/``f1`` are those of the positive label.
Otherwise they are macro averages. ``macro_*``, ``micro_*`` and ``weighted_*`` are always present.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Iterable, Sequence

from tunecard.errors import ConfigError

UNKNOWN_LABEL = "E262"
BAD_POSITIVE_LABEL = "E263"
LENGTH_MISMATCH = "E261"

_POSITIVE_NAMES = ("positive", "pos", "true", "yes")


def default_positive_label(labels: Iterable[str]) -> str:
    """The label reported as positive in a binary task when none is configured.

    ``"1"`` for labels {"0", "1"}; else the first label named positive/pos/true/yes (case-insensitive, in
    that order of preference); else the second label in sorted order.

    Args:
        labels: the two labels of the task.
    """
    ordered = sorted(set(labels))
    if set(ordered) == {"0", "1"}:
        return "1"
    by_lower = {label.lower(): label for label in ordered}
    for name in _POSITIVE_NAMES:
        if name in by_lower:
            return by_lower[name]
    return ordered[1] if len(ordered) > 1 else ordered[0]


def _resolve_labels(labels: Sequence[str] | None, seen: Iterable[str]) -> list[str]:
    if labels is None:
        return sorted(set(seen))
    labels = list(labels)
    duplicates = sorted(label for label, n in Counter(labels).items() if n > 1)
    if duplicates:
        raise ConfigError(UNKNOWN_LABEL, f"labels given twice: {duplicates}.", fix="list each label once.")
    return labels


def _check_known(values: Iterable[str], labels: Sequence[str], side: str) -> None:
    unknown = sorted(set(values) - set(labels))
    if unknown:
        raise ConfigError(
            UNKNOWN_LABEL,
            f"{side} labels {unknown} are not among the task's labels {list(labels)}.",
            fix="add them to the label list, or check that gold and predicted labels use the same names.",
        )


def _resolve_positive(labels: Sequence[str], positive_label: str | None) -> str | None:
    if len(labels) != 2:
        if positive_label is not None:
            raise ConfigError(
                BAD_POSITIVE_LABEL,
                f"positive_label {positive_label!r} given for a task with {len(labels)} labels {list(labels)}.",
                fix="positive_label applies to binary tasks only; leave it unset (metrics are macro averages).",
            )
        return None
    if positive_label is None:
        return default_positive_label(labels)
    if positive_label not in labels:
        raise ConfigError(
            BAD_POSITIVE_LABEL,
            f"positive_label {positive_label!r} is not one of the labels {list(labels)}.",
            fix="use one of the task's labels.",
        )
    return positive_label


def _assemble(
    labels: list[str],
    positive: str | None,
    per_label: dict[str, dict],
    averages: dict[str, float],
    accuracy: float,
    matrix: list[list[int]],
    n: int,
) -> dict:
    headline = per_label[positive] if positive is not None else {
        "precision": averages["macro_precision"], "recall": averages["macro_recall"], "f1": averages["macro_f1"]
    }
    return {
        "accuracy": accuracy,
        "precision": headline["precision"],
        "recall": headline["recall"],
        "f1": headline["f1"],
        "average": "binary" if positive is not None else "macro",
        "positive_label": positive,
        **{f"{average}_{metric}": averages[f"{average}_{metric}"]
           for average in ("macro", "micro", "weighted") for metric in ("precision", "recall", "f1")},
        "per_label": per_label,
        "confusion_matrix": {"labels": list(labels), "matrix": matrix},
        "labels": list(labels),
        "n": n,
    }


def classification_scores(
    gold: Sequence[str],
    pred: Sequence[str],
    labels: Sequence[str] | None = None,
    positive_label: str | None = None,
) -> dict:
    """Score predicted class labels against gold ones with scikit-learn.

    Args:
        gold: reference labels, one per example.
        pred: predicted labels, aligned with ``gold``.
        labels: the task's label set, in report order; default: sorted union of gold and predicted.
        positive_label: for binary tasks, the label whose precision/recall/F1 are the headline; default
            from :func:`default_positive_label`. Not allowed with more than two labels.

    Returns:
        ``accuracy``, ``precision``, ``recall``, ``f1`` (positive label if binary, else macro),
        ``average`` ("binary"/"macro"), ``positive_label`` (None unless binary), ``macro_*``,
        ``micro_*``, ``weighted_*`` precision/recall/f1, ``per_label`` {label: {precision, recall, f1,
        support, predicted}}, ``confusion_matrix`` {"labels", "matrix" (rows gold, columns predicted)},
        ``labels``, ``n``. Undefined ratios are 0.0 (scikit-learn ``zero_division=0``).

    Raises:
        ConfigError: lengths differ, a label outside ``labels``, or a bad ``positive_label``.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    gold, pred = list(gold), list(pred)
    if len(gold) != len(pred):
        raise ConfigError(
            LENGTH_MISMATCH,
            f"{len(gold)} gold labels but {len(pred)} predictions.",
            fix="predict one label per example.",
        )
    seen = set(gold) | set(pred) | ({positive_label} if positive_label is not None and labels is None else set())
    labels = _resolve_labels(labels, seen)
    _check_known(gold, labels, "gold")
    _check_known(pred, labels, "predicted")
    positive = _resolve_positive(labels, positive_label)
    if not gold:
        # scikit-learn refuses empty inputs; the streaming scorer gives the all-zero result.
        return ClassificationScorer(labels=labels, positive_label=positive_label).result()

    precision, recall, f1, support = precision_recall_fscore_support(
        gold, pred, labels=labels, average=None, zero_division=0
    )
    with warnings.catch_warnings():
        # With a one-label task the 1x1 matrix is the right shape; scikit-learn warns all the same.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        matrix = confusion_matrix(gold, pred, labels=labels).tolist()
    per_label = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": int(sum(row[i] for row in matrix)),
        }
        for i, label in enumerate(labels)
    }
    averages: dict[str, float] = {}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=labels, average=average, zero_division=0)
        averages.update({f"{average}_precision": float(p), f"{average}_recall": float(r), f"{average}_f1": float(f)})
    return _assemble(labels, positive, per_label, averages, float(accuracy_score(gold, pred)), matrix, len(gold))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


class ClassificationScorer:
    """Streaming classification scorer: only a confusion matrix is kept.

    Args:
        labels: the task's label set, in report order. If given, any other label raises ConfigError;
            if not, labels are collected as they come and reported sorted.
        positive_label: as for :func:`classification_scores`.
    """

    def __init__(self, labels: Sequence[str] | None = None, positive_label: str | None = None) -> None:
        self._labels = _resolve_labels(labels, ()) if labels is not None else None
        self.positive_label = positive_label
        if self._labels is not None:
            _resolve_positive(self._labels, positive_label)  # fail at construction, not at the end
        self._pairs: Counter[tuple[str, str]] = Counter()  # (gold, predicted) -> count
        self.batches = 0

    def update(self, gold_batch: Sequence[str], pred_batch: Sequence[str]) -> None:
        """Add a batch of examples.

        Args:
            gold_batch: reference labels.
            pred_batch: predicted labels, aligned with ``gold_batch``.

        Raises:
            ConfigError: lengths differ (the message names the batch index) or an unknown label.
        """
        if len(gold_batch) != len(pred_batch):
            raise ConfigError(
                LENGTH_MISMATCH,
                f"batch {self.batches}: {len(gold_batch)} gold labels but {len(pred_batch)} predictions.",
                fix="predict one label per example.",
            )
        if self._labels is not None:
            _check_known(gold_batch, self._labels, f"batch {self.batches}: gold")
            _check_known(pred_batch, self._labels, f"batch {self.batches}: predicted")
        self._pairs.update(zip(gold_batch, pred_batch))
        self.batches += 1

    def result(self) -> dict:
        """The metrics over every example seen so far, derived from the confusion matrix.

        Returns:
            The same keys as :func:`classification_scores`.
        """
        seen = {label for pair in self._pairs for label in pair}
        if self._labels is None and self.positive_label is not None:
            seen.add(self.positive_label)
        labels = self._labels if self._labels is not None else sorted(seen)
        positive = _resolve_positive(labels, self.positive_label)
        matrix = [[self._pairs[(gold, pred)] for pred in labels] for gold in labels]
        n = sum(map(sum, matrix))
        correct = sum(matrix[i][i] for i in range(len(labels)))

        per_label: dict[str, dict] = {}
        for i, label in enumerate(labels):
            support = sum(matrix[i])
            predicted = sum(row[i] for row in matrix)
            true_positives = matrix[i][i]
            per_label[label] = {
                "precision": _ratio(true_positives, predicted),
                "recall": _ratio(true_positives, support),
                # scikit-learn's formula (from counts), so the floats match.
                "f1": _ratio(2 * true_positives, support + predicted),
                "support": support,
                "predicted": predicted,
            }
        rows = list(per_label.values())
        supports = [row["support"] for row in rows]
        averages: dict[str, float] = {}
        for metric in ("precision", "recall", "f1"):
            values = [row[metric] for row in rows]
            averages[f"macro_{metric}"] = _ratio(sum(values), len(values))
            averages[f"weighted_{metric}"] = _ratio(sum(v * s for v, s in zip(values, supports)), sum(supports))
        # Single-label classification over all labels: every error is one FP and one FN, so micro
        # precision = recall = F1 = accuracy.
        for metric in ("precision", "recall", "f1"):
            averages[f"micro_{metric}"] = _ratio(correct, n)
        return _assemble(labels, positive, per_label, averages, _ratio(correct, n), matrix, n)
