"""D1xx collapse: the model predicts one class, no entities or one entity type, or (multi-label) never predicts some
labels; a metric that never moves."""

from __future__ import annotations

from ..cardparse import METRIC_BASES, ParsedCard
from ..findings import ERROR, INFO, WARNING, Finding, finding
from .common import (
    CLS,
    COLLAPSE_MAX_CLASSES,
    COLLAPSE_TOLERANCE,
    FROZEN_MIN_EVALS,
    INVALID_TAGS_INFO,
    INVALID_TAGS_MIN,
    INVALID_TAGS_WARNING,
    LOSS_MOVED,
    MLC,
    NER,
    SATURATED_TRAINING_LOSS,
    Eval,
    _finite,
    _num,
    _series,
    fmt,
    fmt_int,
    lr_advice,
    title,
)


# --- curves: the evaluations over training ------------------------------------------------------------------


def _stretches(evals: list[Eval], base: str) -> list[tuple[int, int, float]]:
    """(first, last, value) of every run of >= FROZEN_MIN_EVALS consecutive evaluations with the same value."""
    found = []
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
            found.append((i, j, value))
        i = j + 1
    return found


def _span(evals: list[Eval], i: int, j: int) -> str:
    if i == 0 and j == len(evals) - 1:
        return f"at all {len(evals)} evaluations ({evals[i].where} to {evals[j].where})"
    return f"at {evals[i].where} to {evals[j].where} ({j - i + 1} of {len(evals)} evaluations)"


def check_frozen(evals: list[Eval], tiny_eval: bool = False, lr=None, reported: set[int] | None = None,
                 one_class: set[int] | None = None, published: int | None = None) -> list[Finding]:
    """D103: a metric identical over >= FROZEN_MIN_EVALS consecutive evaluations while the loss moves.

    Each metric's stretch is quoted as it is. Severity: the whole run, or a stretch to the end after one-class
    evaluations (``one_class``) only, or a stretch from the first evaluation through the published one
    (``published``: the row the headline is, when it is not the last; the evaluation set not tiny), error: the
    published model predicts what the first evaluation did; a stretch from the first evaluation, warning; a later stretch,
    warning, or info when the model has saturated (training loss below SATURATED_TRAINING_LOSS) or the evaluation
    set is tiny (a few examples give few possible values). Values of 0
    (the collapse finding's) and 1.0 (perfect scores, D609) are left to those checks, and so are stretches whose
    rows are all in ``reported`` (evaluations a collapse finding already names) or all one-class (``one_class``:
    the token accuracy of evaluations that predict no entity is frozen at the share of O tags; D101 / D102 say it)."""
    stretches = []
    for base in METRIC_BASES:
        for i, j, value in _stretches(evals, base):
            rows = set(range(i, j + 1))
            # one-class rows: D101 / D102 name them at the severity they judge (a recovered start: info), unless every
            # evaluation is one-class, which makes this stretch an error below
            everything = one_class and set(range(len(evals))) <= one_class
            if value <= 0 or value >= 0.99995 or (reported and rows <= reported) or (
                    one_class and rows <= one_class and not everything):
                continue
            stretches.append((base, i, j, value))
    if not stretches:
        return []
    levels = []
    parts = []
    groups: dict[tuple, list[str]] = {}  # metrics frozen at the same value over the same rows are quoted once
    for base, i, j, value in stretches:
        groups.setdefault((i, j, round(value, 6), value), []).append(base)
    for (i, j, _, value), bases in groups.items():
        span = evals[i: j + 1]
        moved = "validation loss" if _moved([e.validation_loss for e in span]) else "training loss"
        losses = [e.validation_loss if moved == "validation loss" else e.training_loss for e in span]
        names = " and ".join(filter(None, [", ".join(title(b) for b in bases[:-1]), title(bases[-1])]))
        parts.append(f"{names} {fmt(value)} {_span(evals, i, j)} while {moved} went {_series(losses)}")
    for base, i, j, value in stretches:
        span = evals[i: j + 1]
        trained = [e.training_loss for e in span if _finite(e.training_loss)]
        if i == 0 and j == len(evals) - 1:
            levels.append(ERROR)
        elif i == 0 and published is not None and i <= published <= j and not tiny_eval:
            levels.append(ERROR)  # the published checkpoint's predictions never changed from the first evaluation
        elif i > 0 and (tiny_eval or (trained and min(trained) < SATURATED_TRAINING_LOSS)):
            levels.append(INFO)
        elif j == len(evals) - 1 and set(range(i)) <= (one_class or set()):
            levels.append(ERROR)  # every evaluation frozen or one-class: the predictions never depended on the input
        else:
            levels.append(WARNING)
    severity = ERROR if ERROR in levels else WARNING if WARNING in levels else INFO
    base, i, j, value = stretches[0]
    data = {"stretches": [{"metric": b, "value": v, "first": evals[a].where, "last": evals[z].where,
                           "evaluations": z - a + 1} for b, a, z, v in stretches],
            "all_evaluations": any(a == 0 and z == len(evals) - 1 for _, a, z, _ in stretches)}
    if severity == INFO:
        return [finding(
            "D103", "A metric stops changing late in training",
            "; ".join(parts) + ".",
            "The model has settled (or the evaluation set is too small for its scores to move): nothing to fix; "
            "training could stop where the metric stopped moving.", severity=INFO, **data)]
    hint = ""
    for b, i, j, v in stretches:
        # F1 = 2p/(1+p) is the all-positive model's only where the rest of the row agrees: recall 1, precision and
        # accuracy p (precision = recall = F1 = accuracy is a micro average, not that)
        share = v / (2 - v)
        agree = all(_near(e.metrics.get("recall"), 1.0) and _near(e.metrics.get("precision"), share)
                    and _near(e.metrics.get("accuracy"), share) for e in evals[i: j + 1])
        if b == "f1" and agree:
            hint = (f" F1 {fmt(v)} is what predicting the positive class for everything gives when {share:.1%} of "
                    "the examples are positive (F1 = 2p/(1+p)).")
            break
    printed = {b for e in evals for b in e.metrics}
    frozen = {b for b, *_ in stretches}
    headline = (f"The {'scores do' if len(frozen) > 1 else 'metric does'} not move while the loss does: the "
                "predictions never change" if frozen >= printed
                else f"{' and '.join(title(b) for b in sorted(frozen))} never move while the loss does")
    return [finding(
        "D103", headline,
        "; ".join(parts) + "." + hint,
        ("The model most likely outputs the same class (or only O tags) whatever the input. Check that the labels "
         "reach the model (label column, label2id); train longer; for imbalanced data use class_weights: balanced or "
         "oversample the rare classes. " + lr_advice(lr)).strip(),
        severity=severity, **data)]


def _near(value, target: float, tol: float = COLLAPSE_TOLERANCE) -> bool:
    """True when the value is not printed (nothing contradicts) or is within tol of target."""
    return not _finite(value) or abs(value - target) <= tol


def _moved(values) -> bool:
    finite = [v for v in values if _finite(v)]
    return len(finite) >= 2 and max(finite) - min(finite) > LOSS_MOVED


def _loss_moved(evals: list[Eval]) -> bool:
    return _moved([e.validation_loss for e in evals]) or _moved([e.training_loss for e in evals])


# --- collapse -------------------------------------------------------------------------------------------------


def check_run_collapse(task: str | None, metrics: dict, history: dict, lr=None) -> list[Finding]:
    """D101 / D102 / D104 / D105 from the saved model's predictions (per-label predicted counts), on the validation
    and the test split (a run without a validation split is judged on its test split)."""
    results = {s: metrics.get(s) for s in ("validation", "test") if isinstance(metrics.get(s), dict)}
    if not results and isinstance(history, dict):
        rows = history.get("rows") if isinstance(history.get("rows"), list) else []
        rows = [r for r in rows if isinstance(r, dict)]
        best = history.get("best") if isinstance(history.get("best"), dict) else {}
        chosen = next((r for r in rows if r.get("step") == best.get("step")), rows[-1] if rows else None)
        if chosen:
            results = {"validation (history)": chosen}
    one_class, no_entities, one_type, never = [], [], [], {}
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
        elif task == MLC:
            if per_label and all("predicted" in r for r in per_label.values()):
                never[split] = per_label
        elif task == CLS or task is None:
            if len(per_label) > 1 and all("predicted" in r for r in per_label.values()):
                predicted = [label for label, r in per_label.items() if (_num(r.get("predicted")) or 0) > 0]
                if len(predicted) == 1:
                    one_class.append(f"{split}: every example predicted '{predicted[0]}' (predicted per label: "
                                     f"{_counts(per_label, 'predicted')})")
    found = []
    if one_class:
        found.append(finding(
            "D101", "The model predicts one class for every example", "; ".join(one_class) + ".", remedy_collapse(lr),
            splits=list(results)))
    if no_entities:
        found.append(finding(
            "D102", "The model predicts no entities (every word O)", "; ".join(no_entities) + ".",
            remedy_no_entities(lr), splits=list(results)))
    if one_type:
        found.append(finding(
            "D104", "The model predicts a single entity type", "; ".join(one_type) + ".",
            "Train longer or with more examples of the other types; check that their tags are read (IOB2 prefixes, "
            "tag column).", splits=list(results)))
    found += check_unpredicted_labels(never, lr)
    return found


def check_invalid_sequences(task: str | None, metrics: dict, decoding: str | None) -> list[Finding]:
    """D106 (runs, NER): the saved model's predicted tags break IOB2 in a share of the sentences (`invalid_sentences`
    of the validation / test results). Scoring reads each stray I-X as an entity of its own; decoding the best valid
    sequence instead (`decoding: constrained`) removes them. Info from INVALID_TAGS_INFO of the sentences, warning
    from INVALID_TAGS_WARNING; nothing for a run that already decodes that way."""
    if task != NER or decoding == "constrained":
        return []
    parts, splits, worst = [], [], 0.0
    for split in ("validation", "test"):
        result = metrics.get(split)
        if not isinstance(result, dict):
            continue
        invalid, sentences = _num(result.get("invalid_sentences")), _num(result.get("sentences"))
        if invalid is None or not sentences or invalid < INVALID_TAGS_MIN or invalid / sentences < INVALID_TAGS_INFO:
            continue
        worst = max(worst, invalid / sentences)
        splits.append(split)
        parts.append(f"{split}: {fmt_int(invalid)} of {fmt_int(sentences)} sentences ({invalid / sentences:.1%})")
    if not parts:
        return []
    return [finding(
        "D106", "Predicted tags break the IOB2 scheme",
        "; ".join(parts) + " have an I-X tag first, after O or after another type (each word's best tag taken on "
        "its own); scoring reads each as an entity of its own.",
        "Decode the most likely valid tag sequence: decoding: constrained when training, or --decoding constrained "
        "with tunecard evaluate / predict on this run (CoNLL-2003 dev: 0.4-0.5 points of F1; docs/training.md).",
        severity=WARNING if worst >= INVALID_TAGS_WARNING else INFO, splits=splits)]


def check_unpredicted_labels(per_split: dict[str, dict], lr=None) -> list[Finding]:
    """D105 (multi-label): labels the evaluation data has that the model never predicts, per split (``per_split``:
    {split: per-label rows with ``support`` and ``predicted``}). Each label is its own yes/no classifier, so one that
    is never said yes to has collapsed to "no" while the others work. Error when no label with support is ever
    predicted; warning otherwise. Labels without support are left out (never predicting them is right)."""
    parts, every_label = [], True
    for split, per_label in per_split.items():
        supported = {label: r for label, r in per_label.items() if (_num(r.get("support")) or 0) > 0}
        missing = [label for label, r in supported.items() if (_num(r.get("predicted")) or 0) == 0]
        if not missing:
            every_label = False
            continue
        every_label = every_label and len(missing) == len(supported)
        named = ", ".join(f"'{label}' (support {fmt_int(supported[label].get('support'))})" for label in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        parts.append(f"{split}: {len(missing)} of {len(supported)} labels never predicted: {named}{more}")
    if not parts:
        return []
    severity = ERROR if every_label else WARNING
    title_text = ("The model predicts no label for any text" if every_label
                  else "Some labels are never predicted")
    return [finding(
        "D105", title_text, "; ".join(parts) + ".",
        ("Each of these labels is a yes/no decision the model always answers no: its probability never reaches its "
         "threshold. Weight the rare labels (class_weights: balanced gives each label's positives the weight "
         "negatives / positives), train longer or on more examples of them, and check their thresholds "
         "(config.json, tunecard.thresholds). " + lr_advice(lr)).strip(), severity=severity, splits=list(per_split))]


def _counts(per_label: dict, key: str, limit: int = 8) -> str:
    items = [f"{label} {fmt_int(r.get(key))}" for label, r in per_label.items()]
    return ", ".join(items[:limit]) + (", …" if len(items) > limit else "")


def remedy_collapse(lr=None) -> str:
    return ("The model ignores its input. Check that the labels reach the model (label column, label2id) and are not "
            "all one value; train longer; for imbalanced data use class_weights: balanced or oversample the rare classes. "
            + lr_advice(lr)).strip()


def remedy_no_entities(lr=None) -> str:
    return ("The model has only learned that most words are O. Check that the B-/I- tags are read (tag column, "
            "scheme); train longer (more epochs or steps, more examples); compare with the all-O baseline. "
            + lr_advice(lr)).strip()


REMEDY_COLLAPSE = remedy_collapse()
REMEDY_NO_ENTITIES = remedy_no_entities()


def one_class_signature(p, r, f1, a, tol: float = COLLAPSE_TOLERANCE) -> str | None:
    """How P/R/F1/accuracy look when a classifier predicts one class for everything, or None.

    Binary, positive class predicted everywhere: recall 1, precision = accuracy, F1 = 2a/(1+a). Macro average
    over K classes: recall 1/K, precision a/K, F1 2a/((1+a)K). Weighted average: recall a, precision a², F1
    2a²/(1+a). Negative class everywhere (binary): precision = recall = F1 = 0 with accuracy > 0. Perfect scores
    (everything 1.0) are not a collapse: D609 says what they mean.
    """
    if a is None or not (0 < a <= 1) or a >= 1 - tol:
        return None
    if p is not None and r is not None and f1 is not None:
        if max(p, r, f1) <= tol:
            return (f"precision, recall and F1 0 with accuracy {fmt(a)}: the positive class is never predicted "
                    f"(accuracy = the negative share)")
        for k in range(1, COLLAPSE_MAX_CLASSES + 1):
            if abs(r - 1 / k) <= tol and abs(p - a / k) <= tol and abs(f1 - 2 * a / ((1 + a) * k)) <= tol:
                if k == 1:
                    return (f"recall {fmt(r)}, precision {fmt(p)} = accuracy {fmt(a)}, F1 {fmt(f1)} = 2p/(1+p): every "
                            "example is predicted positive")
                return (f"macro recall {fmt(r)} = 1/{k}, precision {fmt(p)} = accuracy/{k}, F1 {fmt(f1)} = "
                        f"2a/((1+a)·{k}): one class of {k} predicted for every example")
        if abs(r - a) <= tol and abs(p - a * a) <= tol and abs(f1 - 2 * a * a / (1 + a)) <= tol:
            return (f"weighted recall {fmt(r)} = accuracy, precision {fmt(p)} = accuracy², F1 {fmt(f1)} = 2a²/(1+a): "
                    "one class predicted for every example")
    return None


def row_collapse(task: str | None, m: dict[str, float], nan_metrics=(), tol: float = COLLAPSE_TOLERANCE
                 ) -> tuple[str, str, bool] | None:
    """(code, what the numbers show, certain) when one evaluation's numbers are those of a one-class model.

    ``m``: precision / recall / f1 / accuracy. Certain: from precision, recall and F1 (or a printed F1 of 0);
    not certain: F1 = 2a/(1+a) with only accuracy and F1 printed."""
    if task not in (NER, CLS, None):
        return None  # regression, multi-label ...: these formulas do not apply
    p, r, f1, a = (m.get(k) for k in METRIC_BASES)
    if p is not None and r is not None and f1 is not None and max(p, r, f1) <= tol and (a is None or a > 0):
        if task == NER or task is None:
            return ("D102", "precision, recall and F1 0" + (f" with token accuracy {fmt(a)}" if a is not None else "")
                    + ": no entity predicted" + (" (or, for a classifier, never the positive class)" if task is None
                                                 else ""), True)
        return "D101", one_class_signature(p, r, f1, a, tol) or "precision, recall and F1 0", True
    if "precision" in nan_metrics and r is not None and r <= tol and task != NER:
        return ("D101", "precision nan (0/0: nothing predicted positive), recall 0"
                + (f", accuracy {fmt(a)} (the negative share)" if a is not None else "")
                + ": the positive class is never predicted", True)
    if task != NER:
        signature = one_class_signature(p, r, f1, a, tol)
        if signature:
            return "D101", signature, True
    if p is None and r is None and f1 is not None and f1 <= tol and (a is None or a > 0):
        return ("D102" if task == NER else "D101",
                "F1 0: " + ("no entity found" if task == NER else "the positive class is never predicted"), True)
    if task != NER and p is None and r is None and f1 is not None and a is not None and 0 < a < 1 - tol and \
            abs(f1 - 2 * a / (1 + a)) <= tol:
        return ("D101", f"accuracy {fmt(a)}, F1 {fmt(f1)} = 2a/(1+a): what predicting the positive class everywhere "
                "gives (without precision and recall this cannot be confirmed)", False)
    return None


def check_card_collapse(task: str | None, values: dict[str, float], evals: list[Eval], card: ParsedCard,
                        tol: float, published: int | None = None, lr=None, head_nan=(),
                        never_recovered: bool = False) -> list[Finding]:
    """D101 / D102 at every evaluation and in the headline, and from tunecard's predicted counts.

    Severity: error when the published results (headline, or the published row) or every evaluation are those of a
    one-class model; info when only the first evaluations were (a slow start the model recovered from); warning
    otherwise (a collapse in mid-training: those checkpoints must not be used). ``never_recovered``: the published
    scores are at chance (F1 below CHANCE_F1): a collapse at the start is then the story of the whole run, an
    error."""
    found = []
    if task is None and any(_classifier_signature(m, tol) for m in [values] + [e.metrics for e in evals] if m):
        task = CLS  # a row reads as a one-class classifier: the card is a classifier's, say it in its terms
    rows = {i: row_collapse(task, e.metrics, e.nan_metrics, tol) for i, e in enumerate(evals)}
    rows = {i: sig for i, sig in rows.items() if sig}
    head = row_collapse(task, values, head_nan, tol) if values else None
    if rows or head:
        collapsed = sorted(rows)
        signatures = [sig for sig in [head, *rows.values()] if sig]
        code = "D102" if all(sig[0] == "D102" for sig in signatures) else "D101"
        certain = any(sig[2] for sig in signatures)
        last = len(evals) - 1
        published_row = published if published is not None else (last if evals else None)
        if head or (published_row is not None and published_row in rows) or (evals and len(collapsed) == len(evals)) \
                or never_recovered:
            severity = ERROR if certain else WARNING
        elif collapsed == list(range(len(collapsed))):
            severity = INFO
        else:
            severity = WARNING
        groups: dict[str, list[int]] = {}
        for i in collapsed:
            groups.setdefault(rows[i][1], []).append(i)
        parts = [f"headline: {head[1]}"] if head and head[1] not in groups else []
        for text, indices in sorted(groups.items(), key=lambda item: not (head and head[1] == item[0])):
            where = (f"all {len(evals)} evaluations" if len(indices) == len(evals) > 1
                     else ", ".join(evals[i].where for i in indices[:6]) + (" …" if len(indices) > 6 else ""))
            if head and head[1] == text:
                where = f"headline and {where}"  # the same numbers: said once, the published results first
            parts.append(f"{where}: {text}")
        scope = ("every evaluation" if evals and len(collapsed) == len(evals) else
                 "the published results" if head or published_row in rows else
                 f"{len(collapsed)} of {len(evals)} evaluations")
        if code == "D102":
            title_text = f"The model predicts no entities ({scope})"
            remedy = remedy_no_entities(lr)
        else:
            title_text = f"The model predicts one class for everything ({scope})"
            remedy = remedy_collapse(lr)
        if severity == INFO:
            remedy = ("The first evaluations came from a model that had not yet learned to tell the classes apart; "
                      "later ones recovered. Nothing to fix, but never publish those early checkpoints.")
        elif severity == WARNING and not head and published_row not in rows:
            remedy = ("Those checkpoints are one-class models: never publish them (they can even have the best F1). "
                      "Training that collapses and recovers is unstable: use warmup and gradient clipping. "
                      + lr_advice(lr, high_only=True)).strip()
        found.append(finding(code, title_text, "; ".join(parts) + ".", remedy, severity=severity,
                             rows=[evals[i].where for i in collapsed], headline=bool(head)))
    if card.per_label and task == MLC:
        # a cell that holds no number (a dash, a word) is no count: the check does not run on it
        rows = {label: {key: cells[key].number for key in ("support", "predicted")
                        if cells.get(key) is not None and cells[key].number is not None}
                for label, cells in card.per_label.items()}
        if all("predicted" in row and "support" in row for row in rows.values()):
            found += check_unpredicted_labels({"validation": rows}, lr)
    elif card.per_label:
        predicted = {label: cells.get("predicted").number for label, cells in card.per_label.items()
                     if cells.get("predicted") is not None and cells.get("predicted").number is not None}
        if predicted and len(predicted) == len(card.per_label):
            positive = [label for label, n in predicted.items() if n > 0]
            codes = {f.code for f in found}
            if task == NER and not positive and "D102" not in codes:
                found.append(finding("D102", "The model predicts no entities",
                                     "per-entity table: predicted 0 for every type.", remedy_no_entities(lr)))
            elif task != NER and len(positive) == 1 and len(predicted) > 1 and "D101" not in codes:
                found.append(finding("D101", "The model predicts one class for every example",
                                     f"per-label table: only '{positive[0]}' is ever predicted "
                                     f"({', '.join(f'{k} {fmt_int(v)}' for k, v in predicted.items())}).",
                                     remedy_collapse(lr)))
    return found


def _classifier_signature(m: dict, tol: float) -> bool:
    """A one-class signature only a classifier has (recall 1 with precision = accuracy, or a macro / weighted
    average's); precision = recall = F1 = 0 could be a NER model's just as well."""
    p, r, f1, a = (m.get(k) for k in METRIC_BASES)
    return bool(one_class_signature(p, r, f1, a, tol)) and not (
        p is not None and r is not None and f1 is not None and max(p, r, f1) <= tol)


def collapsed_rows(task: str | None, evals: list[Eval], tol: float = COLLAPSE_TOLERANCE) -> set[int]:
    """Indices of the evaluations whose numbers are those of a one-class model (for D402: never the best)."""
    return {i for i, e in enumerate(evals) if row_collapse(task, e.metrics, e.nan_metrics, tol)}
