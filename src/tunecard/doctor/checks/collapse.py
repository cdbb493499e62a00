"""D1xx collapse: the model predicts one class, no entities or one entity type; a metric that never moves."""

from __future__ import annotations

from ..cardparse import METRIC_BASES, ParsedCard
from ..findings import ERROR, INFO, WARNING, Finding, finding
from .common import (
    CLS,
    COLLAPSE_MAX_CLASSES,
    COLLAPSE_TOLERANCE,
    FROZEN_MIN_EVALS,
    LOSS_MOVED,
    NER,
    Eval,
    _finite,
    _num,
    _series,
    fmt,
    fmt_int,
    title,
)


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
