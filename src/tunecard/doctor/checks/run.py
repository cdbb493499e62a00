"""Every run check in order: :func:`run_report_parts` and :func:`diagnose_run` (what the card writer uses)."""

from __future__ import annotations

from ...training.history import stop_reason
from ..cardparse import METRIC_BASES
from ..findings import Finding, sort_findings
from .baseline import check_baselines
from .collapse import check_frozen, check_run_collapse
from .common import Eval, _num, _where, guarded, title
from .data import check_run_data
from .divergence import check_learning_rate, check_loss_trend, check_not_finite
from .training import check_best_not_last_run, check_not_converged, check_overfitting


# --- runs --------------------------------------------------------------------------------------------------------


def _config_get(config, key, default=None):
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def run_evals(history: dict) -> list[Eval]:
    evals = []
    rows = history.get("rows") if isinstance(history, dict) else None
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        if not isinstance(row, dict):
            continue
        evals.append(Eval(
            where=_where(row.get("epoch"), row.get("step"), i),
            epoch=_num(row.get("epoch")),
            step=row.get("step") if isinstance(row.get("step"), int) else None,
            training_loss=_num(row.get("training_loss")),
            training_nolog=row.get("training_loss") is None,
            validation_loss=_num(row.get("validation_loss")),
            metrics={k: float(row[k]) for k in METRIC_BASES if _num(row.get(k)) is not None},
        ))
    return evals


def run_report_parts(history: dict, metrics: dict, config) -> tuple[list[Finding], list[str]]:
    history = history if isinstance(history, dict) else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    task = metrics.get("task") or _config_get(config, "task")
    best = history.get("best") if isinstance(history.get("best"), dict) else None
    main = _config_get(config, "metric_for_best_model") or (best or {}).get("metric") or "f1"
    if main not in ("loss", *METRIC_BASES):
        main = "f1"
    evals = run_evals(history)
    steps = [s for s in history.get("steps") or [] if isinstance(s, dict)] \
        if isinstance(history.get("steps"), list) else []

    def not_finite():
        items = []
        for e in evals:
            items += [(e.where, "training loss", e.training_loss), (e.where, "validation loss", e.validation_loss)]
            items += [(e.where, title(k), v) for k, v in e.metrics.items()]
        for s in steps:
            items += [(f"step {s.get('step')}", "step loss", _num(s.get("loss"))),
                      (f"step {s.get('step')}", "gradient norm", _num(s.get("grad_norm")))]
        for split in ("validation", "test"):
            if isinstance(metrics.get(split), dict):
                items.append((split, "loss", _num(metrics[split].get("loss"))))
        return check_not_finite(items)

    def baselines():
        comparisons = []
        for split in ("validation", "test"):
            model = metrics.get(split)
            base = (metrics.get("baselines") or {}).get(split) or {}
            if isinstance(model, dict) and isinstance(base, dict):
                comparisons.append((split, model, [(b.get("strategy", name), b) for name, b in base.items()
                                                   if isinstance(b, dict)]))
        return check_baselines(task, comparisons)

    return guarded([
        ("collapse", lambda: check_run_collapse(task, metrics, history)),
        ("frozen metric", lambda: check_frozen(evals)),
        ("baseline", baselines),
        ("not finite", not_finite),
        ("loss trend", lambda: check_loss_trend(evals, steps)),
        ("learning rate", lambda: check_learning_rate(
            _config_get(config, "learning_rate"), _config_get(config, "train_batch_size"),
            _config_get(config, "gradient_accumulation_steps"))),
        ("overfitting", lambda: check_overfitting(evals, main)),
        ("best not last", lambda: check_best_not_last_run(evals, best, main)),
        ("not converged", lambda: check_not_converged(evals, main, stop_reason(history) is not None)),
        ("data", lambda: check_run_data(task, metrics.get("data") or {})),
    ])


def diagnose_run(history: dict, metrics: dict, config) -> list[Finding]:
    """Every run-level check on a run's history.json, metrics.json and config (a dict or a TrainConfig).

    Pure: reads nothing else, never raises (a check that cannot run on malformed input is skipped), errors first.
    """
    try:
        found, _ = run_report_parts(history, metrics, config)
    except Exception:  # malformed beyond what the guarded checks absorb: no diagnosis rather than no card
        return []
    return sort_findings(found)
