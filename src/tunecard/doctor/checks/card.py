"""D5xx card consistency: what a card prints (headline, Training results, model-index) read in the checks'
terms, and checked against itself."""

from __future__ import annotations

from typing import Iterable

import math

from ..cardparse import (
    REGRESSION_KEYS,
    Cell,
    ParsedCard,
    averaging,
    entity_of,
    main_metric_keys,
    metric_base,
    parse_value,
)
from ..findings import ERROR, INFO, WARNING, Finding, finding
from .common import (
    CLS,
    F1_TOLERANCE,
    INCONSISTENT_MARGIN,
    NER,
    REG,
    Eval,
    _finite,
    best_rows,
    title,
)


def _by_name(key: str) -> str:
    return "validation loss" if key == "loss" else title(key)


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
    score_keys = score_keys_of(card.table.keys)
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
            scores={key: row[key].value * (scale if metric_base(key) else 1.0) for key in score_keys
                    if row.get(key) is not None and row[key].kind == "number"},
            nan_metrics=[key for key in score_keys if row.get(key) is not None and row[key].kind == "nan"],
        ))
    return evals


OTHER_SCORES = ("mcc", "matthews_correlation", "roc_auc", "auc", "combined_score") + REGRESSION_KEYS


def score_keys_of(keys) -> list[str]:
    """The columns that hold a score (F1 of any average, accuracy, MCC, Pearson, MSE ...), not per-entity ones."""
    return [k for k in keys if k not in ("epoch", "step", "training_loss", "validation_loss", "saved")
            and entity_of(k) is None and (metric_base(k) or k in OTHER_SCORES)]


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
        best_by = best_rows(evals).get(i, [])
        why = (" The card marks that row as the saved checkpoint." if marked else
               f" It is the best evaluation by {', '.join(_by_name(k) for k in best_by[:3])}: the Trainer's "
               "load_best_model_at_end." if best_by else
               " It is not the best evaluation by the loss or any score: neither the last nor the best checkpoint.")
        return [finding(
            "D501", f"The headline results are from {evals[i].where}, not the last row",
            f"headline {head} = the row of {evals[i].where}; the last row ({evals[last].where}) has "
            f"{_row_text(card, last, keys)}." + why,
            "Say in the card which checkpoint the results and the weights are (e.g. 'the best checkpoint, epoch 2, "
            "load_best_model_at_end'), so that readers do not take the last row for the model.",
            severity=INFO if marked or best_by else WARNING, row=evals[i].where, last=evals[last].where,
            best_by=best_by)], i
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
    near = closest is not None and all(_close(card.headline[k], card.table.rows[closest].get(
        "validation_loss" if k == "loss" else k), relative=not metric_base(k)) for k in keys)
    return [finding(
        "D502", "The headline results match no row of the training results"
        + (": a separate evaluation of about the last model" if near else ""),
        f"headline {head}; closest row {evals[closest].where}: {_row_text(card, closest, keys)}."
        if closest is not None else f"headline {head}.",
        "The headline cannot be traced to any evaluation in the table: if it comes from another split or a later "
        "evaluation, say which; otherwise regenerate the card from the training logs.",
        severity=INFO if near else WARNING, closest=evals[closest].where if closest is not None else None)], None


def _close(a: Cell, b: Cell | None, relative: bool = True) -> bool:
    """Within 0.005 (a loss: or 2 % of it): another evaluation of the same model (another batch size, fp16 ...)."""
    if b is None or a.kind != "number" or b.kind != "number":
        return False
    return abs(a.value - b.value) <= max(0.005, 0.02 * abs(b.value) if relative else 0.0)


def check_nolog(card: ParsedCard, evals: list[Eval]) -> list[Finding]:
    """D503 (info): 'No log' training losses (and the same logged value repeated). What it costs (divergence and
    overfitting from the training loss) is said under Not run, with the setting that fixes it."""
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
        + (f", more than the {first_step} step{'s' if first_step != 1 else ''} to the first evaluation"
           if first_step and first_step < 500 else "")
        + ": set logging_strategy='epoch' (or logging_steps at most the steps between evaluations) so that overfitting "
        "and divergence can be seen.",
        severity=INFO, rows=nolog, repeated=repeated)]  # a gap in the card, not a fault of the model: the
        # checks it costs are listed under Not run, with the fix


def check_copied(card: ParsedCard) -> list[Finding]:
    """D504: a loss printed where a metric should be. One equal pair proves nothing (4 decimals coincide: a loss of
    0.5714 and an accuracy of 4/7), so a pair of columns must be equal in at least two rows."""
    pairs: dict[tuple[str, str], list[int]] = {}
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
                        pairs.setdefault((loss, key), []).append(i)
        for (loss, key), rows in pairs.items():
            if len(rows) >= 2:
                hits.append(f"{_column(card, loss)} = {_column(card, key)} in rows "
                            f"{', '.join(str(i + 1) for i in rows)} (" +
                            ", ".join(card.table.rows[i][loss].raw.strip() for i in rows[:4]) + ")")
        known = [(row.get("training_loss"), row.get("validation_loss")) for row in card.table.rows]
        known = [(a, b) for a, b in known if a is not None and b is not None and a.kind == b.kind == "number"]
        if len(known) >= 2 and all(a.raw.strip() == b.raw.strip() for a, b in known):
            hits.append(f"Training Loss = Validation Loss in all {len(known)} rows")
    loss = card.headline.get("loss")
    if hits and loss is not None and loss.kind == "number" and loss.value not in (0.0, 1.0):
        for key in _metric_keys(card.headline):
            cell = card.headline[key]
            if cell.kind == "number" and cell.raw.strip() == loss.raw.strip():
                hits.append(f"headline: Loss = {card.headline_names.get(key, key)} = {loss.raw.strip()}")
    if not hits:
        return []
    return [finding(
        "D504", "A value copied across columns",
        "; ".join(hits[:8]) + (f" (and {len(hits) - 8} more)" if len(hits) > 8 else "") + ".",
        "A loss and a metric are not the same number in row after row by chance: the table was built wrongly "
        "(shifted or duplicated columns, e.g. compute_metrics returning the loss under a metric name). Regenerate the "
        "card from the evaluation logs.", places=hits)]


def repair_swapped(card: ParsedCard) -> list[Finding]:
    """D506 for rows where a metric column holds what is plainly a loss and the loss column a metric (the rest of the
    table has them the right way round); the two cells are swapped back so that the other checks read the row."""
    if not card.table or card.task == REG:
        return []
    rows = card.table.rows
    places = []
    for key in _metric_keys(card.table.keys):
        for loss in ("validation_loss", "training_loss"):
            if loss not in card.table.keys:
                continue
            bad = [i for i, row in enumerate(rows) if _num_cell(row.get(key)) is not None and row[key].value > 1
                   and _num_cell(row.get(loss)) is not None and 0 <= row[loss].value <= 1]
            good = [i for i, row in enumerate(rows) if i not in bad and _num_cell(row.get(key)) is not None
                    and 0 <= row[key].value <= 1 and _num_cell(row.get(loss)) is not None and row[loss].value > 1]
            if not bad or len(good) < len(bad):
                continue
            for i in bad:
                rows[i][key], rows[i][loss] = rows[i][loss], rows[i][key]
            places.append(f"rows {', '.join(str(i + 1) for i in bad)}: {_column(card, key)} "
                          f"{', '.join(rows[i][loss].raw.strip() for i in bad)} and {_column(card, loss)} "
                          f"{', '.join(rows[i][key].raw.strip() for i in bad)}")
    if not places:
        return []
    return [finding(
        "D506", "Values in the wrong columns: a loss printed as a metric",
        "; ".join(places) + " (the other rows have them the other way round); read here as swapped.",
        "The columns of these rows were written in another order than the header: regenerate the table from the "
        "evaluation logs.", severity=ERROR, swapped=places)]


def _num_cell(cell: Cell | None) -> float | None:
    return cell.value if cell is not None and cell.kind == "number" else None


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
            elif averaging(f1_key) in ("macro", "weighted", "samples") or (task in (CLS, None)
                                                                           and averaging(f1_key) != "micro"):
                # a card that names no task: its P / R / F1 / accuracy are most often a classifier's macro or
                # weighted averages (weighted recall = accuracy); an average of F1s is never above the harmonic mean
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
            "mean precision and recall); say which average the card reports."
            + (" The card names no task: were these entity-level (seqeval) scores, F1 would have to equal it, and the "
               "columns would be wrong." if task is None else ""),
            severity=INFO, places=below_averaged))
    return found


def check_identical_rows(card: ParsedCard) -> list[Finding]:
    """D508: evaluations with the same loss and scores (the training loss and epoch / step left out).

    Equal evaluations are a warning, except the last few of a run of five or more under a linear / cosine schedule
    (two, or up to a quarter of the evaluations): the learning rate is near 0 by then and they may well agree to 4
    decimals: info."""
    if not card.table or len(card.table.rows) < 2:
        return []
    keys = [k for k in card.table.keys if k not in ("epoch", "step", "saved", "training_loss")]
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(card.table.rows):
        if sum(1 for k in keys if row.get(k) is not None and row[k].kind == "number") < 2:
            continue
        values = tuple(row[k].raw.strip() if row.get(k) is not None else "" for k in keys)
        groups.setdefault(values, []).append(i)
    # rows of zeros and ones (a perfect score, loss 0.0000) are alike for another reason: D609 says which
    groups = {k: v for k, v in groups.items() if len(v) >= 2 and not all(
        parse_value(x).number in (0.0, 1.0) for x in k if parse_value(x).kind == "number")}
    if not groups:
        return []
    n = len(card.table.rows)
    schedule = str(card.hyperparameters.get("lr_scheduler_type", "linear")).strip().lower()
    decaying = schedule.startswith(("linear", "cosine", "polynomial", "inverse"))
    at_end = lambda rows: (rows == list(range(n - len(rows), n)) and n >= 5 and decaying  # noqa: E731
                           and (len(rows) == 2 or 4 * len(rows) <= n))
    severity = INFO if all(at_end(rows) for rows in groups.values()) else WARNING
    text = "; ".join(("rows " + ", ".join(str(i + 1) for i in rows)) for rows in list(groups.values())[:6])
    return [finding(
        "D508", "Identical evaluations in the training results",
        text + " have the same validation loss and scores"
        + (" (the last evaluations, with the learning rate near 0 at the end of the schedule)."
           if severity == INFO else "."),
        "Evaluations of a model that is still being trained do not agree to every printed digit: check that the "
        "evaluation sees the current weights (not a saved or frozen copy), that the learning rate is not 0 (warmup "
        "longer than training?) and that no row was copied." if severity == WARNING else
        "Nothing to fix: the model hardly changes in the last steps of a decaying schedule.",
        severity=severity, groups=[[i + 1 for i in rows] for rows in groups.values()])]


def check_model_index(card: ParsedCard, scales: dict) -> list[Finding]:
    """D509: the YAML model-index values against the headline list."""
    if not card.model_index or not card.headline:
        return []
    own = [e for e in card.model_index if not e.get("verified")]  # the Hub's evaluator ran its own evaluation
    entries = [e for e in own if str(e.get("split") or "").lower() in ("validation", "eval", "dev", "")]
    if not entries and len(own) == 1 and str(own[0].get("split") or "").lower() != "test":
        entries = own  # a test split is another evaluation than the headline's
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


def check_loss_consistency(evals: list[Eval], head: dict[str, float], head_loss: float | None,
                           task: str | None) -> list[Finding]:
    """D510: a cross-entropy loss and scores that cannot come from the same evaluation.

    Each misclassified example costs at least ln 2 (its right class has probability 1/2 or less), so a mean loss
    is at least (1 - accuracy) * ln 2: a loss far below that (INCONSISTENT_MARGIN of it) belongs to another
    evaluation or is not this task's loss. Conversely, accuracy 1.0 (or precision = recall = F1 = 1.0) with a loss
    of ln K or more means a right answer every time with at most 1/K odds: the metric is broken (or scores
    something trivial). K is the fewest classes the task can have: 2 for a classifier, 3 for a tagger (O, B-X,
    I-X), whose right tag may win with just over a third."""
    if task not in (CLS, NER, None) or any("roc_auc" in e.scores for e in evals):
        return []  # (F1, ROC AUC, accuracy: the multi-label template, whose accuracy is per example, its loss per label)
    rows = [(e.where, e.metrics, e.validation_loss) for e in evals]
    if head:
        rows.append(("headline", head, head_loss))
    classes = 3 if task == NER else 2  # the fewest the task can have: a right answer has more than 1/classes
    low, broken = [], []
    for where, m, loss in rows:
        if not _finite(loss):
            continue
        a = m.get("accuracy")
        perfect = (a is not None and a >= 0.99995) or (
            a is None and all(m.get(k) is not None and m[k] >= 0.99995 for k in ("precision", "recall", "f1")))
        if perfect and loss >= math.log(classes):
            broken.append(f"{where}: {'accuracy' if a is not None else 'precision, recall and F1'} 1.0 with "
                          f"validation loss {loss:.4f}")
        elif a is not None and 1 - a >= 0.02 and loss < INCONSISTENT_MARGIN * (1 - a) * math.log(2):
            low.append(f"{where}: validation loss {loss:.4f} with accuracy {a:.4f} (at least "
                       f"{(1 - a) * math.log(2):.4f} for a cross-entropy)")
    if not low and not broken:
        return []
    if broken:
        return [finding(
            "D510", "Perfect scores with an untrained model's loss: the metric is broken",
            "; ".join(broken[:4]) + (f" (and {len(broken) - 4} more)" if len(broken) > 4 else "")
            + (": every answer right, each with at best even odds." if classes == 2 else
               f": every answer right, each with at best 1/{classes} odds (a tagger has at least O, B-X and I-X)."),
            "Check compute_metrics: it must compare the argmax predictions with the gold labels of the same examples "
            "(not the labels with themselves, not an empty or all-O evaluation set); until then the scores mean "
            "nothing.", places=broken, kind="perfect")]
    return [finding(
        "D510", "The validation loss is too low for the errors the scores show",
        "; ".join(low[:4]) + (f" (and {len(low) - 4} more)" if len(low) > 4 else "") + ".",
        "Each wrong prediction costs at least ln 2 of cross-entropy, so the loss and the scores cannot come from one "
        "evaluation: check that compute_metrics scores the same examples and labels as the loss (label order, "
        "label2id, a shuffled or truncated prediction array).", places=low)]
