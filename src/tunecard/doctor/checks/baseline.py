"""D2xx baseline: the model against the strongest baseline computed from the data."""

from __future__ import annotations

import math

from ..cardparse import entity_of
from ..findings import ERROR, WARNING, Finding, finding
from .common import (
    BASELINE_MARGIN,
    BASELINE_MARGIN_SHARE,
    CHANCE_ACCURACY_MARGIN,
    CHANCE_F1,
    CHANCE_LOSS_TOLERANCE,
    CHANCE_MCC,
    CLS,
    LEARNING_BUDGET,
    NER,
    Eval,
    _finite,
    _num,
    _series,
    fmt,
    fmt_int,
    lr_advice,
    title,
)


# --- baselines -----------------------------------------------------------------------------------------------


def check_baselines(task: str | None, comparisons: list[tuple[str, dict, list[tuple[str, dict]]]],
                    lr=None) -> list[Finding]:
    """D201 / D202: the model's F1 (and, for classifiers, accuracy) against the strongest baseline per split.

    ``comparisons``: (split, model's scores, [(strategy, baseline's scores)]). Near: less than BASELINE_MARGIN
    above it, or less than BASELINE_MARGIN_SHARE of the way from it to a perfect score (F1 0.12 against a
    majority-tag baseline of 0.08 has learned next to nothing).
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
            elif value < strongest + max(BASELINE_MARGIN, BASELINE_MARGIN_SHARE * (1 - strongest)):
                near.append(line)
    found = []
    remedy = ("The model has learned little beyond the baseline: see the collapse and divergence findings; check the "
              "labels, train longer and get more examples of the rare labels. " + lr_advice(lr)).strip()
    if below:
        found.append(finding("D201", "The model is not better than a baseline computed from the data",
                             "; ".join(below) + ".", remedy, comparisons=below))
    if near:
        found.append(finding("D202", "The model is barely above a baseline computed from the data",
                             "; ".join(near) + ".", remedy, comparisons=near))
    return found


def check_chance(task: str | None, evals: list[Eval], published: dict[str, float], classes: int | None = None,
                 majority: float | None = None, lr=None, total_steps: int | None = None) -> list[Finding]:
    """D203: the model did not learn, by numbers that need no baseline.

    - the validation loss within CHANCE_LOSS_TOLERANCE of ln K at every evaluation (K = 2 on a card, where the
      number of classes is unknown; the run's K otherwise): what a model that outputs 1/K for everything scores;
    - the Matthews correlation below CHANCE_MCC at every evaluation;
    - a published F1 (any average) above 0 but below CHANCE_F1: almost nothing found;
    - accuracy within CHANCE_ACCURACY_MARGIN of the majority share (known from a one-class evaluation);
    - (warning) too little training to learn: ``total_steps`` × the learning rate below LEARNING_BUDGET (Adam moves
      a weight by about the learning rate per step, so no weight moved by more than that) with the validation loss
      at or above ln 2 at every evaluation (an untrained head scores ln K for K classes). A model fine-tuned from a
      checkpoint that already knows the task learns little in a few steps too, but its loss is low.
    ``published``: the published results' scores (headline, else the published row)."""
    if task not in (NER, CLS, None):
        return []
    reasons, severity = [], WARNING
    losses = [e.validation_loss for e in evals if _finite(e.validation_loss)]
    ks = [classes] if classes and classes >= 2 else [2]
    if task != NER and len(losses) >= 2:
        for k in ks:
            chance = math.log(k)
            accuracy, f1 = published.get("accuracy"), published.get("f1")
            # a loss of ln 2 alone could be a 3-class model's: the accuracy (or F1) must be at chance too
            if all(abs(v - chance) <= CHANCE_LOSS_TOLERANCE * chance for v in losses) and \
                    (accuracy is None or accuracy <= 1 / k + 0.1) and (f1 is None or accuracy is not None or f1 <= 0.7):
                trained = [e.training_loss for e in evals if _finite(e.training_loss)]
                also = (f"; training loss {_series(trained)}" if trained and
                        all(abs(v - chance) <= 3 * CHANCE_LOSS_TOLERANCE * chance for v in trained) else "")
                reasons.append(f"validation loss {_series(losses)} stays at ln {k} = {chance:.4f} (what a model that "
                               f"gives every class 1/{k} scores) at every evaluation{also}"
                               + (f"; accuracy {fmt(accuracy)}" if accuracy is not None else ""))
                severity = ERROR
                break
    mcc = [e.scores.get(k) for e in evals for k in ("mcc", "matthews_correlation") if _finite(e.scores.get(k))]
    if len(mcc) >= 2 and all(abs(v) < CHANCE_MCC for v in mcc):
        reasons.append(f"Matthews correlation {_series(mcc)}: no better than chance at any evaluation")
        severity = ERROR
    f1s = {k: v for k, v in published.items() if (k == "f1" or k.endswith("_f1") or k.startswith("f1_"))
           and entity_of(k) is None and _finite(v)}  # one rare entity type's F1 says nothing of the model
    low = {k: v for k, v in f1s.items() if 0 < v < CHANCE_F1}
    if low:
        k, v = ("f1", low["f1"]) if "f1" in low else min(low.items(), key=lambda item: item[1])
        what = {NER: "entities", CLS: "positive examples"}.get(task, "entities (or positive examples)")
        reasons.append(f"published {title(k)} {fmt(v)}: the model finds almost none of the {what}"
                       + (f" (recall {fmt(published['recall'])})" if _finite(published.get("recall")) else ""))
        severity = ERROR
    accuracy = published.get("accuracy")
    if majority is not None and _finite(accuracy) and task != NER and accuracy <= majority + CHANCE_ACCURACY_MARGIN:
        reasons.append(f"accuracy {fmt(accuracy)} against a majority share of {fmt(majority)} (what the one-class "
                       "evaluations score)")
    lr_value = _num(lr)
    budget = None
    if total_steps and lr_value and _finite(lr_value) and 0 < total_steps * lr_value < LEARNING_BUDGET and losses \
            and all(v >= math.log(2) for v in losses):
        budget = (f"{fmt_int(total_steps)} optimizer step{'s' if total_steps != 1 else ''} in all at a learning rate "
                  f"of {lr_value:g}: Adam moves a weight by about the learning rate per step, so no weight moved by "
                  f"more than {total_steps * lr_value:.1g}; validation loss {_series(losses)}, at or above ln 2 = "
                  f"{math.log(2):.4f} at every evaluation (an untrained head scores ln K for K classes)")
    if not reasons and not budget:
        return []
    if not reasons:
        return [finding(
            "D203", "The model can hardly have learned: too few training steps",
            budget + ".",
            f"Train for many more optimizer steps (hundreds, not {fmt_int(total_steps)}): more epochs, more training "
            "data or a smaller batch; judge the scores only once the validation loss has fallen well below its "
            "first value.", severity=WARNING, reasons=[budget], steps=total_steps)]
    if budget:
        reasons.append(budget)
    return [finding(
        "D203", "The model did not learn: chance-level results",
        "; ".join(reasons) + ".",
        ("Nothing was learned from the input: check that the labels reach the model and match the texts (shuffled "
         "columns, label2id) and that the task is learnable from the text at all; then train longer or on more data. "
         + lr_advice(lr)).strip(), severity=severity, reasons=reasons)]
