"""D3xx divergence: NaN / inf losses, a training loss that rises, a learning rate too high for the batch."""

from __future__ import annotations

import math

from ..findings import Finding, finding
from .common import (
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
    _series,
    fmt,
    fmt_int,
)

# --- curves: the evaluations over training ------------------------------------------------------------------


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
