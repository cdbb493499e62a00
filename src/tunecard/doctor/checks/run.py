"""Every run check in order: :func:`run_report_parts` and :func:`diagnose_run` (what the card writer uses)."""

from __future__ import annotations

from ...training.history import stop_reason
from ..cardparse import METRIC_BASES
from ..findings import Finding, sort_findings
from .baseline import check_baselines, check_chance
from .collapse import check_frozen, check_invalid_sequences, check_run_collapse
from .common import CLS, KNOWN_TASKS, MLC, Eval, _finite, _num, _where, guarded, title
from .data import check_perfect, check_run_data
from .divergence import EVALUATION, TRAINING, check_learning_rate, check_loss_trend, check_not_finite
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


def _task(metrics: dict, config) -> str | None:
    return metrics.get("task") or _config_get(config, "task")


def run_report_parts(history: dict, metrics: dict, config) -> tuple[list[Finding], list[str]]:
    history = history if isinstance(history, dict) else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    task = _task(metrics, config)
    best = history.get("best") if isinstance(history.get("best"), dict) else None
    main = _config_get(config, "metric_for_best_model") or (best or {}).get("metric") or "f1"
    if main not in ("loss", *METRIC_BASES):
        main = "f1"
    evals = run_evals(history)
    steps = [s for s in history.get("steps") or [] if isinstance(s, dict)] \
        if isinstance(history.get("steps"), list) else []
    lr = _num(_config_get(config, "learning_rate"))

    def not_finite():
        items = []
        for e in evals:
            items += [(e.where, "training loss", e.training_loss, TRAINING),
                      (e.where, "validation loss", e.validation_loss, EVALUATION)]
            items += [(e.where, title(k), v, EVALUATION) for k, v in e.metrics.items()]
        for s in steps:
            items += [(f"step {s.get('step')}", "step loss", _num(s.get("loss")), TRAINING),
                      (f"step {s.get('step')}", "gradient norm", _num(s.get("grad_norm")), TRAINING)]
        for split in ("validation", "test"):
            if isinstance(metrics.get(split), dict):
                items.append((split, "loss", _num(metrics[split].get("loss")), EVALUATION))
        return check_not_finite(items, lr)

    def baselines():
        comparisons = []
        for split in ("validation", "test"):
            model = metrics.get(split)
            base = (metrics.get("baselines") or {}).get(split) or {}
            if isinstance(model, dict) and isinstance(base, dict):
                comparisons.append((split, model, [(b.get("strategy", name), b) for name, b in base.items()
                                                   if isinstance(b, dict)]))
        return check_baselines(task, comparisons, lr)

    def chance():
        labels = metrics.get("labels") if isinstance(metrics.get("labels"), list) else []
        published = next((metrics[s] for s in ("validation", "test") if isinstance(metrics.get(s), dict)), {})
        published = {k: float(v) for k, v in published.items() if _num(v) is not None and k != "loss"}
        steps_done = [e.step for e in evals if e.step] + [int(s["step"]) for s in steps if _finite(_num(s.get("step")))]
        return check_chance(task, evals, published, classes=len(labels) if task == CLS and len(labels) >= 2 else None,
                            lr=lr, total_steps=max(steps_done) if steps_done else None)

    def perfect():
        published = next((metrics[s] for s in ("validation", "test") if isinstance(metrics.get(s), dict)), {})
        return check_perfect(evals, {k: float(v) for k, v in published.items()
                                     if k in METRIC_BASES and _num(v) is not None}, task)

    return guarded([
        ("collapse", lambda: check_run_collapse(task, metrics, history, lr)),
        ("tag sequences", lambda: check_invalid_sequences(task, metrics, _config_get(config, "decoding"))),
        ("frozen metric", lambda: check_frozen(evals, lr=lr)),
        ("baseline", baselines),
        ("chance level", chance),
        ("perfect scores", perfect),
        ("not finite", not_finite),
        ("loss trend", lambda: check_loss_trend(evals, steps, lr=lr)),
        ("learning rate", lambda: check_learning_rate(
            _config_get(config, "learning_rate"), _config_get(config, "train_batch_size"),
            _config_get(config, "gradient_accumulation_steps"))),
        ("overfitting", lambda: check_overfitting(evals, main)),
        ("best not last", lambda: check_best_not_last_run(evals, best, main)),
        ("not converged", lambda: check_not_converged(evals, main, stop_reason(history) is not None)),
        ("data", lambda: check_run_data(task, metrics.get("data") or {})),
    ])


def run_not_run(history: dict, metrics: dict, config) -> list[str]:
    """The run checks that had nothing to read, and why (a run without a validation split has no per-epoch
    evaluations: it is judged on its test split against the baselines, and says so)."""
    history = history if isinstance(history, dict) else {}
    metrics = metrics if isinstance(metrics, dict) else {}
    task = _task(metrics, config)
    out = []
    if not run_evals(history):
        why = ("the run has no validation split" if not isinstance(metrics.get("validation"), dict)
               else "history.json has no evaluations")
        test = isinstance(metrics.get("test"), dict)
        out.append(f"over training (frozen metrics, overfitting, best epoch, convergence, divergence by epoch): {why}, "
                   "so there are no per-epoch evaluations"
                   + ("; the test split is judged against the baselines instead" if test else ""))
    if not any(isinstance(metrics.get(s), dict) for s in ("validation", "test")):
        out.append("collapse and baselines on the saved model: metrics.json has no validation or test results")
    elif not isinstance(metrics.get("baselines"), dict) or not metrics.get("baselines"):
        out.append("baselines (D201 / D202): metrics.json has no baselines")
    if task == MLC:
        out.append(f"one-class and chance-level formulas: they are for single-label tasks, not {task} (labels never "
                   "predicted are checked instead, D105)")
    elif task not in KNOWN_TASKS:
        out.append(f"one-class and chance-level formulas: task '{task}' (only the task-free checks ran)")
    if not isinstance(metrics.get("data"), dict):
        out.append("data checks (D6xx): metrics.json has no data section")
    return out


def diagnose_run(history: dict, metrics: dict, config) -> list[Finding]:
    """Every run-level check on a run's history.json, metrics.json and config (a dict or a TrainConfig).

    Pure: reads nothing else, never raises (a check that cannot run on malformed input is skipped), errors first.
    """
    try:
        found, _ = run_report_parts(history, metrics, config)
    except Exception:  # malformed beyond what the guarded checks absorb: no diagnosis rather than no card
        return []
    return sort_findings(found)
