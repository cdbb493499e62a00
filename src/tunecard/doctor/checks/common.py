"""What every check family shares: task names, the thresholds, small number helpers and :class:`Eval`.

Thresholds are the module constants below, so a reader can see exactly when a finding fires (docs/doctor.md
lists them per code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

from tunecard.data.example import MULTI_LABEL_TASK
from tunecard.data.stats import LEAKAGE_MIN_WORDS  # noqa: F401 (the doctor's thresholds in one place)

from ..findings import Finding


NER = "token-classification"
CLS = "text-classification"
REG = "regression"
MLC = MULTI_LABEL_TASK  # its own collapse check (D105); the one-class and chance formulas do not apply
KNOWN_TASKS = (NER, CLS, REG, None)  # anything else (multi-label ...): only the task-free checks run

# --- thresholds ---------------------------------------------------------------------------------------------
FROZEN_MIN_EVALS = 3  # a metric identical over this many consecutive evaluations while the loss moves
LOSS_MOVED = 1e-4  # the loss "moves" when it changes by more than this over those evaluations
SATURATED_TRAINING_LOSS = 0.01  # a frozen metric late in training with the training loss below this: saturated
CHANCE_LOSS_TOLERANCE = 0.02  # validation loss within 2 % of ln K at every evaluation: chance level
CHANCE_F1 = 0.1  # a published F1 above 0 but below this: the model finds almost nothing
CHANCE_MCC = 0.1  # |Matthews correlation| below this at every evaluation: chance level
CHANCE_ACCURACY_MARGIN = 0.05  # accuracy at most this above the majority share (known from a collapsed row)
LEARNING_BUDGET = 1e-3  # optimizer steps x learning rate below this: no weight can have moved by more
INCONSISTENT_MARGIN = 0.02  # validation loss below this share of (1 - accuracy) * ln 2 cannot be cross-entropy
COLLAPSE_TOLERANCE = 1e-3  # |printed - predicted by the one-class formula| for 4-decimal cards
COLLAPSE_MAX_CLASSES = 50  # K tried in the macro-average one-class formula (recall = 1/K)
BASELINE_MARGIN = 0.01  # "clearly above" the strongest baseline: by at least this much (absolute) ...
BASELINE_MARGIN_SHARE = 0.1  # ... and by this share of the way from the baseline to a perfect score
LOSS_RISE_TOLERANCE = 0.02  # training loss ending more than 2 % above its first value diverged
STEP_TAIL_SHARE = 0.1  # runs: the last 10 % of optimizer steps (at least one) are compared with the first
TRAIN_RISE_MIN_EVALS = 2  # consecutive rises of the training loss at the end of training
TRAIN_RISE_MIN_RELATIVE = 0.05  # ... that together add at least 5 %
LR_HIGH = 1e-3  # encoders are fine-tuned with 1e-5 .. 1e-4; from 1e-3 they usually diverge or collapse
SMALL_BATCH = 8  # effective batch (batch x gradient accumulation) below this is noisy ...
SMALL_BATCH_MAX_LR = 5e-5  # ... and wants a learning rate at most this
OVERFIT_RISE = 0.10  # validation loss 10 % above its minimum at the last evaluation
OVERFIT_MIN_ABSOLUTE = 1e-3
OVERFIT_METRIC_GAIN = 0.005  # the main metric still improving by this much makes D401 informational ...
OVERFIT_TRAIN_DROP = 10  # ... unless the training loss fell more than 10x: then it is overfitting all the same
BEST_GAP = 0.01  # the best evaluation beats the last by at least this much (absolute metric) ...
BEST_GAP_NOISE = 2  # ... and by twice the usual change between evaluations (unless the last is the worst after it)
NOT_CONVERGED_DELTA = 0.02  # main metric gained at least this much at the last evaluation
NOT_CONVERGED_LOSS_DROP = 0.10  # or (no metric) validation loss fell by 10 % at the last evaluation
F1_TOLERANCE = 1e-3  # |F1 - 2PR/(P+R)| allowed for 4-decimal values (wider for fewer decimals)
TINY_TRAIN = 500  # training examples
TINY_EVAL = 100  # evaluation examples
TINY_EVAL_ONE_VALUE = 12  # cards: one accuracy value k/n proves a tiny set only for n up to this ...
TINY_EVAL_ONE_VALUE_SMALL_TRAIN = 30  # ... or up to this when the training set is tiny too (D601)
IMBALANCE_RATIO = 10  # most / least frequent training label
RARE_LABEL_MIN = 10  # training examples (classes) or entities (NER types) below this are rare
TRUNCATED_WARNING = 0.05  # share of classification texts truncated
REPAIRED_WARNING = 0.05  # repaired tag sequences per example
INVALID_TAGS_INFO = 0.01  # NER, argmax decoding: predicted tag sequences breaking IOB2, share of sentences (D106)
INVALID_TAGS_WARNING = 0.05  # ... a warning from this share (strong CoNLL-2003 models: about 2%)
INVALID_TAGS_MIN = 3  # and at least this many sentences
LEAKAGE_WARNING = 0.01  # share of evaluation examples also in training
LEAKAGE_ERROR = 0.10

CHECKED_RUN = ["collapse (D1xx)", "baseline (D2xx)", "divergence (D3xx)", "overfitting / convergence (D4xx)",
               "data (D6xx)"]
CHECKED_CARD = ["collapse (D1xx)", "baseline (D2xx)", "divergence (D3xx)", "overfitting / convergence (D4xx)",
                "card consistency (D5xx)", "data (D6xx)", "environment (D7xx)"]


# --- small helpers ------------------------------------------------------------------------------------------


def _num(value) -> float | None:
    """A float for numbers (nan / inf kept), None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _finite(value) -> bool:
    v = _num(value)
    return v is not None and math.isfinite(v)


def fmt(value, decimals: int = 4) -> str:
    v = _num(value)
    if v is None:
        return "n/a" if value is None else str(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{decimals}f}"


def fmt_epoch(epoch) -> str:
    v = _num(epoch)
    return str(round(v, 4)) if v is not None and math.isfinite(v) else str(epoch)


TITLES = {"precision": "Precision", "recall": "Recall", "f1": "F1", "accuracy": "Accuracy", "loss": "Validation loss",
          "training_loss": "Training loss", "validation_loss": "Validation loss"}


def title(key: str) -> str:
    return TITLES.get(key, key.replace("_", " ").title().replace("F1", "F1"))


def _series(values: Iterable, limit: int = 8) -> str:
    """'0.1 → 0.2 → 0.3' (with '…' in the middle when long)."""
    items = [fmt(v) for v in values]
    if len(items) > limit:
        items = items[: limit // 2] + ["…"] + items[-(limit // 2):]
    return " → ".join(items)


@dataclass
class Eval:
    """One evaluation (a history row or a Training results row), in the checks' terms."""

    where: str  # "epoch 2.0 (step 3512)"
    epoch: float | None = None
    step: int | None = None
    training_loss: float | None = None  # None: not logged
    training_nolog: bool = False
    validation_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # precision / recall / f1 / accuracy
    scores: dict[str, float] = field(default_factory=dict)  # every score column (macro_f1, mcc, pearson, ...)
    nan_metrics: list[str] = field(default_factory=list)  # metrics printed as nan (precision 0/0 ...)


def _where(epoch, step, index: int) -> str:
    parts = []
    epoch, step = _num(epoch), _num(step)
    if epoch is not None and math.isfinite(epoch):
        parts.append(f"epoch {fmt_epoch(epoch)}")
    if step is not None and math.isfinite(step):
        parts.append(f"step {int(step)}" if not parts else f"(step {int(step)})")
    return " ".join(parts) if parts else f"row {index + 1}"


def _score(e: Eval, main: str) -> float | None:
    value = e.validation_loss if main == "loss" else e.metrics.get(main, e.scores.get(main))
    return value if _finite(value) else None


LOWER_IS_BETTER = ("loss", "mse", "rmse", "mae", "mape", "msev")


def lower_is_better(key: str) -> bool:
    return key in LOWER_IS_BETTER or key.endswith("_loss")


def lr_advice(lr, high_only: bool = False) -> str:
    """One sentence on the learning rate, given the one used (None: unknown); never advises the rate in use.
    ``high_only``: say nothing when the rate is in the usual range or unknown."""
    lr = _num(lr)
    if lr is None or not math.isfinite(lr):
        return "" if high_only else ("Use a learning rate of 2e-5 to 5e-5 for base-size encoders (up to 1e-4 for "
                                     "small ones).")
    if lr > 1e-4:
        return f"Lower the learning rate from {lr:g} to 2e-5-5e-5 (base-size encoders; up to 1e-4 for small ones)."
    if lr > 5e-5:
        return f"Try a lower learning rate than {lr:g} (2e-5 to 5e-5 for base-size encoders)."
    return "" if high_only else f"The learning rate ({lr:g}) is already in the usual range: not the first suspect."


def typical_change(values: list[float]) -> float:
    """The median absolute change between consecutive values, leaving out the first (the learning phase); 0 with
    fewer than 3 such changes (too few to tell noise from a trend)."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    changes = sorted(abs(b - a) for a, b in zip(values[1:], values[2:]))
    if len(changes) < 3:
        return 0.0
    mid = len(changes) // 2
    return changes[mid] if len(changes) % 2 else (changes[mid - 1] + changes[mid]) / 2


def fmt_int(value) -> str:
    v = _num(value)
    return str(int(v)) if v is not None and math.isfinite(v) and v == int(v) else str(value)


def guarded(checks: list[tuple[str, Callable[[], list[Finding]]]]) -> tuple[list[Finding], list[str]]:
    """Run checks; one that raises (malformed input) is reported as not run instead of stopping the others."""
    found, problems = [], []
    for name, check in checks:
        try:
            found.extend(check() or [])
        except Exception as error:  # the doctor must not crash on a half-written run or card
            problems.append(f"check '{name}' could not run: {type(error).__name__}: {error}")
    return found, problems


def best_rows(evals: list[Eval], exclude: set[int] | None = None) -> dict[int, list[str]]:
    """Row index -> the criteria it is the best evaluation by (ties included): the lowest validation loss, the
    highest (or, for errors like MSE, lowest) value of each score column. ``exclude``: rows not to count (collapsed
    ones: a one-class model is nobody's best checkpoint)."""
    exclude = exclude or set()
    found: dict[int, list[str]] = {}
    columns = {"loss"} | {k for e in evals for k in (*e.metrics, *e.scores)}
    for key in sorted(columns):
        values = [(i, _score(e, key)) for i, e in enumerate(evals) if i not in exclude]
        values = [(i, v) for i, v in values if v is not None]
        if len(values) < 2:
            continue
        target = min(v for _, v in values) if lower_is_better(key) else max(v for _, v in values)
        for i, v in values:
            if abs(v - target) <= 1e-9:
                found.setdefault(i, []).append(key)
    return found
