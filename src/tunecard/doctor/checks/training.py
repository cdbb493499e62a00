"""D4xx overfitting / convergence: validation loss rising, the best evaluation not the last, still improving."""

from __future__ import annotations

import math

from ..findings import INFO, Finding, finding
from .common import (
    BEST_GAP,
    BEST_GAP_NOISE,
    OVERFIT_TRAIN_DROP,
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
    best_rows,
    fmt,
    fmt_epoch,
    lower_is_better,
    title,
    typical_change,
)

# --- curves: the evaluations over training ------------------------------------------------------------------


def _fitted_rise(values: list[float]) -> float:
    """The least-squares slope of the values against their position, times their span: how much they rose."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    var = sum((x - mean_x) ** 2 for x in range(n))
    return sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / var * (n - 1)


def check_overfitting(evals: list[Eval], main: str, published: int | None = None) -> list[Finding]:
    """D401: validation loss rising from its minimum while the training loss falls.

    Rising: the last validation loss at least OVERFIT_RISE above the minimum, which is not the last, and a rising
    trend after it (not one noisy value). Severity: warning; info when the main metric is still improving at the
    last evaluation (unless the training loss fell more than OVERFIT_TRAIN_DROP times: memorizing all the same), or
    when the published results are the checkpoint at the minimum or at the best score (the rise cost nothing but
    time). Not reported when the training loss rose too (divergence, D302 / D303)."""
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
    after = [e.validation_loss for i, e in known if i >= m]
    if _fitted_rise(after) < OVERFIT_RISE * low.validation_loss:
        return []  # the loss wanders around its minimum: noise, not a trend
    trained = [e.training_loss for e in evals if _finite(e.training_loss)]
    train_known = _finite(low.training_loss) and _finite(last.training_loss)
    if train_known and last.training_loss >= low.training_loss:
        return []  # both rising: divergence (D302/D303), not overfitting
    drop = trained[0] / trained[-1] if len(trained) >= 2 and trained[-1] > 0 else None
    train_text = (f" while training loss fell {fmt(trained[0])} → {fmt(trained[-1])}"
                  + (f" ({drop:.0f}x)" if drop and drop >= 3 else "") if len(trained) >= 2 and trained[-1] < trained[0]
                  else " (training loss not logged)" if not trained else "")
    evidence = (f"validation loss lowest at {low.where} ({fmt(low.validation_loss)}), then {_series(after[1:])} at "
                f"{last.where} (+{rise / low.validation_loss:.0%}){train_text}.")
    data = {"min_at": low.where, "min": low.validation_loss, "last": last.validation_loss, "epoch": low.epoch,
            "training_drop": drop}
    if published is not None and published != last_i and published in best_rows(evals):
        return [finding(
            "D401", f"Validation loss rises after {low.where}; the published checkpoint is from before",
            evidence + f" The published results are {evals[published].where}'s, a best checkpoint.",
            "The later epochs only cost time: train for fewer epochs or use early stopping (EarlyStoppingCallback with "
            "load_best_model_at_end=True).", severity=INFO, **data)]
    memorizing = drop is not None and drop > OVERFIT_TRAIN_DROP
    if main != "loss" and not memorizing:
        a, b = _score(low, main), _score(last, main)
        scores = [_score(e, main) for e in evals if _score(e, main) is not None]
        higher = not lower_is_better(main)
        best = (max(scores) if higher else min(scores)) if scores else None
        improving = (a is not None and b is not None and best is not None and
                     ((b >= a + OVERFIT_METRIC_GAIN and b >= best - 1e-9) if higher else
                      (b <= a - OVERFIT_METRIC_GAIN and b <= best + 1e-9)))
        if improving:
            return [finding(
                "D401", f"Validation loss rises from {low.where} but {title(main)} still improves",
                evidence + f" {title(main)} went {fmt(a)} → {fmt(b)} over the same evaluations.",
                "The model grows over-confident on the examples it gets wrong rather than worse at the task; if its "
                "probabilities matter (thresholds, calibration), stop earlier or use the lowest-loss checkpoint.",
                severity=INFO, **data)]
    score_text = ""
    if main != "loss":
        a, b = _score(low, main), _score(last, main)
        if a is not None and b is not None:
            score_text = f" {title(main)} {fmt(a)} → {fmt(b)}."
    return [finding(
        "D401", f"Overfitting after {low.where}",
        evidence + score_text,
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


def check_best_not_last_card(evals: list[Eval], main: str, published: int | None,
                             exclude: set[int] | None = None, traced: bool = True,
                             eval_size: int | None = None) -> list[Finding]:
    """D402 (cards): the best evaluation is not the one published.

    One-class evaluations (``exclude``) are never the best: a collapsed model can have the best F1. Warning when
    the published row is the last (or any row that is no best checkpoint) and the best beats it by BEST_GAP, and
    either the last is the worst evaluation after the best or the gap is BEST_GAP_NOISE times the usual change
    between evaluations (a best that is one lucky evaluation is noise); info otherwise, and when the headline
    matches no row (``traced`` False: what was published is not known, D502 says so), and when the evaluation set
    is tiny (``eval_size``: D608's n) and the gap is within one standard error of a score on n examples,
    sqrt(p(1-p)/n): one or two examples of a few dozen."""
    exclude = exclude or set()
    scored = [(i, _score(e, main)) for i, e in enumerate(evals) if i not in exclude]
    scored = [(i, v) for i, v in scored if v is not None]
    if len(scored) < 2:
        return []
    lower = lower_is_better(main)
    better = (lambda a, b: a < b) if lower else (lambda a, b: a > b)
    b_index, b_value = scored[0]
    for i, v in scored[1:]:
        if better(v, b_value):
            b_index, b_value = i, v
    target = published if published is not None and published in dict(scored) else scored[-1][0]
    t_value = dict(scored)[target]
    gap = abs(b_value - t_value)
    if b_index == target or gap < (BEST_GAP if not lower else abs(b_value) * OVERFIT_RISE):
        return []
    best, chosen = evals[b_index], evals[target]
    after = [v for i, v in scored if i > b_index]
    worst_after = bool(after) and (t_value >= max(after) if lower else t_value <= min(after))
    noise = typical_change([v for _, v in scored])
    is_best = target in best_rows(evals, exclude)
    p = (b_value + t_value) / 2
    within_error = (bool(eval_size) and not lower and 0 < p < 1
                    and gap <= math.sqrt(p * (1 - p) / eval_size) + 1e-9)
    evidence = (f"{title(main)} {fmt(b_value)} at {best.where}, {fmt(t_value)} at "
                + ("the published " if published is not None else "the last ") + f"evaluation ({chosen.where})"
                + (f"; evaluations differ by {fmt(noise)} from one to the next" if noise else "") + ".")
    data = {"best": best.where, "best_value": b_value, "last": chosen.where, "last_value": t_value,
            "epoch": best.epoch, "metric": main}
    if (is_best and target != len(evals) - 1 or not traced or within_error
            or not (worst_after or gap >= BEST_GAP_NOISE * noise)):
        why = (f" The difference is within one standard error of a score on about {eval_size} evaluation examples "
               f"({math.sqrt(p * (1 - p) / eval_size):.3f}, D608): noise." if within_error else
               " The difference is within the evaluations' ups and downs." if not is_best else "")
        return [finding(
            "D402", f"The best {title(main)} was at {best.where}, not in the published results",
            evidence + why,
            f"Training past {best.where} bought nothing: train for {fmt_epoch(best.epoch)} epochs or use early stopping "
            "(EarlyStoppingCallback, early_stopping_patience: 2).", severity=INFO, **data)]
    return [finding(
        "D402", f"The best evaluation was {best.where}, not the published one",
        evidence,
        f"Publish the best checkpoint: load_best_model_at_end=True with metric_for_best_model='{main}' (save and "
        f"evaluate every epoch), or retrain for {fmt_epoch(best.epoch)} epochs; early stopping stops there by itself.",
        **data)]


def check_not_converged(evals: list[Eval], main: str, stopped: bool = False) -> list[Finding]:
    """D403: the main metric still rising (or validation loss still falling) at the last evaluation.

    Rising: by NOT_CONVERGED_DELTA (or the loss by NOT_CONVERGED_LOSS_DROP) at the last evaluation, to its best, by
    more than the usual change between evaluations, and with the validation loss not rising at the end (a loss that
    rises again says the model is past its best, not short of training). A run stopped on purpose (early stopping,
    a search's pruner) is not reported: it was not meant to go on."""
    if stopped:
        return []
    scored = [e for e in evals if _score(e, main) is not None]
    if len(scored) < 2:
        return []
    prev, last = scored[-2], scored[-1]
    a, b = _score(prev, main), _score(last, main)
    values = [_score(e, main) for e in scored]
    losses = [e.validation_loss for e in evals if _finite(e.validation_loss)]
    if main != "loss" and len(losses) >= 2 and losses[-1] > losses[-2] and \
            losses[-1] >= min(losses) * (1 + OVERFIT_RISE / 2):
        return []
    if lower_is_better(main):
        if not (b <= min(values) and a - b >= abs(a) * NOT_CONVERGED_LOSS_DROP):
            return []
        change = (f"{'validation loss' if main == 'loss' else title(main)} still falling at the last evaluation: "
                  f"{fmt(a)} → {fmt(b)} ({(b - a) / a:+.0%})")
    else:
        if not (b >= max(values) and b - a >= NOT_CONVERGED_DELTA and b - a > typical_change(values[:-1])):
            return []
        change = f"{title(main)} still rising at the last evaluation: {fmt(a)} → {fmt(b)} ({b - a:+.4f})"
    return [finding(
        "D403", "Not converged: still improving at the last evaluation",
        f"{change} ({prev.where} → {last.where}).",
        "Train longer (more epochs) with early stopping to find where it levels off; the reported score understates "
        "what this model and data can reach.",
        metric=main, previous=a, last=b, at=last.where)]
