"""Every card check in order: :func:`card_findings` (what ``diagnose_card`` reports)."""

from __future__ import annotations

from ..cardparse import ParsedCard, entity_of, main_metric_keys, metric_base
from ..findings import Finding, sort_findings
from .baseline import check_baselines, check_chance
from .card import (
    _column,
    _scales,
    _tolerance,
    card_evals,
    check_copied,
    check_harmonic,
    check_headline,
    check_identical_rows,
    check_loss_consistency,
    check_model_index,
    check_nolog,
    repair_swapped,
)
from .collapse import check_card_collapse, check_frozen, collapsed_rows, row_collapse
from .common import CHANCE_F1, COLLAPSE_TOLERANCE, REG, Eval, _finite, guarded
from .data import card_eval_size, card_tiny_entities, card_train_bound, check_card_data, check_card_eval_size, check_perfect
from .divergence import EVALUATION, TRAINING, check_learning_rate, check_loss_trend, check_not_finite
from .environment import check_versions, installed_versions
from .training import check_best_not_last_card, check_not_converged, check_overfitting

REGRESSION_MAIN = ("pearson", "pearsonr", "spearmanr", "spearman", "combined_score", "r2", "r_squared")
OTHER_MAIN = ("mcc", "matthews_correlation", "combined_score", "roc_auc", "auc")


def main_metric(task: str | None, mains: dict[str, str], evals: list[Eval]) -> str:
    """The score the checks follow over training: F1 (else accuracy, precision, recall); else the Matthews
    correlation or another score column; for regression Pearson / Spearman / R2; else the validation loss."""
    keys = {k for e in evals for k in e.scores}
    if task == REG:
        return next((k for k in REGRESSION_MAIN if k in keys), "loss")
    found = next((b for b in ("f1", "accuracy", "precision", "recall") if b in mains), None)
    if found:
        return found
    found = next((k for k in OTHER_MAIN if k in keys), None)
    if found:
        return found
    f1s = sorted(k for k in keys if metric_base(k) == "f1")
    return f1s[0] if f1s else "loss"


def majority_share(task: str | None, evals: list[Eval], tol: float = COLLAPSE_TOLERANCE) -> float | None:
    """The majority class's share, when a binary evaluation shows it: a one-class evaluation's accuracy is one
    class's share (all positive: recall 1, precision = accuracy; never positive: precision, recall and F1 0)."""
    for e in evals:
        a = e.metrics.get("accuracy")
        if a is None or not 0 < a < 1 or not row_collapse(task, e.metrics, e.nan_metrics, tol):
            continue
        if e.metrics.get("recall", 0) >= 1 - tol or e.metrics.get("f1", 1) <= tol or "precision" in e.nan_metrics:
            return max(a, 1 - a)
    return None


def total_steps(card: ParsedCard, evals: list[Eval]) -> int | None:
    """The optimizer steps of the whole training: the last row's step, carried on to num_epochs when the table
    ends before it, or training_steps (max_steps) when the card prints it; None when the card shows neither."""
    found = [e for e in evals if e.step]
    steps = card.hyper_float("training_steps")
    candidates = [steps] if steps and steps > 0 else []
    if found:
        last = found[-1]
        candidates.append(last.step)
        epochs = card.hyper_float("num_epochs")
        if epochs and last.epoch and 0 < last.epoch < epochs:
            candidates.append(last.step * epochs / last.epoch)
    return int(round(max(candidates))) if candidates else None


def card_report(card: ParsedCard, installed: dict | None = None) -> tuple[list[Finding], list[str], list[str]]:
    """Every card check; returns (findings, checks that failed on malformed input, checks that could not run and
    why)."""
    swapped = repair_swapped(card)
    scales, range_findings = _scales(card)
    evals = card_evals(card, scales["training results"])
    task = card.task
    lr = card.hyper_float("learning_rate")
    mains = main_metric_keys(card.table.keys) if card.table else {}
    main = main_metric(task, mains, evals)
    head_mains = main_metric_keys(card.headline)
    state = {"published": None}

    def headline():
        found, published = check_headline(card, scales, evals)
        state["published"] = published
        return found

    def values() -> tuple[dict[str, float], float, list[str]]:
        if head_mains:
            cells = {b: card.headline[k] for b, k in head_mains.items()}
            scale = scales["headline"]
        elif evals:
            i = state["published"] if state["published"] is not None else len(evals) - 1
            cells = {b: card.table.rows[i][k] for b, k in mains.items() if card.table.rows[i].get(k) is not None}
            scale = scales["training results"]
        else:
            return {}, COLLAPSE_TOLERANCE, []
        numbers = {b: c.value * scale for b, c in cells.items() if c.kind == "number"}
        nan = [b for b, c in cells.items() if c.kind == "nan"]
        return numbers, _tolerance(cells.values(), COLLAPSE_TOLERANCE), nan

    def published_scores() -> dict[str, float]:
        """Every score of the published results: the headline's, else the published row's."""
        if card.headline:
            scale = scales["headline"]
            return {k: c.value * (scale if metric_base(k) else 1.0) for k, c in card.headline.items()
                    if c.kind == "number" and k not in ("loss", "epoch", "step")}
        if evals:
            e = evals[state["published"] if state["published"] is not None else -1]
            return {**e.scores, **e.metrics}
        return {}

    def head_loss():
        cell = card.headline.get("loss")
        return cell.value if cell is not None and cell.kind in ("number", "nan", "inf") else None

    bound = card_train_bound(card, evals)  # the training set's size bound, once: three checks read it
    tiny = card_eval_size(card, bound) or card_tiny_entities(card, task)

    def collapse():
        numbers, tol, nan = values()
        scores = published_scores()
        f1s = [v for k, v in scores.items() if (k == "f1" or k.endswith("_f1")) and entity_of(k) is None
               and _finite(v)]
        return check_card_collapse(task, numbers, evals, card, tol, state["published"], lr, nan,
                                   never_recovered=bool(f1s) and 0 < min(f1s) < CHANCE_F1)

    def not_finite():
        items = []
        loss = card.headline.get("loss")
        if loss is not None and loss.kind in ("nan", "inf"):
            items.append(("headline", "validation loss", loss.value, EVALUATION))
        for k, c in card.headline.items():
            if c.kind in ("nan", "inf") and k != "loss":
                items.append(("headline", card.headline_names.get(k, k),  c.value,
                              TRAINING if k == "training_loss" else EVALUATION))
        if card.table:
            for e, row in zip(evals, card.table.rows):
                for k, c in row.items():
                    if c.kind in ("nan", "inf", "number") and k not in ("epoch", "step"):
                        if k == "precision" and c.kind == "nan":
                            continue  # 0/0: nothing predicted positive (the collapse check reads it)
                        if metric_base(k) and k in e.nan_metrics and k.endswith("f1"):
                            continue  # F1 of an undefined precision
                        items.append((e.where, _column(card, k), c.value,
                                      TRAINING if k == "training_loss" else EVALUATION))
        return check_not_finite(items, lr)

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
        return check_baselines(task, comparisons, lr)

    def chance():
        if any(f.code in ("D101", "D102") and f.severity == "error" for f in found_so_far):
            return []  # a one-class model: said already
        return check_chance(task, evals, published_scores(), majority=majority_share(task, evals), lr=lr,
                            total_steps=total_steps(card, evals))

    def hyper():
        return check_learning_rate(lr, card.hyper_float("train_batch_size"),
                                   card.hyper_float("gradient_accumulation_steps"),
                                   card.hyper_float("total_train_batch_size"))

    found_so_far: list[Finding] = []

    def collapse_reported() -> set[int]:
        """The evaluations an error-level collapse finding names already."""
        named = {w for f in found_so_far if f.code in ("D101", "D102") and f.severity == "error"
                 for w in f.data.get("rows") or []}
        return {i for i, e in enumerate(evals) if e.where in named}

    def broken() -> bool:
        """A one-class or chance-level model, or scores that cannot be right: its loss curve says nothing about
        overfitting."""
        return any(f.code in ("D101", "D102", "D103", "D203", "D510") and f.severity == "error" for f in found_so_far)

    def run(name, check):
        def wrapped():
            result = check() or []
            found_so_far.extend(result)
            return result
        return name, wrapped

    classification = task != REG
    found, problems = guarded([
        run("swapped columns", lambda: swapped),
        run("range", lambda: range_findings),
        run("headline", headline),
        run("collapse", collapse),
        run("frozen metric", lambda: check_frozen(evals, tiny_eval=tiny is not None, lr=lr,
                                                  reported=collapse_reported(),
                                                  one_class=collapsed_rows(task, evals),
                                                  published=state["published"]) if classification else []),
        run("chance level", chance),
        run("loss against scores", lambda: [] if speech_loss(card) else
            check_loss_consistency(evals, values()[0], head_loss(), task)),
        # perfect scores the loss proves broken (D510) are said there, with the rows: not twice
        run("perfect scores", lambda: [] if any(f.code == "D510" and f.data.get("kind") == "perfect"
                                                for f in found_so_far) else check_perfect(evals, values()[0], task)),
        run("baseline", baselines),
        run("not finite", not_finite),
        run("loss trend", lambda: check_loss_trend(evals, card=True, lr=lr, main=main)),
        run("learning rate", hyper),
        run("overfitting", lambda: [] if broken() else check_overfitting(evals, main, state["published"])),
        run("best not last", lambda: check_best_not_last_card(
            evals, main, state["published"], collapsed_rows(task, evals),
            traced=not card.headline or state["published"] is not None,  # a headline in no row: unknown
            eval_size=tiny[0] if tiny else None)),
        run("not converged", lambda: check_not_converged(evals, main)),
        run("no log", lambda: check_nolog(card, evals)),
        run("copied values", lambda: check_copied(card)),
        run("harmonic mean", lambda: check_harmonic(card, task, scales) if classification else []),
        run("identical rows", lambda: check_identical_rows(card)),
        run("model-index", lambda: check_model_index(card, scales)),
        run("data", lambda: check_card_data(card, bound)),
        run("evaluation set size", lambda: check_card_eval_size(card, task, bound)),
        run("environment", lambda: check_versions(card.versions, installed_versions() if installed is None
                                                  else installed)),
    ])
    return sort_findings(found), problems, card_not_run(card, evals, task)


def card_findings(card: ParsedCard, installed: dict | None = None) -> tuple[list[Finding], list[str]]:
    """Every card check; returns (findings, checks that could not run)."""
    findings, problems, _ = card_report(card, installed)
    return findings, problems


SPEECH_KEYS = ("wer", "cer")


def speech_loss(card: ParsedCard) -> bool:
    """A speech recognition model's card (a WER / CER column or item): its loss is the CTC or decoder loss over the
    transcript, not a cross-entropy over the classes its accuracy counts, so the loss says nothing of it (D510)."""
    keys = set(card.headline) | set(card.table.keys if card.table else [])
    return any(k in SPEECH_KEYS for k in keys)


def card_not_run(card: ParsedCard, evals: list[Eval], task: str | None) -> list[str]:
    """The checks that had nothing to read on this card, and why."""
    out = []
    if speech_loss(card):
        out.append("loss against the scores (D510): a speech recognition loss (WER / CER printed), not the "
                   "classifier's cross-entropy")
    if not evals:
        out.append("over training (frozen metrics, divergence, overfitting, best and last evaluation, convergence, "
                   "identical rows): no Training results table")
    else:
        if not any(_finite(e.validation_loss) for e in evals):
            out.append("overfitting, chance-level loss and the lowest-loss checkpoint: no finite validation loss")
        if not any(_finite(e.training_loss) for e in evals):
            out.append("divergence and overfitting from the training loss: the training loss was not logged "
                       "(logging_strategy='epoch', or logging_steps at most the steps between evaluations, logs it)")
    if not card.headline:
        out.append("headline against the table (D501 / D502): no 'achieves the following results' list")
    if task == REG:
        out.append("classification checks (one class, chance level, perfect scores, F1 = 2PR/(P+R), evaluation set "
                   "size): a regression model")
    elif not any(e.metrics for e in evals) and not main_metric_keys(card.headline):
        out.append("collapse and chance-level formulas (D101 / D102 / D203): no precision, recall, F1 or accuracy")
    if not card.hyperparameters:
        out.append("learning rate and batch size (D304 / D305): no hyperparameters list")
    if not card.versions:
        out.append("framework versions (D701): none listed")
    return out
