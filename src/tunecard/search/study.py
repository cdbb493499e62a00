"""Hyperparameter search with Optuna: every trial a normal run folder, the study in SQLite, resumable.

`search(config, trials=N)` samples a search space (seeded TPE), trains each trial with `train()` into
OUTPUT/trial-NNN, prunes trials whose validation metric falls below the median of earlier trials at the same
evaluation, and writes a leaderboard and best_config.yaml. The study lives in OUTPUT/study.db: running the same
search again continues it until N trials have finished. See docs/search.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState
from transformers import TrainerCallback

from tunecard.config import LOWER_IS_BETTER, TrainConfig
from tunecard.errors import ConfigError, OutputError
from tunecard.pipeline import train
from tunecard.search.space import Param, check_space, default_space, load_space, parse_space, trial_config
from tunecard.training.evaluate import table_metrics
from tunecard.training.history import PRUNED

__all__ = ["PruningCallback", "SearchResult", "leaderboard", "load_space", "parse_space", "render_leaderboard",
           "search", "trial_config"]

STUDY_FILE = "study.db"
BEST_CONFIG = "best_config.yaml"
LOCK_FILE = ".search.lock"


class PruningCallback(TrainerCallback):
    """Reports each evaluation's metric to the Optuna trial and stops training when the pruner says so.

    The step reported is the evaluation's number (1, 2, ...; 0 for eval_on_start), not the optimizer step, so
    trials with different batch sizes are compared after the same number of epochs.

    Args:
        trial: the running Optuna trial.
        metric: the validation metric key (e.g. "f1", "loss").
    """

    def __init__(self, trial: optuna.Trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.key = f"eval_{metric}"
        self.next_step: int | None = None
        self.stopped_by: dict | None = None  # read by train(): the history, card and doctor say why the run stopped

    @property
    def pruned_at(self) -> int | None:
        """The evaluation after which the pruner stopped the trial (None: not pruned)."""
        return self.stopped_by["evaluation"] if self.stopped_by else None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.next_step is None:
            self.next_step = 0 if args.eval_on_start else 1
        step, self.next_step = self.next_step, self.next_step + 1
        value = (metrics or {}).get(self.key)
        if value is None or math.isnan(value):
            return
        self.trial.report(float(value), step)
        if self.trial.should_prune():
            self.stopped_by = {"reason": PRUNED, "evaluation": step, "metric": self.metric}
            control.should_training_stop = True  # the run folder is still written, with the best weights so far


@dataclass
class SearchResult:
    output: Path
    study: optuna.Study
    leaderboard: list[dict]
    best_config: Path | None


def search(config: TrainConfig, *, trials: int, metric: str | None = None, space: dict[str, Param] | None = None,
           pruning: bool = True, pruner_startup_trials: int = 3, pruner_warmup_evaluations: int = 0, console=None,
           progress: bool = False, trust_pickle: bool = False, callbacks: list | None = None) -> SearchResult:
    """Search hyperparameters until `trials` trials have finished in the study at `config.output`.

    Args:
        config: the base training config; `output` is the search folder (trials go in OUTPUT/trial-NNN).
        trials: finished trials wanted, counting those of earlier runs of the same search (resume).
        metric: validation metric to optimise (default: config.metric_for_best_model); "loss" is minimised.
        space: from `load_space`/`parse_space` (default: `default_space(config)`).
        pruning: stop trials below the median of earlier trials at the same evaluation (Optuna MedianPruner).
        pruner_startup_trials: finished trials before any pruning.
        pruner_warmup_evaluations: evaluations of a trial before it can be pruned.
        console: a rich Console for progress lines (None: quiet).
        progress: show each trial's progress bar.
        trust_pickle: passed to `train`.
        callbacks: extra TrainerCallbacks for every trial.
    Returns:
        SearchResult with the study, the leaderboard rows (best first) and the best_config.yaml path (None when no
        trial completed).
    """
    metric = metric or config.metric_for_best_model
    allowed = ("loss", *table_metrics(config.task))
    if metric not in allowed:
        raise ConfigError("E283", f"unknown metric {metric!r} for {config.task}.", fix=f"use one of {list(allowed)}.")
    if not config.validation:
        raise ConfigError("E282", "a search needs a validation split to score trials on.",
                          fix="pass --validation FILE (or `validation:` in the config).")
    if trials < 1:
        raise ConfigError("E285", f"--trials must be at least 1, got {trials}.", fix="e.g. --trials 20.")
    space = default_space(config) if space is None else space
    check_space(space, config)
    folder = Path(config.output)
    if folder.exists() and (not folder.is_dir() or (not (folder / STUDY_FILE).exists()
                                                    and any(p.name != LOCK_FILE for p in folder.iterdir()))):
        raise OutputError("E406", f"output is not a search folder (it holds no {STUDY_FILE}).", path=folder,
                          fix="choose an empty or new --output.")
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder):
        pruner = (optuna.pruners.MedianPruner(n_startup_trials=pruner_startup_trials,
                                              n_warmup_steps=pruner_warmup_evaluations)
                  if pruning else optuna.pruners.NopPruner())
        study = _open_study(folder, config, metric, space, pruner)
        _recover_interrupted(study, folder, console)
        while (done := sum(map(_counts, study.trials))) < trials:
            _run_trial(study, space, config, folder, metric, done, trials, console, progress, trust_pickle,
                       callbacks or [])
        rows = leaderboard(study, metric)
        _write_leaderboard(folder, rows, metric, study)
        best = _write_best_config(folder, study, config, metric)
    return SearchResult(folder, study, rows, best)


@contextlib.contextmanager
def _exclusive(folder: Path):
    """Hold a lock on the folder: one search at a time, so a RUNNING trial found at start is one whose process died."""
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): running one search per folder is up to the user
        yield
        return
    with open(folder / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError("E405", "another tunecard search is running in this folder.", path=folder,
                              fix="wait for it to finish, or use another --output.") from None
        yield


def _settings(config: TrainConfig, metric: str, space: dict[str, Param]) -> dict:
    """What makes trials comparable; stored with the study and checked on resume (JSON round trip: as stored)."""
    base = config.model_dump(exclude={"output"})
    return json.loads(json.dumps({"metric": metric, "space": {k: p.to_dict() for k, p in space.items()},
                                  "config": base}, default=str))


def _open_study(folder: Path, config: TrainConfig, metric: str, space: dict[str, Param], pruner) -> optuna.Study:
    storage = optuna.storages.RDBStorage(f"sqlite:///{(folder / STUDY_FILE).resolve()}")
    names = optuna.get_all_study_names(storage)
    name = names[0] if names else folder.resolve().name  # the folder may have been renamed since
    previous = len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)) if names else 0
    # Seeded for reproducibility, offset on resume so a continued study does not replay the first draws.
    sampler = optuna.samplers.TPESampler(seed=config.seed + previous)
    direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    settings = _settings(config, metric, space)
    stored = study.user_attrs.get("tunecard")
    changed = [] if study.direction.name.lower() == direction else ["direction"]
    if stored is None and not changed:
        study.set_user_attr("tunecard", settings)
        return study
    if stored is not None:
        changed += [key for key in ("metric", "space") if stored[key] != settings[key]]
        # Keys a later tunecard added to TrainConfig are not in the stored settings: they do not block a resume.
        changed += [f"config.{k}" for k, v in settings["config"].items()
                    if k in stored["config"] and stored["config"][k] != v]
    if changed:
        raise ConfigError("E284", f"the study in this folder was started with other settings (changed: "
                          f"{', '.join(changed)}); its trials would not be comparable.", path=folder / STUDY_FILE,
                          fix="resume with the original config, space and metric, or use another --output.")
    return study


def _counts(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial counts toward --trials once it ran to its end (a NaN score included); interrupted ones do not."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or bool(trial.user_attrs.get("diverged"))


def _recover_interrupted(study: optuna.Study, folder: Path, console) -> None:
    """Trials left RUNNING by a killed process, or stopped by Ctrl-C, are marked failed and queued to run again."""
    retried = {t.user_attrs.get("retry_of") for t in study.trials}
    for t in study.trials:
        if t.state == TrialState.RUNNING:
            study.tell(t.number, state=TrialState.FAIL)
        elif not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")):
            continue
        for leftover in folder.glob(f".trial-{t.number:03d}.*"):  # RunFolder's scratch and staging folders
            shutil.rmtree(leftover, ignore_errors=True)
        if t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            if console is not None:
                console.print(f"trial {t.number} was interrupted: its values will be tried again")


def _run_trial(study, space, config, folder, metric, done, trials, console, progress, trust_pickle, callbacks):
    trial = study.ask()
    params = {name: param.suggest(trial) for name, param in space.items()}
    trial_folder = folder / f"trial-{trial.number:03d}"
    trial.set_user_attr("folder", trial_folder.name)
    if console is not None:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        console.print(f"[bold]trial {trial.number}[/] ({done + 1} of {trials}): {shown}", highlight=False)
    pruning = PruningCallback(trial, metric)
    try:
        provenance = {"study": study.study_name, "study_file": f"../{STUDY_FILE}", "trial": trial.number,
                      "metric": metric, "direction": study.direction.name.lower(), "params": params}
        result = train(trial_config(config, params, trial_folder, metric), console=console, progress=progress,
                       trust_pickle=trust_pickle, callbacks=[pruning, *callbacks], search=provenance)
    except KeyboardInterrupt:
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
        raise
    except BaseException as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
        study.tell(trial, state=TrialState.FAIL)
        raise
    value = result.metrics["validation"].get(metric)  # the saved (best) checkpoint's score
    if pruning.pruned_at is not None:
        trial.set_user_attr("pruned_at", pruning.pruned_at)
        state = TrialState.PRUNED
    elif value is None or math.isnan(value):
        trial.set_user_attr("diverged", True)
        state = TrialState.FAIL
    else:
        state = TrialState.COMPLETE
    _note_trial(trial_folder, study, trial.number, params, metric, value, state, pruning.pruned_at)
    frozen = study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    if console is not None:
        console.print(f"trial {trial.number}: {state.name.lower()}, {metric} {_fmt(frozen.value)}", highlight=False)


def _note_trial(trial_folder: Path, study, number, params, metric, value, state, pruned_at) -> None:
    """trial.json beside the run: the trial's outcome, which its card (written during training) cannot know."""
    note = {"study": study.study_name, "trial": number, "state": state.name.lower(), "params": params,
            "metric": metric, "value": None if value is None or math.isnan(value) else value, "pruned_at": pruned_at}
    (trial_folder / "trial.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")


def leaderboard(study: optuna.Study, metric: str) -> list[dict]:
    """One row per trial: completed ones ranked best first, then pruned ones, then the rest by number."""
    retries = {t.user_attrs["retry_of"]: t.number for t in study.trials if "retry_of" in t.user_attrs}
    sign = -1 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1
    rows = []
    for t in study.trials:
        if t.state == TrialState.WAITING:
            continue
        if t.state == TrialState.PRUNED:
            note = f"pruned after evaluation {t.user_attrs.get('pruned_at', t.last_step)}"
        elif t.user_attrs.get("diverged"):
            note = f"{metric} was NaN"
        elif t.state == TrialState.FAIL:
            note = t.user_attrs.get("error", "interrupted")
            if t.number in retries:
                note += f"; re-run as trial {retries[t.number]}"
        else:
            note = f"re-run of trial {t.user_attrs['retry_of']}" if "retry_of" in t.user_attrs else ""
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), metric: t.value, "params": t.params,
                     "folder": t.user_attrs.get("folder"), "seconds": seconds, "note": note})
    order = {"complete": 0, "pruned": 1}

    def key(row):
        value = row[metric]
        return (order.get(row["state"], 2), sign * value if value is not None else math.inf, row["trial"])

    rows.sort(key=key)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if row["state"] == "complete" else None
    return rows


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _write_leaderboard(folder: Path, rows: list[dict], metric: str, study: optuna.Study) -> None:
    summary = {"study": study.study_name, "metric": metric, "direction": study.direction.name.lower(), "trials": rows}
    (folder / "leaderboard.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    names = sorted({k for row in rows for k in row["params"]})
    lines = [f"# Leaderboard: {study.study_name}", "",
             f"Validation {metric}, {summary['direction']}d; the best complete trial first.", "",
             "| rank | trial | state | " + " | ".join([metric, *names]) + " | folder | note |",
             "|--:|--:|:--|" + "--:|" * (len(names) + 1) + ":--|:--|"]
    for row in rows:
        cells = [_fmt(row["rank"]), str(row["trial"]), row["state"], _fmt(row[metric]),
                 *(_fmt(row["params"].get(n)) for n in names), row["folder"] or "-", row["note"]]
        lines.append("| " + " | ".join(cells) + " |")
    (folder / "leaderboard.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def render_leaderboard(rows: list[dict], metric: str, title: str = "leaderboard"):
    """A rich Table of the leaderboard rows."""
    from rich.table import Table

    names = sorted({k for row in rows for k in row["params"]})
    table = Table(title=title)
    for column in ("rank", "trial", "state", metric, *names, "folder", "note"):
        # fold, never "…": a cut value or key name cannot be read back
        table.add_column(column, justify="left" if column in ("state", "folder", "note") else "right",
                         overflow="fold")
    for row in rows:
        table.add_row(_fmt(row["rank"]), str(row["trial"]), row["state"], _fmt(row[metric]),
                      *(_fmt(row["params"].get(n)) for n in names), row["folder"] or "-", row["note"])
    return table


def _write_best_config(folder: Path, study: optuna.Study, config: TrainConfig, metric: str) -> Path | None:
    """The best complete trial as a full training config; its output is OUTPUT/best, a folder no trial uses."""
    if not any(t.state == TrialState.COMPLETE for t in study.trials):
        return None
    best = study.best_trial
    best_config = trial_config(config, best.params, folder / "best", metric)
    path = folder / BEST_CONFIG
    header = (f"# Best trial of the tunecard search {study.study_name!r}: trial {best.number}, validation {metric} "
              f"{best.value:.4f}.\n# Its model is already in {folder / best.user_attrs.get('folder', '')}; "
              f"`tunecard train {path}` trains it again into `output`.\n")
    path.write_text(header + best_config.to_yaml(), encoding="utf-8")
    return path
