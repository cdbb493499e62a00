"""Every card check in order: :func:`card_findings` (what ``diagnose_card`` reports)."""

from __future__ import annotations

from ..cardparse import ParsedCard, main_metric_keys
from ..findings import Finding, sort_findings
from .baseline import check_baselines
from .card import (
    _column,
    _scales,
    _tolerance,
    card_evals,
    check_copied,
    check_harmonic,
    check_headline,
    check_identical_rows,
    check_model_index,
    check_nolog,
)
from .collapse import check_card_collapse, check_frozen
from .common import COLLAPSE_TOLERANCE, guarded
from .data import check_card_data
from .divergence import check_learning_rate, check_loss_trend, check_not_finite
from .environment import check_versions, installed_versions
from .training import check_best_not_last_card, check_not_converged, check_overfitting


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
