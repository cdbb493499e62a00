"""Trainer callbacks: record the history the card is made from, keep the best weights, show progress.

The card is rendered from what these callbacks collect (history rows and step losses), never from the
Trainer's log strings, so every number in the card can be traced to history.json.
"""

from __future__ import annotations

import math
import sys
import time

import torch
from transformers import TrainerCallback

from tunecard.config import LOWER_IS_BETTER
from tunecard.training.evaluate import table_metrics
from tunecard.training.history import EARLY_STOPPING, stop_reason


def _is_better(value: float, best: float | None, greater_is_better: bool) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value > best if greater_is_better else value < best


class RunRecorder(TrainerCallback):
    """Collects step losses and one history row per evaluation; snapshots the best weights.

    Args:
        task: the run's task (chooses the metric columns).
        metric: the key of the metric that selects the best checkpoint (e.g. "f1", "loss").
        patience: stop after this many evaluations without improvement (None: never).
        console: a rich Console to print each evaluation row on (None: silent).
    """

    def __init__(self, task: str, metric: str, patience: int | None = None, console=None):
        self.task = task
        self.metric = metric
        self.greater_is_better = metric not in LOWER_IS_BETTER
        self.patience = patience
        self.console = console
        self.steps: list[dict] = []  # one entry per optimizer step: step, epoch, loss, learning_rate, grad_norm
        self.rows: list[dict] = []  # one per evaluation
        self.details: dict | None = None  # full scorer result of the last evaluation, set by the trainer
        self.best_value: float | None = None
        self.best_row: dict | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.evaluations_without_improvement = 0
        # Why training ended before its configured end, or None: {"reason": "early_stopping"|"pruned", ...}.
        self.stopped_by: dict | None = None
        self._last_eval_step = 0
        self.evaluation_seconds = 0.0  # time spent in evaluations during training (set by the trainer)

    def history(self) -> dict:
        """history.json: every evaluation row, every step's loss, and which evaluation was kept."""
        best = None
        if self.best_row is not None:
            best = {"epoch": self.best_row["epoch"], "step": self.best_row["step"], "metric": self.metric,
                    "value": self.best_value}
        return {"rows": self.rows, "steps": self.steps, "best": best, "stopped_by": self.stopped_by}

    def state_dict(self) -> dict:
        """Everything but the weights, as JSON: a resumed run continues the same history (see checkpoint.py)."""
        best_index = next((i for i, row in enumerate(self.rows) if row is self.best_row), None)
        return {"steps": self.steps, "rows": self.rows, "best_index": best_index, "best_value": self.best_value,
                "evaluations_without_improvement": self.evaluations_without_improvement,
                "stopped_by": self.stopped_by, "last_eval_step": self._last_eval_step,
                "evaluation_seconds": self.evaluation_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.rows = state["rows"]
        self.best_row = None if state["best_index"] is None else self.rows[state["best_index"]]
        self.best_value = state["best_value"]
        self.evaluations_without_improvement = state["evaluations_without_improvement"]
        self.stopped_by = stop_reason(state)
        self._last_eval_step = state["last_eval_step"]
        self.evaluation_seconds = state["evaluation_seconds"]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and "eval_loss" not in logs:
            self.steps.append(
                {
                    "step": state.global_step,
                    "epoch": round(state.epoch or 0.0, 4),
                    "loss": float(logs["loss"]),
                    "learning_rate": float(logs.get("learning_rate", float("nan"))),
                    "grad_norm": float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                }
            )

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        details = self.details or {}
        since = [s["loss"] for s in self.steps if s["step"] > self._last_eval_step]
        row = {
            # Mean loss of every optimizer step since the previous evaluation: never "No log".
            "training_loss": sum(since) / len(since) if since else None,
            "epoch": round(state.epoch or 0.0, 4),
            "step": state.global_step,
            "validation_loss": details.get("loss"),
        }
        for key in table_metrics(self.task):
            row[key] = details.get(key)
        row["per_label"] = details.get("per_label", {})
        self._last_eval_step = state.global_step
        self.rows.append(row)
        value = row["validation_loss"] if self.metric == "loss" else details.get(self.metric)
        improved = _is_better(value, self.best_value, self.greater_is_better)
        if improved:
            self.best_value = value
            self.best_row = row
            # Keep the best weights in memory: the saved model IS the best checkpoint.
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.evaluations_without_improvement = 0
        else:
            self.evaluations_without_improvement += 1
            if self.patience and self.evaluations_without_improvement >= self.patience:
                self.stopped_by = {"reason": EARLY_STOPPING, "evaluation": len(self.rows), "patience": self.patience}
                control.should_training_stop = True
        row["is_best_so_far"] = improved
        if self.console is not None:
            self._print_row(row, improved)

    def _print_row(self, row: dict, improved: bool) -> None:
        def fmt(v):
            return "No log" if v is None else f"{v:.4f}"

        parts = [f"epoch {row['epoch']:.2f}", f"step {row['step']}", f"train loss {fmt(row['training_loss'])}",
                 f"val loss {fmt(row['validation_loss'])}"]
        parts += [f"{k} {fmt(row[k])}" for k in table_metrics(self.task)]
        mark = "  [bold green]best[/]" if improved else ""
        self.console.print(" | ".join(parts) + mark)


# Output redirected to a file gets a plain line this often instead of a live bar (which would write thousands
# of carriage-return updates): a long run in a log is not silent until its first evaluation.
PLAIN_PROGRESS_SECONDS = 60.0


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


class ProgressBar(TrainerCallback):
    """Training progress over optimizer steps: running loss, throughput and time left.

    On a terminal a tqdm bar; otherwise (a log file) a plain line every PLAIN_PROGRESS_SECONDS.

    Args:
        samples_per_step: examples per optimizer step over all processes (batch x accumulation x world size).
        enabled: show progress (main process only).
    """

    def __init__(self, samples_per_step: int, enabled: bool = True):
        self.samples_per_step = samples_per_step
        self.enabled = enabled
        self.bar = None
        self.plain = False
        self._start = None
        self._steps_done = 0
        self._last_line = 0.0
        self._loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._last_line = time.perf_counter()
        if not (self.enabled and state.is_world_process_zero):
            return
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step", dynamic_ncols=True, leave=False)
        else:
            self.plain = True

    def _samples_per_second(self) -> float:
        return self._steps_done * self.samples_per_step / max(time.perf_counter() - self._start, 1e-9)

    def on_step_end(self, args, state, control, **kwargs):
        self._steps_done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.plain and time.perf_counter() - self._last_line >= PLAIN_PROGRESS_SECONDS:
            self._last_line = time.perf_counter()
            samples_per_second = self._samples_per_second()
            left = (state.max_steps - state.global_step) * self.samples_per_step / max(samples_per_second, 1e-9)
            loss = f", loss {self._loss:.4f}" if self._loss is not None else ""
            print(f"train: step {state.global_step}/{state.max_steps} ({state.global_step / state.max_steps:.1%})"
                  f"{loss}, {samples_per_second:.1f} samples/s, {_clock(left)} left", file=sys.stderr, flush=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._loss = float(logs["loss"])
            if self.bar is not None:
                self.bar.set_postfix(loss=f"{self._loss:.4f}", samples_s=f"{self._samples_per_second():.1f}", refresh=False)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
