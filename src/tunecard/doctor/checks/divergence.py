"""D3xx divergence: NaN / inf losses, a training loss that rises, a learning rate too high for the batch."""

from __future__ import annotations

import math

from ..findings import INFO, Finding, finding
from .common import (
    BEST_GAP,
    LOSS_RISE_TOLERANCE,
    LR_HIGH,
    SMALL_BATCH,
    SMALL_BATCH_MAX_LR,
    STEP_TAIL_SHARE,
    TRAIN_RISE_MIN_EVALS,
    TRAIN_RISE_MIN_RELATIVE,
    Eval,
    _finite,
    _num,
    _score,
    _series,
    fmt,
    fmt_int,
    lr_advice,
)

# --- curves: the evaluations over training ------------------------------------------------------------------


TRAINING = "training"
EVALUATION = "evaluation"


def check_not_finite(items: list[tuple], lr=None) -> list[Finding]:
    """D301 (a NaN / inf training loss, step loss or gradient norm: training diverged) or D306 (the validation loss
    or a metric is NaN while training went on: the evaluation pass is broken). ``items``: (where, what, value) or
    (where, what, value, kind) with kind TRAINING or EVALUATION (default: training when 'what' names a training loss,
    a step loss or a gradient norm)."""
    bad_training, bad_evaluation, finite_training = [], [], []
    for item in items:
        where, what, v = item[:3]
        kind = item[3] if len(item) > 3 else (TRAINING if any(w in str(what).lower() for w in (
            "training", "train ", "train loss", "step loss", "gradient")) else EVALUATION)
        value = _num(v)
        if value is None:
            continue
        if math.isfinite(value):
            if kind == TRAINING:
                finite_training.append((where, value))
            continue
        (bad_training if kind == TRAINING else bad_evaluation).append((where, what, value))
    if bad_training:
        bad = bad_training + bad_evaluation
        shown = "; ".join(f"{what} {fmt(v)} at {where}" for where, what, v in bad[:6])
        more = f" (and {len(bad) - 6} more)" if len(bad) > 6 else ""
        return [finding(
            "D301", "The training loss is NaN or infinite: training diverged",
            f"{shown}{more}.",
            ("Keep gradient clipping on (max_grad_norm 1.0), use warmup (warmup_ratio 0.1), and with fp16 switch to "
             "bf16 or fp32 (fp16 overflows); look for empty or label-less examples. " + lr_advice(lr)).strip(),
            places=[{"where": w, "what": what, "value": v} for w, what, v in bad])]
    if not bad_evaluation:
        return []
    wheres = list(dict.fromkeys(where for where, _, _ in bad_evaluation if where != "headline"))
    in_headline = any(where == "headline" for where, _, _ in bad_evaluation)
    names: dict[str, str] = {}  # 'Validation Loss' (a column) and 'validation loss' (the headline's) are one
    for _, what, _ in bad_evaluation:
        names.setdefault(str(what).lower(), str(what).lower() if "loss" in str(what).lower() else str(what))
    whats = sorted(names.values(), key=lambda w: ("loss" not in w, w))
    kinds = " or ".join(sorted({"nan" if math.isnan(v) else "infinite" for _, _, v in bad_evaluation}, reverse=True))
    trained = [v for _, v in finite_training]
    training = (f" while the training loss went {_series(trained)}" if len(trained) >= 2 else "")
    where_text = (f"at {len(wheres)} evaluation{'s' if len(wheres) != 1 else ''} ({', '.join(wheres[:4])}"
                  f"{', …' if len(wheres) > 4 else ''})" if wheres else "")
    if in_headline:
        where_text = f"{where_text} and in the headline" if where_text else "in the headline"
    return [finding(
        "D306", f"The validation loss is {'NaN' if kinds == 'nan' else 'NaN or infinite'} while training goes on: "
        "the evaluation is broken, not the training",
        f"{', '.join(whats)} {kinds} {where_text}{training}.",
        "The model trained (its training loss is finite); the NaN comes from evaluating it. Usual causes: an fp16 "
        "overflow in the evaluation pass (evaluate in fp32 or bf16), an evaluation batch with no labelled token (all "
        "labels -100: a mean over zero tokens is 0/0), or a label outside the model's range. The scores may still be "
        "right, but the loss-based checks (overfitting, the best checkpoint by loss) cannot run until it is fixed.",
        places=[{"where": w, "what": what, "value": v} for w, what, v in bad_evaluation])]


def _logged(evals: list[Eval]) -> list[Eval]:
    """The evaluations with a logged training loss, a value repeated from the row before (a stale log) left out."""
    out = []
    for e in evals:
        if not _finite(e.training_loss):
            continue
        if out and e.training_loss == out[-1].training_loss:
            continue
        out.append(e)
    return out


def _held(evals: list[Eval], main: str | None) -> tuple[float, float] | None:
    """(last, best) of the main score when the last evaluation is within BEST_GAP of the best: the model did not
    degrade. None without a score to follow (the loss is none: it rises with overfitting too)."""
    if not main or main == "loss":
        return None
    values = [v for v in (_score(e, main) for e in evals) if v is not None]
    if len(values) < 2 or values[-1] < max(values) - BEST_GAP:
        return None
    return values[-1], max(values)


def check_loss_trend(evals: list[Eval], steps: list[dict] | None = None, card: bool = False, lr=None,
                     main: str | None = None) -> list[Finding]:
    """D302 (training loss ends above its first value) or D303 (rising over the last evaluations).

    From a run's optimizer steps when there are any (the mean of the last STEP_TAIL_SHARE against the first). From
    rows, a trend is needed: a card's Training Loss is the last logged value, noisy, so one high value proves
    nothing. D302: at least 3 logged values, the last and the mean of the second half both above the first (half)
    by LOSS_RISE_TOLERANCE, and two thirds of the changes rises. D303: the last TRAIN_RISE_MIN_EVALS changes (one
    more on a card) all rises, by TRAIN_RISE_MIN_RELATIVE in all. On a card, D302 is info when the logged loss fell
    to under half its start in between (the model fitted the data) and the main score ``main`` at the last
    evaluation is within BEST_GAP of its best: a last logged value that jumps while the evaluations hold is the
    noise of one logging window, not a model unlearning."""
    remedy_diverged = ("The model is unlearning: use warmup and gradient clipping, check that the data is shuffled. "
                       + (lr_advice(lr, high_only=True) or ("Lower the learning rate 2-10x." if lr is None else
                                                            f"Even at {lr:g}, try 2x lower."))).strip()
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
    known = _logged(evals)
    if len(known) < (3 if card else 2):
        return []
    values = [e.training_loss for e in known]
    first, last = known[0], known[-1]
    changes = [b - a for a, b in zip(values, values[1:])]
    rising = sum(1 for c in changes if c > 0)
    half = len(values) // 2
    early, late = values[:max(1, half)], values[-max(1, half):]
    trend = (sum(late) / len(late) > sum(early) / len(early) * (1 + LOSS_RISE_TOLERANCE)
             and rising * 3 >= 2 * len(changes)) if card else True
    if last.training_loss > first.training_loss * (1 + LOSS_RISE_TOLERANCE) and trend:
        held = _held(evals, main) if card else None
        if held and min(values) < first.training_loss / 2:
            return [finding(
                "D302", "The logged training loss jumps, but the evaluations hold",
                f"training loss {_series(values)} ({first.where} to {last.where}), down to {fmt(min(values))} in "
                f"between, while {main.replace('_', ' ')} is {fmt(held[0])} at the last evaluation (best "
                f"{fmt(held[1])}): the card prints the last logged value, one logging window's mean, not a trend.",
                "Nothing points to divergence; to see the trend, log every epoch (logging_strategy='epoch') or log "
                "more often (smaller logging_steps).",
                severity=INFO, first=first.training_loss, last=last.training_loss, source="rows", noise=True)]
        return [finding(
            "D302", "The training loss ended above where it started",
            f"training loss {_series(values)} ({first.where} to {last.where})"
            + (", rising at " + f"{rising} of {len(changes)} logged evaluations" if card else "") + ".",
            remedy_diverged, first=first.training_loss, last=last.training_loss, source="rows")]
    rises = 0
    for c in reversed(changes):
        if c > 0:
            rises += 1
        else:
            break
    if rises >= TRAIN_RISE_MIN_EVALS + (1 if card else 0):
        start = known[-1 - rises]
        if last.training_loss >= start.training_loss * (1 + TRAIN_RISE_MIN_RELATIVE):
            return [finding(
                "D303", f"The training loss rose at each of the last {rises} evaluations",
                f"training loss {_series(values[-1 - rises:])} ({start.where} to {last.where}).",
                ("Training is becoming unstable: use a decaying schedule (linear), keep gradient clipping on; the best "
                 "checkpoint is before the rise. " + lr_advice(lr, high_only=True)).strip(),
                rises=rises, values=values[-1 - rises:])]
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
