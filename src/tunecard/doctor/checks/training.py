"""D4xx overfitting / convergence: validation loss rising, the best evaluation not the last, still improving."""

from __future__ import annotations

from ..findings import INFO, Finding, finding
from .common import (
    BEST_GAP,
    NOT_CONVERGED_DELTA,
    NOT_CONVERGED_LOSS_DROP,
    OVERFIT_METRIC_GAIN,
    OVERFIT_MIN_ABSOLUTE,
    OVERFIT_RISE,
    Eval,
    _finite,
    _score,
    _series,
    _where,
    fmt,
    fmt_epoch,
    title,
)

# --- curves: the evaluations over training ------------------------------------------------------------------


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


def check_not_converged(evals: list[Eval], main: str, stopped: bool = False) -> list[Finding]:
    """D403: the main metric still rising (or validation loss still falling) at the last evaluation.

    A run stopped on purpose (early stopping, a search's pruner) is not reported: it was not meant to go on."""
    if stopped:
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
