"""The checks: from a run's history / metrics / config, or from what a card prints.

Every check is a small function returning findings; :func:`diagnose_run` (pure, used when the card is
written) and :func:`card_findings` run them. Thresholds are the module constants below, so a reader can see
exactly when a finding fires (docs/doctor.md lists them per code).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable, Iterable

from .cardparse import (
    METRIC_BASES,
    Cell,
    ParsedCard,
    averaging,
    main_metric_keys,
    metric_base,
)
from .findings import ERROR, INFO, WARNING, FAMILIES, Finding, finding, sort_findings

NER = "token-classification"
CLS = "text-classification"

# --- thresholds ---------------------------------------------------------------------------------------------
FROZEN_MIN_EVALS = 3  # a metric identical over this many consecutive evaluations while the loss moves
LOSS_MOVED = 1e-4  # the loss "moves" when it changes by more than this over those evaluations
COLLAPSE_TOLERANCE = 1e-3  # |printed - predicted by the one-class formula| for 4-decimal cards
COLLAPSE_MAX_CLASSES = 50  # K tried in the macro-average one-class formula (recall = 1/K)
BASELINE_MARGIN = 0.01  # "clearly above" the strongest baseline: by at least this much (absolute)
LOSS_RISE_TOLERANCE = 0.02  # training loss ending more than 2 % above its first value diverged
STEP_TAIL_SHARE = 0.1  # runs: the last 10 % of optimizer steps (at least one) are compared with the first
TRAIN_RISE_MIN_EVALS = 2  # consecutive rises of the training loss at the end of training
TRAIN_RISE_MIN_RELATIVE = 0.05  # ... that together add at least 5 %
LR_HIGH = 1e-3  # encoders are fine-tuned with 1e-5 .. 1e-4; from 1e-3 they usually diverge or collapse
SMALL_BATCH = 8  # effective batch (batch x gradient accumulation) below this is noisy ...
SMALL_BATCH_MAX_LR = 5e-5  # ... and wants a learning rate at most this
OVERFIT_RISE = 0.10  # validation loss 10 % above its minimum at the last evaluation
OVERFIT_MIN_ABSOLUTE = 1e-3
OVERFIT_METRIC_GAIN = 0.005  # the main metric still improving by this much makes D401 informational
BEST_GAP = 0.01  # the best evaluation beats the last by at least this much (absolute metric)
NOT_CONVERGED_DELTA = 0.01  # main metric gained at least this much at the last evaluation
NOT_CONVERGED_LOSS_DROP = 0.05  # or (no metric) validation loss fell by 5 % at the last evaluation
F1_TOLERANCE = 1e-3  # |F1 - 2PR/(P+R)| allowed for 4-decimal values (wider for fewer decimals)
TINY_TRAIN = 500  # training examples
TINY_EVAL = 100  # evaluation examples
IMBALANCE_RATIO = 10  # most / least frequent training label
RARE_LABEL_MIN = 10  # training examples (classes) or entities (NER types) below this are rare
TRUNCATED_WARNING = 0.05  # share of classification texts truncated
REPAIRED_WARNING = 0.05  # repaired tag sequences per example
LEAKAGE_WARNING = 0.01  # share of evaluation examples also in training
LEAKAGE_ERROR = 0.10
LEAKAGE_MIN_WORDS = 3  # shorter texts ('Reuters', '-- END --') are not counted as leaked

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


def _where(epoch, step, index: int) -> str:
    parts = []
    epoch, step = _num(epoch), _num(step)
    if epoch is not None and math.isfinite(epoch):
        parts.append(f"epoch {fmt_epoch(epoch)}")
    if step is not None and math.isfinite(step):
        parts.append(f"step {int(step)}" if not parts else f"(step {int(step)})")
    return " ".join(parts) if parts else f"row {index + 1}"


def _score(e: Eval, main: str) -> float | None:
    value = e.validation_loss if main == "loss" else e.metrics.get(main)
    return value if _finite(value) else None


# --- curves: the evaluations over training ------------------------------------------------------------------


def check_frozen(evals: list[Eval]) -> list[Finding]:
    """D103: a headline metric identical over >= FROZEN_MIN_EVALS consecutive evaluations while the loss moves."""
    frozen = []
    for base in METRIC_BASES:
        best_run = None
        i = 0
        while i < len(evals):
            value = evals[i].metrics.get(base)
            if not _finite(value):
                i += 1
                continue
            j = i
            while j + 1 < len(evals) and _finite(evals[j + 1].metrics.get(base)) and \
                    round(evals[j + 1].metrics[base], 6) == round(value, 6):
                j += 1
            if j - i + 1 >= FROZEN_MIN_EVALS and _loss_moved(evals[i: j + 1]):
                if best_run is None or j - i > best_run[1] - best_run[0]:
                    best_run = (i, j, value)
            i = j + 1
        if best_run:
            frozen.append((base, *best_run))
    if not frozen:
        return []
    whole = any(i == 0 and j == len(evals) - 1 for _, i, j, _ in frozen)
    perfect = all(v >= 0.9999 for *_, v in frozen)
    i = min(f[1] for f in frozen)
    j = max(f[2] for f in frozen)
    span = evals[i: j + 1]
    moved = "validation loss" if _moved([e.validation_loss for e in span]) else "training loss"
    losses = [e.validation_loss if moved == "validation loss" else e.training_loss for e in span]
    what = " and ".join(f"{title(base)} {fmt(v)}" for base, _, _, v in frozen)
    scope = (f"at every one of the {len(evals)} evaluations" if whole
             else f"over {j - i + 1} consecutive evaluations")
    evidence = (f"{what} {scope} ({span[0].where} to {span[-1].where}) while {moved} went {_series(losses)}.")
    data = {"metrics": {base: v for base, _, _, v in frozen}, "first": span[0].where, "last": span[-1].where,
            "evaluations": j - i + 1, "all_evaluations": whole}
    if perfect:
        return [finding("D103", "A perfect score that never moves", evidence,
                        "A score of 1.0 at every evaluation usually means the task is trivial for the model or the "
                        "evaluation data is in the training data (check for duplicates); it says little about new text.",
                        severity=INFO, **data)]
    return [finding(
        "D103", "The metric does not move while the loss does: the predictions never change",
        evidence,
        "The model most likely outputs the same class (or only O tags) whatever the input. Check that the labels reach "
        "the model (label column, label2id), use a learning rate of 1e-5 to 5e-5 for base-size encoders, train longer, "
        "and for imbalanced data use class weights or oversample the rare classes.",
        severity=ERROR if whole else WARNING, **data)]


def _moved(values) -> bool:
    finite = [v for v in values if _finite(v)]
    return len(finite) >= 2 and max(finite) - min(finite) > LOSS_MOVED


def _loss_moved(evals: list[Eval]) -> bool:
    return _moved([e.validation_loss for e in evals]) or _moved([e.training_loss for e in evals])


def check_not_finite(items: list[tuple[str, str, object]]) -> list[Finding]:
    """D301: NaN / inf losses (or metrics, gradient norms). ``items``: (where, what, value)."""
    bad = [(where, what, v) for where, what, v in items if _num(v) is not None and not math.isfinite(_num(v))]
    if not bad:
        return []
    shown = "; ".join(f"{what} {fmt(v)} at {where}" for where, what, v in bad[:6])
    more = f" (and {len(bad) - 6} more)" if len(bad) > 6 else ""
    return [finding(
        "D301", "The loss is NaN or infinite: training diverged",
        f"{shown}{more}.",
        "Lower the learning rate (1e-5 to 5e-5 for base-size encoders), keep gradient clipping on (max_grad_norm 1.0), "
        "use warmup (warmup_ratio 0.1), and with fp16 switch to bf16 or fp32; check the data for empty or "
        "label-less examples.",
        places=[{"where": w, "what": what, "value": v} for w, what, v in bad])]


def check_loss_trend(evals: list[Eval], steps: list[dict] | None = None) -> list[Finding]:
    """D302 (training loss ends above its first value) or D303 (rising over the last evaluations)."""
    remedy_diverged = ("The model is unlearning: lower the learning rate (by 2-10x; 2e-5 is a safe start for "
                       "base-size encoders), use warmup and gradient clipping, and check that the data is shuffled.")
    if steps:
        losses = [(s.get("step"), _num(s.get("loss"))) for s in steps if isinstance(s, dict)]
        losses = [(step, v) for step, v in losses if v is not None and math.isfinite(v)]
        if len(losses) >= 2:
            first_step, first = losses[0]
            tail = losses[-max(1, int(len(losses) * STEP_TAIL_SHARE)):]
            tail_mean = sum(v for _, v in tail) / len(tail)
            if tail_mean > first * (1 + LOSS_RISE_TOLERANCE):
                return [finding(
                    "D302", "The training loss ended above where it started",
                    f"optimizer step {first_step}: loss {fmt(first)}; mean of the last {len(tail)} steps "
                    f"(steps {tail[0][0]}–{tail[-1][0]}): {fmt(tail_mean)}.",
                    remedy_diverged, first=first, last=tail_mean, source="steps")]
    known = [e for e in evals if _finite(e.training_loss)]
    if len(known) < 2:
        return []
    first, last = known[0], known[-1]
    if last.training_loss > first.training_loss * (1 + LOSS_RISE_TOLERANCE):
        return [finding(
            "D302", "The training loss ended above where it started",
            f"training loss {_series(e.training_loss for e in known)} ({first.where} to {last.where}).",
            remedy_diverged, first=first.training_loss, last=last.training_loss, source="rows")]
    rises = 0
    for a, b in zip(reversed(known[:-1]), reversed(known)):
        if b.training_loss > a.training_loss:
            rises += 1
        else:
            break
    if rises >= TRAIN_RISE_MIN_EVALS:
        start = known[-1 - rises]
        if last.training_loss >= start.training_loss * (1 + TRAIN_RISE_MIN_RELATIVE):
            return [finding(
                "D303", f"The training loss rose at each of the last {rises} evaluations",
                f"training loss {_series(e.training_loss for e in known[-1 - rises:])} "
                f"({start.where} to {last.where}).",
                "Training is becoming unstable: lower the learning rate or use a decaying schedule (linear), keep "
                "gradient clipping on; the best checkpoint is before the rise.",
                rises=rises, values=[e.training_loss for e in known[-1 - rises:]])]
    return []


def check_learning_rate(lr, batch, accumulation=None, total=None) -> list[Finding]:
    """D304 (learning rate >= LR_HIGH) and D305 (effective batch small for the learning rate, or 1)."""
    found = []
    lr = _num(lr)
    batch = _num(batch)
    effective = _num(total) or ((batch or 0) * (_num(accumulation) or 1) if batch else None)
    if lr is not None and math.isfinite(lr) and lr >= LR_HIGH:
        found.append(finding(
            "D304", "The learning rate is too high for fine-tuning an encoder",
            f"learning_rate {lr:g} (encoders are fine-tuned with 1e-5 to 1e-4; from {LR_HIGH:g} they usually diverge "
            "or collapse to one class).",
            "Use 2e-5 to 5e-5 for base-size models (up to 1e-4 for small ones) with warmup.",
            learning_rate=lr))
    if effective is not None and effective >= 1:
        if effective == 1:
            found.append(finding(
                "D305", "Batch size 1",
                f"effective batch size 1 (train_batch_size {fmt_int(batch)}"
                + (f", gradient_accumulation_steps {fmt_int(accumulation)}" if accumulation else "")
                + (f") with learning_rate {lr:g}." if lr is not None else ")."),
                "Every step follows one example's gradient: use batch 8-32 (or gradient_accumulation_steps to reach it "
                "on small memory); if it must stay 1, lower the learning rate to about 1e-5.",
                effective_batch=effective, learning_rate=lr))
        elif effective < SMALL_BATCH and lr is not None and lr > SMALL_BATCH_MAX_LR:
            found.append(finding(
                "D305", "The learning rate is high for so small a batch",
                f"effective batch size {fmt_int(effective)} with learning_rate {lr:g} (above {SMALL_BATCH_MAX_LR:g} for "
                f"batches under {SMALL_BATCH}).",
                f"Raise the batch (or gradient_accumulation_steps) to {SMALL_BATCH}-32, or lower the learning rate to "
                f"{SMALL_BATCH_MAX_LR:g} or less.",
                effective_batch=effective, learning_rate=lr))
    return found


def fmt_int(value) -> str:
    v = _num(value)
    return str(int(v)) if v is not None and math.isfinite(v) and v == int(v) else str(value)


def check_overfitting(evals: list[Eval], main: str) -> list[Finding]:
    """D401: validation loss rising from its minimum while the training loss falls."""
    known = [(i, e) for i, e in enumerate(evals) if _finite(e.validation_loss)]
    if len(known) < 3:
        return []
    m, low = min(known, key=lambda item: item[1].validation_loss)
    last_i, last = known[-1]
    if m == last_i:
        return []
    rise = last.validation_loss - low.validation_loss
    if rise < OVERFIT_MIN_ABSOLUTE or last.validation_loss < low.validation_loss * (1 + OVERFIT_RISE):
        return []
    train_known = _finite(low.training_loss) and _finite(last.training_loss)
    if train_known and last.training_loss >= low.training_loss:
        return []  # both rising: divergence (D302/D303), not overfitting
    after = [e.validation_loss for _, e in known if _ >= m]
    train_text = (f" while training loss fell {fmt(low.training_loss)} → {fmt(last.training_loss)}" if train_known
                  else " (training loss not logged)")
    evidence = (f"validation loss lowest at {low.where} ({fmt(low.validation_loss)}), then {_series(after[1:])} at "
                f"{last.where} (+{rise / low.validation_loss:.0%}){train_text}.")
    data = {"min_at": low.where, "min": low.validation_loss, "last": last.validation_loss, "epoch": low.epoch}
    if main != "loss":
        a, b = _score(low, main), _score(last, main)
        if a is not None and b is not None and b >= a + OVERFIT_METRIC_GAIN:
            return [finding(
                "D401", f"Validation loss rises from {low.where} but {title(main)} still improves",
                evidence + f" {title(main)} went {fmt(a)} → {fmt(b)} over the same evaluations.",
                "The model grows over-confident on the examples it gets wrong rather than worse at the task; if its "
                "probabilities matter (thresholds, calibration), stop earlier or use the lowest-loss checkpoint.",
                severity=INFO, **data)]
    return [finding(
        "D401", f"Overfitting after {low.where}",
        evidence,
        f"Stop at the minimum: keep the {low.where} checkpoint, or use early stopping (tunecard: early_stopping_patience: "
        "2; Trainer: EarlyStoppingCallback with load_best_model_at_end=True); fewer epochs, weight decay or more data "
        "also help.",
        **data)]


def check_best_not_last_run(evals: list[Eval], best: dict | None, main: str) -> list[Finding]:
    """D402 (info for runs): the saved checkpoint is not the last evaluation; later epochs bought nothing."""
    if not evals or not isinstance(best, dict):
        return []
    last = evals[-1]
    if best.get("step") is None or best.get("step") == last.step:
        return []
    later = [e for e in evals if e.step is not None and e.step > best["step"]]
    metric = best.get("metric") or main
    key = "loss" if metric == "loss" else metric
    where = _where(best.get("epoch"), best.get("step"), 0)
    return [finding(
        "D402", f"The best checkpoint is {where}, not the last evaluation",
        f"{metric} {fmt(best.get('value'))} at {where}; the {len(later)} later evaluation(s) did not beat it "
        f"(last: {last.where}, {metric} {fmt(_score(last, key))}).",
        f"The saved model is already that checkpoint. The later epochs only cost time: train for "
        f"{fmt_epoch(best.get('epoch'))} epochs or set early_stopping_patience: 2.",
        severity=INFO, epoch=best.get("epoch"), step=best.get("step"), metric=metric, value=best.get("value"))]


def check_best_not_last_card(evals: list[Eval], main: str, published: int | None) -> list[Finding]:
    """D402 (cards): the best evaluation is not the last; warning when the last (worse) one was published."""
    scored = [(i, _score(e, main)) for i, e in enumerate(evals)]
    scored = [(i, v) for i, v in scored if v is not None]
    if len(scored) < 2:
        return []
    better = (lambda a, b: a < b) if main == "loss" else (lambda a, b: a > b)
    b_index, b_value = scored[0]
    for i, v in scored[1:]:
        if better(v, b_value):
            b_index, b_value = i, v
    last_index, last_value = scored[-1]
    if b_index == last_index or abs(b_value - last_value) < (BEST_GAP if main != "loss" else b_value * OVERFIT_RISE):
        return []
    best, last = evals[b_index], evals[last_index]
    evidence = (f"{title(main)} {fmt(b_value)} at {best.where}, {fmt(last_value)} at the last evaluation "
                f"({last.where}).")
    data = {"best": best.where, "best_value": b_value, "last": last.where, "last_value": last_value,
            "epoch": best.epoch, "metric": main}
    if published == b_index:
        return [finding(
            "D402", f"The published results are from {best.where}, the best evaluation; later epochs did not help",
            evidence,
            f"Training past {best.where} bought nothing: train for {fmt_epoch(best.epoch)} epochs or use early stopping "
            "(EarlyStoppingCallback, early_stopping_patience: 2).",
            severity=INFO, **data)]
    return [finding(
        "D402", f"The best evaluation was {best.where}, not the last",
        evidence + (" The headline results are the last evaluation's." if published == last_index else ""),
        f"Publish the best checkpoint: load_best_model_at_end=True with metric_for_best_model='{main}' (save and "
        f"evaluate every epoch), or retrain for {fmt_epoch(best.epoch)} epochs; early stopping stops there by itself.",
        **data)]


def check_not_converged(evals: list[Eval], main: str, stopped_early: bool = False) -> list[Finding]:
    """D403: the main metric still rising (or validation loss still falling) at the last evaluation."""
    if stopped_early:
        return []
    scored = [e for e in evals if _score(e, main) is not None]
    if len(scored) < 2:
        return []
    prev, last = scored[-2], scored[-1]
    a, b = _score(prev, main), _score(last, main)
    if main == "loss":
        if not (b <= min(_score(e, main) for e in scored) and a - b >= a * NOT_CONVERGED_LOSS_DROP):
            return []
        change = f"validation loss still falling at the last evaluation: {fmt(a)} → {fmt(b)} ({(b - a) / a:+.0%})"
    else:
        if not (b >= max(_score(e, main) for e in scored) and b - a >= NOT_CONVERGED_DELTA):
            return []
        change = f"{title(main)} still rising at the last evaluation: {fmt(a)} → {fmt(b)} ({b - a:+.4f})"
    return [finding(
        "D403", "Not converged: still improving at the last evaluation",
        f"{change} ({prev.where} → {last.where}).",
        "Train longer (more epochs) with early stopping to find where it levels off; the reported score understates "
        "what this model and data can reach.",
        metric=main, previous=a, last=b, at=last.where)]


# --- collapse -------------------------------------------------------------------------------------------------


def check_run_collapse(task: str | None, metrics: dict, history: dict) -> list[Finding]:
    """D101 / D102 / D104 from the saved model's predictions (per-label predicted counts)."""
    results = {s: metrics.get(s) for s in ("validation", "test") if isinstance(metrics.get(s), dict)}
    if not results and isinstance(history, dict):
        rows = history.get("rows") if isinstance(history.get("rows"), list) else []
        rows = [r for r in rows if isinstance(r, dict)]
        best = history.get("best") if isinstance(history.get("best"), dict) else {}
        chosen = next((r for r in rows if r.get("step") == best.get("step")), rows[-1] if rows else None)
        if chosen:
            results = {"validation (history)": chosen}
    one_class, no_entities, one_type = [], [], []
    for split, result in results.items():
        per_label = result.get("per_label") if isinstance(result.get("per_label"), dict) else {}
        per_label = {str(k): v for k, v in per_label.items() if isinstance(v, dict)}
        if task == NER:
            predicted = _num(result.get("predicted_entities"))
            if predicted is None and per_label and all("predicted" in r for r in per_label.values()):
                predicted = sum(_num(r.get("predicted")) or 0 for r in per_label.values())
            gold = _num(result.get("gold_entities"))
            if gold is None and per_label:
                gold = sum(_num(r.get("support")) or 0 for r in per_label.values())
            if predicted == 0 and (gold or 0) > 0:
                no_entities.append(f"{split}: 0 entities predicted for {fmt_int(gold)} gold entities (precision, recall "
                                   f"and F1 0; token accuracy {fmt(result.get('accuracy'))})")
            elif per_label:
                types = [t for t, r in per_label.items() if (_num(r.get("predicted")) or 0) > 0]
                supported = [t for t, r in per_label.items() if (_num(r.get("support")) or 0) > 0]
                if len(types) == 1 and len(supported) >= 3:
                    one_type.append(f"{split}: only '{types[0]}' entities predicted, of {len(supported)} types in the "
                                    f"gold data ({_counts(per_label, 'support')})")
        else:
            if len(per_label) > 1 and all("predicted" in r for r in per_label.values()):
                predicted = [label for label, r in per_label.items() if (_num(r.get("predicted")) or 0) > 0]
                if len(predicted) == 1:
                    one_class.append(f"{split}: every example predicted '{predicted[0]}' (predicted per label: "
                                     f"{_counts(per_label, 'predicted')})")
    found = []
    if one_class:
        found.append(finding(
            "D101", "The model predicts one class for every example", "; ".join(one_class) + ".", REMEDY_COLLAPSE,
            splits=list(results)))
    if no_entities:
        found.append(finding(
            "D102", "The model predicts no entities (every word O)", "; ".join(no_entities) + ".", REMEDY_NO_ENTITIES,
            splits=list(results)))
    if one_type:
        found.append(finding(
            "D104", "The model predicts a single entity type", "; ".join(one_type) + ".",
            "Train longer or with more examples of the other types; check that their tags are read (IOB2 prefixes, "
            "tag column).", splits=list(results)))
    return found


def _counts(per_label: dict, key: str, limit: int = 8) -> str:
    items = [f"{label} {fmt_int(r.get(key))}" for label, r in per_label.items()]
    return ", ".join(items[:limit]) + (", …" if len(items) > limit else "")


REMEDY_COLLAPSE = ("The model ignores its input. Lower the learning rate (2e-5 to 5e-5; from 1e-3 encoders often "
                   "collapse), train longer, check that the labels reach the model (label column, label2id) and are "
                   "not all one value, and for imbalanced data use class weights or oversample the rare classes.")
REMEDY_NO_ENTITIES = ("The model has only learned that most words are O. Train longer (more epochs or steps), raise the "
                      "learning rate for small models (or lower it if the loss diverged), check that the B-/I- tags are "
                      "read, and compare with the all-O baseline.")


def one_class_signature(p, r, f1, a, tol: float = COLLAPSE_TOLERANCE) -> str | None:
    """How P/R/F1/accuracy look when a classifier predicts one class for everything, or None.

    Binary, positive class predicted everywhere: recall 1, precision = accuracy, F1 = 2a/(1+a). Macro average
    over K classes: recall 1/K, precision a/K, F1 2a/((1+a)K). Weighted average: recall a, precision a², F1
    2a²/(1+a). Negative class everywhere (binary): precision = recall = F1 = 0 with accuracy > 0.
    """
    if a is None or not (0 < a <= 1):
        return None
    if p is not None and r is not None and f1 is not None:
        if max(p, r, f1) <= tol:
            return "precision, recall and F1 0 with accuracy above 0: the positive class is never predicted"
        for k in range(1, COLLAPSE_MAX_CLASSES + 1):
            if abs(r - 1 / k) <= tol and abs(p - a / k) <= tol and abs(f1 - 2 * a / ((1 + a) * k)) <= tol:
                if k == 1:
                    return (f"recall {fmt(r)}, precision {fmt(p)} = accuracy {fmt(a)}, F1 {fmt(f1)} = 2p/(1+p): every "
                            "example is predicted positive")
                return (f"macro recall {fmt(r)} = 1/{k}, precision {fmt(p)} = accuracy/{k}, F1 {fmt(f1)} = "
                        f"2a/((1+a)·{k}): one class of {k} predicted for every example")
        if abs(r - a) <= tol and abs(p - a * a) <= tol and abs(f1 - 2 * a * a / (1 + a)) <= tol and a < 1 - tol:
            return (f"weighted recall {fmt(r)} = accuracy, precision {fmt(p)} = accuracy², F1 {fmt(f1)} = 2a²/(1+a): "
                    "one class predicted for every example")
    return None


def check_card_collapse(task: str | None, values: dict[str, float], evals: list[Eval], card: ParsedCard,
                        tol: float) -> list[Finding]:
    """D101 / D102 from printed numbers (headline, else the published row) and tunecard's predicted counts."""
    found = []
    p, r, f1, a = (values.get(k) for k in METRIC_BASES)
    rows_alike = lambda test: [e.where for e in evals if test(e.metrics)]  # noqa: E731
    zero = lambda m: all(m.get(k) is not None and abs(m[k]) <= tol for k in ("precision", "recall", "f1")) and \
        (m.get("accuracy") or 0) > 0  # noqa: E731
    if task != CLS and zero(values):
        same = rows_alike(zero)
        found.append(finding(
            "D102", "The model predicts no entities" + (" (or, for a classifier, never the positive class)" if task is None
                                                         else ""),
            f"precision {fmt(p)}, recall {fmt(r)}, F1 {fmt(f1)} with accuracy {fmt(a)}"
            + (f"; the same at {len(same)} of {len(evals)} evaluations" if evals else "") + ".",
            REMEDY_NO_ENTITIES, rows=same))
    elif task != NER:
        signature = one_class_signature(p, r, f1, a, tol)
        if signature:
            same = rows_alike(lambda m: one_class_signature(*(m.get(k) for k in METRIC_BASES), tol) is not None)
            found.append(finding(
                "D101", "The numbers are those of a model that predicts one class for everything",
                signature + (f"; the same pattern at {len(same)} of {len(evals)} evaluations" if evals else "") + ".",
                REMEDY_COLLAPSE, rows=same))
        elif p is None and r is None and f1 is not None and a is not None and 0 < a < 1 and \
                abs(f1 - 2 * a / (1 + a)) <= tol:
            found.append(finding(
                "D101", "F1 equals 2a/(1+a): what predicting the positive class everywhere gives",
                f"accuracy {fmt(a)}, F1 {fmt(f1)} = 2·{fmt(a)}/(1+{fmt(a)}); without precision and recall this cannot "
                "be confirmed.",
                REMEDY_COLLAPSE + " Report precision and recall too.", severity=WARNING))
    if card.per_label:
        predicted = {label: cells.get("predicted").number for label, cells in card.per_label.items()
                     if cells.get("predicted") is not None and cells.get("predicted").number is not None}
        if predicted and len(predicted) == len(card.per_label):
            positive = [label for label, n in predicted.items() if n > 0]
            codes = {f.code for f in found}
            if task == NER and not positive and "D102" not in codes:
                found.append(finding("D102", "The model predicts no entities",
                                     "per-entity table: predicted 0 for every type.", REMEDY_NO_ENTITIES))
            elif task != NER and len(positive) == 1 and len(predicted) > 1 and "D101" not in codes:
                found.append(finding("D101", "The model predicts one class for every example",
                                     f"per-label table: only '{positive[0]}' is ever predicted "
                                     f"({', '.join(f'{k} {fmt_int(v)}' for k, v in predicted.items())}).",
                                     REMEDY_COLLAPSE))
    return found


# --- baselines -----------------------------------------------------------------------------------------------


def check_baselines(task: str | None, comparisons: list[tuple[str, dict, list[tuple[str, dict]]]]) -> list[Finding]:
    """D201 / D202: the model's F1 (and, for classifiers, accuracy) against the strongest baseline per split.

    ``comparisons``: (split, model's scores, [(strategy, baseline's scores)]).
    """
    below, near = [], []
    keys = ("f1",) if task == NER else ("f1", "accuracy")
    for split, model, baselines in comparisons:
        for key in keys:
            value = model.get(key)
            candidates = [(name, b.get(key)) for name, b in baselines if _finite(b.get(key))]
            if not _finite(value) or not candidates:
                continue
            name, strongest = max(candidates, key=lambda item: item[1])
            line = f"{split} {title(key)} {fmt(value)} vs the {name} baseline's {fmt(strongest)}"
            if value <= strongest + 1e-9:
                (below if key == "f1" else near).append(line)
            elif value < strongest + BASELINE_MARGIN:
                near.append(line)
    found = []
    remedy = ("The model has learned little beyond the baseline: see the collapse and divergence findings; train longer, "
              "tune the learning rate (2e-5 to 5e-5), check the labels, and get more examples of the rare labels.")
    if below:
        found.append(finding("D201", "The model is not better than a baseline computed from the data",
                             "; ".join(below) + ".", remedy, comparisons=below))
    if near:
        found.append(finding("D202", f"The model is less than {BASELINE_MARGIN:g} above a baseline",
                             "; ".join(near) + ".", remedy, comparisons=near))
    return found


# --- data ------------------------------------------------------------------------------------------------------


def _label_counts(split: dict, task: str | None) -> dict:
    counts = split.get("entities") if task == NER else (split.get("classes") or split.get("labels"))
    if not isinstance(counts, dict):
        counts = split.get("entities") or split.get("classes") or split.get("labels") or {}
    return {str(k): v for k, v in counts.items() if _finite(v)} if isinstance(counts, dict) else {}


def check_run_data(task: str | None, data: dict) -> list[Finding]:
    """D601-D608 from metrics.json's `data`."""
    if not isinstance(data, dict):
        return []
    splits = {k: v for k, v in data.items() if isinstance(v, dict) and "examples" in v}
    found = []
    train = splits.get("train")
    unit = "entities" if task == NER else "examples"
    if train:
        n = _num(train.get("examples"))
        if n is not None and n < TINY_TRAIN:
            found.append(tiny_train(f"{fmt_int(n)} training examples", n))
        counts = _label_counts(train, task)
        if len(counts) >= 2:
            most = max(counts.items(), key=lambda item: item[1])
            least = min(counts.items(), key=lambda item: item[1])
            if least[1] > 0 and most[1] / least[1] >= IMBALANCE_RATIO:
                found.append(finding(
                    "D602", "Strong label imbalance in the training data",
                    f"training {unit}: '{most[0]}' {fmt_int(most[1])} vs '{least[0]}' {fmt_int(least[1])} "
                    f"({most[1] / least[1]:.0f}:1).",
                    "Look at per-label results rather than the average; for classifiers use class weights or "
                    "oversample the rare labels (train_sampling), and collect more examples of them.",
                    severity=INFO if task == NER else WARNING, most=most, least=least))
            rare = {k: v for k, v in counts.items() if v < RARE_LABEL_MIN}
            if rare:
                found.append(finding(
                    "D603", f"Labels with fewer than {RARE_LABEL_MIN} training {unit}",
                    ", ".join(f"{k} {fmt_int(v)}" for k, v in sorted(rare.items(), key=lambda kv: kv[1])) + ".",
                    "Scores for these labels are unreliable (a handful of evaluation examples decide them): collect more "
                    "examples or merge them with a related label.", labels=rare))
        seen = set(counts)
        unseen = []
        for name, split in splits.items():
            if name == "train" or not seen:
                continue
            missing = sorted(set(_label_counts(split, task)) - seen)
            if missing:
                unseen.append(f"{name}: {', '.join(missing)}")
        if unseen:
            found.append(finding(
                "D604", "Evaluation labels never seen in training",
                "; ".join(unseen) + ".",
                "The model cannot predict these: add training examples for them, or drop / map them in the evaluation "
                "data.", splits=unseen))
    long_lines, warn_long, repaired, warn_repaired = [], False, [], False
    for name, split in splits.items():
        encoding = split.get("encoding") if isinstance(split.get("encoding"), dict) else {}
        examples = _num(split.get("examples")) or 0
        if _num(encoding.get("windowed_examples")):
            long_lines.append(f"{name}: {fmt_int(encoding['windowed_examples'])} examples split into "
                              f"{fmt_int(encoding.get('windows'))} windows")
        if _num(encoding.get("truncated_examples")):
            t = _num(encoding["truncated_examples"])
            long_lines.append(f"{name}: {fmt_int(t)} of {fmt_int(examples)} texts truncated")
            warn_long = warn_long or (task != NER and examples and t / examples > TRUNCATED_WARNING)
        if _num(encoding.get("truncated_words")):
            long_lines.append(f"{name}: {fmt_int(encoding['truncated_words'])} words longer than a window kept only "
                              "their first subword")
        r = _num(split.get("repaired"))
        if r:
            repaired.append(f"{name}: {fmt_int(r)} of {fmt_int(examples)} examples")
            warn_repaired = warn_repaired or (examples and r / examples > REPAIRED_WARNING)
    if long_lines:
        found.append(finding(
            "D605", "Examples longer than max_length",
            "; ".join(long_lines) + ".",
            "Windows keep every word scored (NER); truncated classification texts lose their end: raise max_length "
            "(up to the model's limit) if the end of a text matters.",
            severity=WARNING if warn_long else INFO, details=long_lines))
    if repaired:
        found.append(finding(
            "D606", "Invalid tag sequences were repaired",
            "; ".join(repaired) + " had an I- tag with no entity to continue (read as a new entity, as conlleval does).",
            "Check the annotation or the tag scheme setting (IOB1 data read as IOB2 shows up this way).",
            severity=WARNING if warn_repaired else INFO, details=repaired))
    leak = data.get("leakage")
    leaks = [("validation", leak)] if isinstance(leak, dict) else []
    leaks += [(name, split.get("leakage")) for name, split in splits.items() if isinstance(split.get("leakage"), dict)]
    for name, value in leaks:
        f = leakage_finding(value.get("duplicates"), value.get("eval_examples"), name)
        if f:
            found.append(f)
    small_eval = [f"{name}: {fmt_int(split.get('examples'))} examples" for name, split in splits.items()
                  if name != "train" and _finite(split.get("examples")) and split["examples"] < TINY_EVAL]
    if small_eval:
        found.append(tiny_eval(small_eval))
    return found


def tiny_train(what: str, n: float) -> Finding:
    return finding(
        "D601", "A tiny training set",
        f"{what} (fewer than {TINY_TRAIN}).",
        "Fine-tuning this few examples gives unstable results (seed-dependent): collect more data, train several "
        "seeds and report the spread, or start from a model already fine-tuned on a related task.",
        examples=n)


def tiny_eval(lines: list[str]) -> Finding:
    return finding(
        "D608", "A very small evaluation set",
        "; ".join(lines) + f" (under {TINY_EVAL}: one example moves accuracy by more than {1 / TINY_EVAL:.0%}).",
        "Scores this small are noisy: evaluate on a few hundred examples or more, or report a confidence interval.",
        splits=lines)


def _normal_text(text) -> str:
    if isinstance(text, (list, tuple)):
        text = " ".join(str(t) for t in text)
    return " ".join(str(text).split()).casefold()


def leakage_counts(train_texts: Iterable, eval_texts: Iterable) -> dict:
    """{"duplicates": n, "eval_examples": m}: evaluation examples whose text (whitespace- and case-normalized) is in
    training. Texts of fewer than LEAKAGE_MIN_WORDS words are not counted as duplicates. Texts may be strings or
    word lists."""
    train = {_normal_text(t) for t in train_texts}
    duplicates = total = 0
    for text in eval_texts:
        total += 1
        normal = _normal_text(text)
        if len(normal.split()) >= LEAKAGE_MIN_WORDS and normal in train:
            duplicates += 1
    return {"duplicates": duplicates, "eval_examples": total}


def leakage_finding(duplicates, eval_examples, split: str = "validation") -> Finding | None:
    """D607 from counts (as stored in metrics.json data.leakage)."""
    n, m = _num(duplicates), _num(eval_examples)
    if not n or not m or n <= 0:
        return None
    share = n / m
    severity = ERROR if share >= LEAKAGE_ERROR else WARNING if share >= LEAKAGE_WARNING else INFO
    return finding(
        "D607", "Evaluation examples that are also in the training data",
        f"{split}: {fmt_int(n)} of {fmt_int(m)} examples ({share:.1%}) appear verbatim in the training split.",
        "The score overstates performance on new text: remove the duplicates from the evaluation split (or from "
        "training) and evaluate again.", severity=severity, duplicates=n, eval_examples=m, split=split)


def leakage(train_texts: Iterable, eval_texts: Iterable, split: str = "validation") -> Finding | None:
    """D607 for duplicate texts between training and evaluation, or None when there are none."""
    counts = leakage_counts(train_texts, eval_texts)
    return leakage_finding(counts["duplicates"], counts["eval_examples"], split)


# --- environment -----------------------------------------------------------------------------------------------

PACKAGES = {"Transformers": "transformers", "Pytorch": "torch", "Tokenizers": "tokenizers", "Datasets": "datasets"}


def installed_versions() -> dict[str, str]:
    """Installed versions of the packages a card lists (importlib.metadata; absent packages left out)."""
    found = {}
    for label, package in PACKAGES.items():
        try:
            found[label] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _version_tuple(text) -> tuple[int, ...] | None:
    match = re.match(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
    if not match:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def check_versions(card_versions: dict, installed: dict) -> list[Finding]:
    """D701: the card's framework versions against the installed ones (major/minor; 0.x: minor is major)."""
    if not isinstance(card_versions, dict):
        return []
    breaking, minor = [], []
    for label in PACKAGES:
        a, b = card_versions.get(label), installed.get(label)
        ta, tb = _version_tuple(a), _version_tuple(b)
        if not ta or not tb:
            continue
        ta, tb = (ta + (0, 0))[:2], (tb + (0, 0))[:2]
        if ta == tb:
            continue
        line = f"{label} {a} in the card, {b} installed"
        if ta[0] != tb[0] or (ta[0] == 0 and ta[1] != tb[1]):
            (minor if label == "Datasets" else breaking).append(line)
        else:
            minor.append(line)
    if not breaking and not minor:
        return []
    pins = " ".join(f"'{PACKAGES[line.split()[0]]}=={'.'.join(map(str, _version_tuple(line.split()[1])[:2]))}.*'"
                    for line in breaking + minor)
    return [finding(
        "D701", "Framework versions differ from the installed ones",
        "; ".join(breaking + minor) + ("" if breaking else " (minor versions only)") + ".",
        f"If the model does not load or behaves differently (the usual cause), install the card's versions in a fresh "
        f"environment (pip install {pins}) or re-save the model with the current ones.",
        severity=WARNING if breaking else INFO, differences=breaking + minor)]


# --- runs --------------------------------------------------------------------------------------------------------


def _config_get(config, key, default=None):
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def run_evals(history: dict) -> list[Eval]:
    evals = []
    rows = history.get("rows") if isinstance(history, dict) else None
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        if not isinstance(row, dict):
            continue
        evals.append(Eval(
            where=_where(row.get("epoch"), row.get("step"), i),
            epoch=_num(row.get("epoch")),
            step=row.get("step") if isinstance(row.get("step"), int) else None,
            training_loss=_num(row.get("training_loss")),
            training_nolog=row.get("training_loss") is None,
            validation_loss=_num(row.get("validation_loss")),
            metrics={k: float(row[k]) for k in METRIC_BASES if _num(row.get(k)) is not None},
        ))
    return evals


def guarded(checks: list[tuple[str, Callable[[], list[Finding]]]]) -> tuple[list[Finding], list[str]]:
    """Run checks; one that raises (malformed input) is reported as not run instead of stopping the others."""
    found, problems = [], []
    for name, check in checks:
        try:
            found.extend(check() or [])
        except Exception as error:  # the doctor must not crash on a half-written run or card
            problems.append(f"check '{name}' could not run: {type(error).__name__}: {error}")
    return found, problems


def run_report_parts(history: dict, metrics: dict, config) -> tuple[list[Finding], list[str]]:
    history = history if isinstance(history, dict) else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    task = metrics.get("task") or _config_get(config, "task")
    best = history.get("best") if isinstance(history.get("best"), dict) else None
    main = _config_get(config, "metric_for_best_model") or (best or {}).get("metric") or "f1"
    if main not in ("loss", *METRIC_BASES):
        main = "f1"
    evals = run_evals(history)
    steps = [s for s in history.get("steps") or [] if isinstance(s, dict)] \
        if isinstance(history.get("steps"), list) else []

    def not_finite():
        items = []
        for e in evals:
            items += [(e.where, "training loss", e.training_loss), (e.where, "validation loss", e.validation_loss)]
            items += [(e.where, title(k), v) for k, v in e.metrics.items()]
        for s in steps:
            items += [(f"step {s.get('step')}", "step loss", _num(s.get("loss"))),
                      (f"step {s.get('step')}", "gradient norm", _num(s.get("grad_norm")))]
        for split in ("validation", "test"):
            if isinstance(metrics.get(split), dict):
                items.append((split, "loss", _num(metrics[split].get("loss"))))
        return check_not_finite(items)

    def baselines():
        comparisons = []
        for split in ("validation", "test"):
            model = metrics.get(split)
            base = (metrics.get("baselines") or {}).get(split) or {}
            if isinstance(model, dict) and isinstance(base, dict):
                comparisons.append((split, model, [(b.get("strategy", name), b) for name, b in base.items()
                                                   if isinstance(b, dict)]))
        return check_baselines(task, comparisons)

    return guarded([
        ("collapse", lambda: check_run_collapse(task, metrics, history)),
        ("frozen metric", lambda: check_frozen(evals)),
        ("baseline", baselines),
        ("not finite", not_finite),
        ("loss trend", lambda: check_loss_trend(evals, steps)),
        ("learning rate", lambda: check_learning_rate(
            _config_get(config, "learning_rate"), _config_get(config, "train_batch_size"),
            _config_get(config, "gradient_accumulation_steps"))),
        ("overfitting", lambda: check_overfitting(evals, main)),
        ("best not last", lambda: check_best_not_last_run(evals, best, main)),
        ("not converged", lambda: check_not_converged(evals, main, bool(history.get("stopped_early")))),
        ("data", lambda: check_run_data(task, metrics.get("data") or {})),
    ])


def diagnose_run(history: dict, metrics: dict, config) -> list[Finding]:
    """Every run-level check on a run's history.json, metrics.json and config (a dict or a TrainConfig).

    Pure: reads nothing else, never raises (a check that cannot run on malformed input is skipped), errors first.
    """
    try:
        found, _ = run_report_parts(history, metrics, config)
    except Exception:  # malformed beyond what the guarded checks absorb: no diagnosis rather than no card
        return []
    return sort_findings(found)


# --- cards ---------------------------------------------------------------------------------------------------------


def _tolerance(cells: Iterable[Cell | None], floor: float) -> float:
    """Allowed difference for values as printed. The Trainer prints a value with at most 4 decimals as is
    ('0.5' is 0.5), so fewer digits only mean rounding when every value has the same few (hand-rounded: 0.93,
    0.95, 0.94), and then one unit of the last digit is allowed."""
    decimals = {c.decimals for c in cells if c is not None and c.decimals is not None}
    if len(decimals) == 1:
        d = decimals.pop()
        if d < 4:
            return max(floor, 10.0 ** -d)
    return floor


def _metric_keys(keys: Iterable[str]) -> list[str]:
    return [k for k in keys if metric_base(k)]


def _scales(card: ParsedCard) -> tuple[dict[str, float], list[Finding]]:
    """D506 / D507: metric values outside [0, 1]; a whole source printed in percent is rescaled instead."""
    sources = {
        "headline": [card.headline[k] for k in _metric_keys(card.headline)],
        "training results": [row[k] for row in (card.table.rows if card.table else []) for k in
                             _metric_keys(card.table.keys) if k in row],
        "model-index": [c for entry in card.model_index for k, c in entry["metrics"].items() if metric_base(k)],
    }
    scales, percent, bad = {}, [], []
    for name, cells in sources.items():
        values = [c.value for c in cells if c.kind == "number"]
        scales[name] = 1.0
        above = [v for v in values if v > 1]
        if above and max(values) <= 100 and min(values) >= 0 and len(above) >= len(values) / 2:
            scales[name] = 0.01
            percent.append(name)
            continue
        bad += [f"{name}: {c.raw}" for c in cells if c.kind == "number" and not 0 <= c.value <= 1]
    losses = [("headline", card.headline.get("loss"))]
    if card.table:
        losses += [("training results", row.get(k)) for row in card.table.rows for k in ("training_loss", "validation_loss")]
    bad += [f"{name} loss: {c.raw}" for name, c in losses if c is not None and c.kind == "number" and c.value < 0]
    found = []
    if bad:
        found.append(finding(
            "D506", "Metrics outside [0, 1] (or a negative loss)",
            "; ".join(bad[:8]) + (f" (and {len(bad) - 8} more)" if len(bad) > 8 else "") + ".",
            "Precision, recall, F1 and accuracy are fractions and losses are not negative: these numbers were "
            "mistyped or computed wrongly; regenerate the card from the evaluation logs.", values=bad))
    if percent:
        found.append(finding(
            "D507", "Metrics printed as percentages",
            f"{', '.join(percent)}: values between 1 and 100; read as percent.",
            "Print metrics as fractions (0.9425) as the Trainer and the Hub's model-index do, or say '%' in the card.",
            severity=INFO, sources=percent))
    return scales, found


def card_evals(card: ParsedCard, scale: float) -> list[Eval]:
    evals = []
    if not card.table:
        return evals
    mains = main_metric_keys(card.table.keys)
    for i, row in enumerate(card.table.rows):
        epoch_cell, step_cell = row.get("epoch"), row.get("step")
        epoch = epoch_cell.number if epoch_cell else None
        step = step_cell.number if step_cell else None
        where = " ".join(filter(None, [f"epoch {epoch_cell.raw.strip()}" if epoch is not None else "",
                                       (f"(step {int(step)})" if epoch is not None else f"step {int(step)}")
                                       if step is not None else ""])) or f"row {i + 1}"
        training = row.get("training_loss")
        validation = row.get("validation_loss")
        evals.append(Eval(
            where=where, epoch=epoch, step=int(step) if step is not None else None,
            training_loss=training.value if training is not None and training.kind in ("number", "nan", "inf") else None,
            training_nolog=training is not None and training.kind == "nolog",
            validation_loss=validation.value if validation is not None and validation.kind in ("number", "nan", "inf")
            else None,
            metrics={base: row[key].value * scale for base, key in mains.items()
                     if row.get(key) is not None and row[key].kind == "number"},
        ))
    return evals


def match_headline(card: ParsedCard, scales: dict) -> tuple[list[int], list[str]]:
    """Rows whose values equal the headline's (within printing precision), and the keys compared."""
    if not card.table or not card.headline:
        return [], []
    pairs = []
    for key, cell in card.headline.items():
        column = "validation_loss" if key == "loss" else key
        if column in card.table.keys and cell.kind == "number" and column not in ("epoch", "step"):
            pairs.append((key, column))
    if not pairs:
        return [], []
    matches = []
    for i, row in enumerate(card.table.rows):
        ok = True
        compared = 0
        for key, column in pairs:
            a, b = card.headline[key], row.get(column)
            if b is None or b.kind != "number":
                continue
            sa = scales["headline"] if metric_base(key) else 1.0
            sb = scales["training results"] if metric_base(column) else 1.0
            tol = max(_half_unit(a) * sa, _half_unit(b) * sb) + 1e-9
            compared += 1
            if abs(a.value * sa - b.value * sb) > tol:
                ok = False
                break
        if ok and compared:
            matches.append(i)
    return matches, [k for k, _ in pairs]


def _half_unit(cell: Cell) -> float:
    """Half a unit of the last printed digit (the rounding error of a printed value)."""
    if cell.decimals is not None:
        return 0.5 * 10 ** -cell.decimals
    return 1e-6 * max(abs(cell.value), 1.0)


def _row_text(card: ParsedCard, i: int, keys: list[str]) -> str:
    row = card.table.rows[i]
    parts = []
    for key in keys:
        column = "validation_loss" if key == "loss" else key
        if row.get(column) is not None:
            parts.append(f"{card.headline_names.get(key, key)} {row[column].raw}")
    return ", ".join(parts)


def check_headline(card: ParsedCard, scales: dict, evals: list[Eval]) -> tuple[list[Finding], int | None]:
    """D501 / D502: which row the headline results are; returns the published row index too."""
    if not card.table or not card.table.rows:
        return [], card.table.marked if card.table else None
    last = len(card.table.rows) - 1
    matches, keys = match_headline(card, scales)
    if not keys:
        return [], card.table.marked if card.table.marked is not None else last
    head = ", ".join(f"{card.headline_names.get(k, k)} {card.headline[k].raw}" for k in keys)
    if last in matches:
        return [], last
    if matches:
        i = matches[-1]
        marked = card.table.marked == i
        return [finding(
            "D501", f"The headline results are from {evals[i].where}, not the last row",
            f"headline {head} = the row of {evals[i].where}; the last row ({evals[last].where}) has "
            f"{_row_text(card, last, keys)}." + (" The card marks that row as the saved checkpoint." if marked else ""),
            "Say in the card which checkpoint the results and the weights are (e.g. 'the best checkpoint, epoch 2, "
            "load_best_model_at_end'), so that readers do not take the last row for the model.",
            severity=INFO if marked else WARNING, row=evals[i].where, last=evals[last].where)], i
    closest = None
    if evals:
        def distance(i):
            total = 0.0
            for key in keys:
                column = "validation_loss" if key == "loss" else key
                cell = card.table.rows[i].get(column)
                if cell is not None and cell.kind == "number":
                    total += abs(cell.value - card.headline[key].value)
            return total
        closest = min(range(len(card.table.rows)), key=distance)
    return [finding(
        "D502", "The headline results match no row of the training results",
        f"headline {head}; closest row {evals[closest].where}: {_row_text(card, closest, keys)}."
        if closest is not None else f"headline {head}.",
        "The headline cannot be traced to any evaluation in the table: if it comes from another split or a later "
        "evaluation, say which; otherwise regenerate the card from the training logs.",
        closest=evals[closest].where if closest is not None else None)], None


def check_nolog(card: ParsedCard, evals: list[Eval]) -> list[Finding]:
    """D503: 'No log' training losses (and the same logged value repeated)."""
    if not evals or not card.table or "training_loss" not in card.table.keys:
        return []
    nolog = [e.where for e in evals if e.training_nolog]
    repeated = [evals[i].where for i in range(1, len(evals))
                if _finite(evals[i].training_loss) and evals[i].training_loss == evals[i - 1].training_loss]
    if not nolog and not repeated:
        return []
    first_step = next((e.step for e in evals if e.step), None)
    parts = []
    if nolog:
        parts.append(f"Training Loss 'No log' at {len(nolog)} of {len(evals)} evaluations ({', '.join(nolog[:5])}"
                     f"{', …' if len(nolog) > 5 else ''})")
    if repeated:
        parts.append(f"the same training loss repeated at {', '.join(repeated[:5])} (a stale logged value)")
    return [finding(
        "D503", "The training loss was not logged for every evaluation",
        "; ".join(parts) + ".",
        "The Trainer logs the training loss every logging_steps (500 by default)"
        + (f", more than the {first_step} steps to the first evaluation" if first_step and first_step < 500 else "")
        + ": set logging_strategy='epoch' (or logging_steps at most the steps between evaluations) so that overfitting "
        "and divergence can be seen.",
        severity=WARNING if len(nolog) == len(evals) else INFO, rows=nolog, repeated=repeated)]


def check_copied(card: ParsedCard) -> list[Finding]:
    """D504: a loss printed where a metric should be (same value in a loss and a metric column of one row)."""
    hits = []
    if card.table:
        losses = [k for k in ("training_loss", "validation_loss") if k in card.table.keys]
        metrics = _metric_keys(card.table.keys)
        for i, row in enumerate(card.table.rows):
            for loss in losses:
                a = row.get(loss)
                if a is None or a.kind != "number" or a.value in (0.0, 1.0):
                    continue
                for key in metrics:
                    b = row.get(key)
                    if b is not None and b.kind == "number" and b.raw.strip() == a.raw.strip():
                        hits.append(f"row {i + 1}: {_column(card, loss)} = {_column(card, key)} = {a.raw.strip()}")
        known = [(row.get("training_loss"), row.get("validation_loss")) for row in card.table.rows]
        known = [(a, b) for a, b in known if a is not None and b is not None and a.kind == b.kind == "number"]
        if len(known) >= 2 and all(a.raw.strip() == b.raw.strip() for a, b in known):
            hits.append(f"Training Loss = Validation Loss in all {len(known)} rows")
    loss = card.headline.get("loss")
    if loss is not None and loss.kind == "number" and loss.value not in (0.0, 1.0):
        for key in _metric_keys(card.headline):
            cell = card.headline[key]
            if cell.kind == "number" and cell.raw.strip() == loss.raw.strip():
                hits.append(f"headline: Loss = {card.headline_names.get(key, key)} = {loss.raw.strip()}")
    if not hits:
        return []
    return [finding(
        "D504", "A value copied across columns",
        "; ".join(hits[:8]) + (f" (and {len(hits) - 8} more)" if len(hits) > 8 else "") + ".",
        "A loss and a metric cannot be the same number by chance in every such place: the table was built wrongly "
        "(shifted or duplicated columns, e.g. compute_metrics returning the loss under a metric name). Regenerate the "
        "card from the evaluation logs.", places=hits)]


def _column(card: ParsedCard, key: str) -> str:
    if card.table and key in card.table.keys[: len(card.table.columns)]:
        return card.table.columns[card.table.keys.index(key)]
    return key.replace("_", " ").title()


def check_harmonic(card: ParsedCard, task: str | None, scales: dict) -> list[Finding]:
    """D505: F1 should be 2PR/(P+R) (exact for micro / binary; an average of F1s is at most that)."""
    sources = []
    if card.headline:
        sources.append(("headline", card.headline, scales["headline"]))
    if card.table:
        for i, row in enumerate(card.table.rows):
            sources.append((f"row {i + 1}", row, scales["training results"]))
    above, below_strict, below_averaged = [], [], []
    for where, cells, scale in sources:
        keys = list(cells)
        for f1_key in [k for k in keys if metric_base(k) == "f1"]:
            p_key, r_key = f1_key.replace("f1", "precision"), f1_key.replace("f1", "recall")
            p, r, f = cells.get(p_key), cells.get(r_key), cells.get(f1_key)
            if not all(c is not None and c.kind == "number" for c in (p, r, f)):
                continue
            pv, rv, fv = p.value * scale, r.value * scale, f.value * scale
            hm = 2 * pv * rv / (pv + rv) if pv + rv > 0 else 0.0
            tol = _tolerance([p, r, f], F1_TOLERANCE)
            if abs(fv - hm) <= tol:
                continue
            name = f1_key.replace("_", " ")
            line = f"{where}: {name} {f.raw.strip()} vs 2PR/(P+R) = {hm:.4f} (P {p.raw.strip()}, R {r.raw.strip()})"
            if fv > hm:
                above.append(line)
            elif averaging(f1_key) in ("macro", "weighted", "samples") or (task == CLS and averaging(f1_key) != "micro"):
                below_averaged.append(line)
            else:
                below_strict.append(line)
    found = []
    if above or below_strict:
        lines = above + below_strict
        found.append(finding(
            "D505", "F1 is not the harmonic mean of precision and recall",
            "; ".join(lines[:6]) + (f" (and {len(lines) - 6} more)" if len(lines) > 6 else "") + ".",
            "For entity-level (micro) and binary scores F1 = 2PR/(P+R) exactly, and no average of F1s can exceed it: "
            "the columns were mixed up or computed with different settings; regenerate them from one evaluation.",
            places=lines))
    elif below_averaged:
        found.append(finding(
            "D505", "F1 is below the harmonic mean of precision and recall: an average of per-label F1s",
            "; ".join(below_averaged[:6]) + ".",
            "Consistent with macro or weighted averaging (the mean of per-label F1s is at most the harmonic mean of the "
            "mean precision and recall); say which average the card reports.",
            severity=INFO, places=below_averaged))
    return found


def check_identical_rows(card: ParsedCard) -> list[Finding]:
    """D508: two rows with the same values in every column but epoch / step."""
    if not card.table or len(card.table.rows) < 2:
        return []
    keys = [k for k in card.table.keys if k not in ("epoch", "step", "saved")]
    seen: dict[tuple, int] = {}
    pairs = []
    for i, row in enumerate(card.table.rows):
        values = tuple(row[k].raw.strip() if row.get(k) is not None else "" for k in keys)
        if sum(1 for k in keys if row.get(k) is not None and row[k].kind == "number") < 2:
            continue
        if values in seen:
            pairs.append((seen[values], i))
        else:
            seen[values] = i
    if not pairs:
        return []
    return [finding(
        "D508", "Identical rows in the training results",
        "; ".join(f"row {a + 1} = row {b + 1}" for a, b in pairs[:6]) + " (every loss and metric equal).",
        "Two evaluations never give exactly the same loss and scores unless the model did not change (learning rate 0, "
        "frozen weights) or a row was copied: check the schedule (warmup longer than training?) and the logs.",
        pairs=[[a + 1, b + 1] for a, b in pairs])]


def check_model_index(card: ParsedCard, scales: dict) -> list[Finding]:
    """D509: the YAML model-index values against the headline list."""
    if not card.model_index or not card.headline:
        return []
    entries = [e for e in card.model_index if str(e.get("split") or "").lower() in ("validation", "eval", "dev", "")]
    if not entries and len(card.model_index) == 1:
        entries = card.model_index
    differences = []
    for entry in entries[:1]:
        for key, cell in entry["metrics"].items():
            head = card.headline.get(key)
            if head is None or head.kind != "number" or cell.kind != "number":
                continue
            a = head.value * (scales["headline"] if metric_base(key) else 1)
            b = cell.value * (scales["model-index"] if metric_base(key) else 1)
            if abs(a - b) > _tolerance([head, cell], 1e-3):
                differences.append(f"{card.headline_names.get(key, key)}: headline {head.raw.strip()}, model-index "
                                   f"{cell.raw.strip()}")
    if not differences:
        return []
    return [finding(
        "D509", "The YAML model-index disagrees with the headline results",
        "; ".join(differences) + ".",
        "The Hub shows the model-index numbers in its widgets and leaderboards: make them the same evaluation as the "
        "headline (regenerate the card, or edit one to match the other and say which split it is).",
        differences=differences)]


def check_card_data(card: ParsedCard, evals: list[Eval]) -> list[Finding]:
    """D601 from steps per epoch x batch size; tunecard cards also from their data table (via baselines' splits)."""
    found = []
    total = card.hyper_float("total_train_batch_size")
    batch = card.hyper_float("train_batch_size")
    accumulation = card.hyper_float("gradient_accumulation_steps") or 1
    effective = total or (batch * accumulation if batch else None)
    if card.data_examples:
        n = card.data_examples.get("train")
        if n is not None and n < TINY_TRAIN:
            found.append(tiny_train(f"{fmt_int(n)} training examples (data table)", n))
        small = [f"{split}: {fmt_int(n)} examples" for split, n in card.data_examples.items()
                 if split != "train" and n < TINY_EVAL]
        if small:
            found.append(tiny_eval(small))
        return found
    candidates = [e for e in evals if e.epoch and e.step and e.epoch > 0]
    if effective and candidates:
        e = candidates[-1]
        per_epoch = math.ceil(e.step / e.epoch - 1e-6)
        examples = per_epoch * effective
        if examples < TINY_TRAIN:
            found.append(tiny_train(
                f"{e.where}: about {per_epoch} steps per epoch × batch {fmt_int(effective)} = at most "
                f"{fmt_int(examples)} training examples", examples))
    return found


def card_findings(card: ParsedCard, installed: dict | None = None) -> tuple[list[Finding], list[str]]:
    """Every card check; returns (findings, checks that could not run)."""
    scales, range_findings = _scales(card)
    evals = card_evals(card, scales["training results"])
    mains = main_metric_keys(card.table.keys) if card.table else {}
    main = next((b for b in ("f1", "accuracy", "precision", "recall") if b in mains), "loss")
    head_mains = main_metric_keys(card.headline)
    state = {"published": None}

    def headline():
        found, published = check_headline(card, scales, evals)
        state["published"] = published
        return found

    def values() -> tuple[dict[str, float], float]:
        if head_mains:
            cells = {b: card.headline[k] for b, k in head_mains.items()}
            scale = scales["headline"]
        elif evals:
            i = state["published"] if state["published"] is not None else len(evals) - 1
            cells = {b: card.table.rows[i][k] for b, k in mains.items() if card.table.rows[i].get(k) is not None}
            scale = scales["training results"]
        else:
            return {}, COLLAPSE_TOLERANCE
        numbers = {b: c.value * scale for b, c in cells.items() if c.kind == "number"}
        return numbers, _tolerance(cells.values(), COLLAPSE_TOLERANCE)

    def collapse():
        numbers, tol = values()
        return check_card_collapse(card.task, numbers, evals, card, tol)

    def not_finite():
        items = [("headline", card.headline_names.get(k, k), c.value) for k, c in card.headline.items()
                 if c.kind in ("nan", "inf")]
        if card.table:
            for e, row in zip(evals, card.table.rows):
                items += [(e.where, _column(card, k), c.value) for k, c in row.items() if c.kind in ("nan", "inf")]
        return check_not_finite(items)

    def baselines():
        comparisons = []
        splits = {}
        for row in card.baselines:
            splits.setdefault(row["split"], {"model": None, "baselines": []})
            scores = {k: c.number for k, c in row["metrics"].items() if c.number is not None}
            if row["is_model"]:
                splits[row["split"]]["model"] = scores
            else:
                splits[row["split"]]["baselines"].append((row["predictor"].replace(" baseline", ""), scores))
        for split, parts in splits.items():
            if parts["model"]:
                comparisons.append((split, parts["model"], parts["baselines"]))
        return check_baselines(card.task, comparisons)

    def hyper():
        return check_learning_rate(card.hyper_float("learning_rate"), card.hyper_float("train_batch_size"),
                                   card.hyper_float("gradient_accumulation_steps"),
                                   card.hyper_float("total_train_batch_size"))

    found, problems = guarded([
        ("range", lambda: range_findings),
        ("headline", headline),
        ("collapse", collapse),
        ("frozen metric", lambda: check_frozen(evals)),
        ("baseline", baselines),
        ("not finite", not_finite),
        ("loss trend", lambda: check_loss_trend(evals)),
        ("learning rate", hyper),
        ("overfitting", lambda: check_overfitting(evals, main)),
        ("best not last", lambda: check_best_not_last_card(evals, main, state["published"])),
        ("not converged", lambda: check_not_converged(evals, main)),
        ("no log", lambda: check_nolog(card, evals)),
        ("copied values", lambda: check_copied(card)),
        ("harmonic mean", lambda: check_harmonic(card, card.task, scales)),
        ("identical rows", lambda: check_identical_rows(card)),
        ("model-index", lambda: check_model_index(card, scales)),
        ("data", lambda: check_card_data(card, evals)),
        ("environment", lambda: check_versions(card.versions, installed_versions() if installed is None else installed)),
    ])
    return sort_findings(found), problems


__all__ = [
    "diagnose_run", "card_findings", "leakage", "leakage_counts", "leakage_finding", "installed_versions",
    "check_versions", "CHECKED_RUN", "CHECKED_CARD", "FAMILIES",
]
