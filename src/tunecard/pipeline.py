"""A whole fine-tuning run: read → validate → encode → plan → fit → diagnose → card, into one run folder.

`train(config)` is the whole path; the CLI only builds the config. The steps of the run itself are in
`training/run.py`; this module owns the run folder (resume, atomic writing) and writes what the run made: the
best checkpoint (save_pretrained, safetensors), train_config.yaml, history.json, metrics.json, the plots and the
model card with its diagnosis.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from tunecard import environment
from tunecard.config import TrainConfig
from tunecard.reporting.card import write_card
from tunecard.reporting.plots import write_plots
from tunecard.training.checkpoint import find_resume, last_checkpoint, prepare_folder
from tunecard.training.distributed import is_main_process, wait_for_main
from tunecard.training.outputs import RunFolder
from tunecard.training.run import Fitted, run


@dataclass
class RunResult:
    output: Path
    history: dict
    metrics: dict
    main_process: bool = True  # False in the other ranks of a distributed run: they write nothing


def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = False, console=None, progress: bool = True,
          trust_pickle: bool = False, callbacks: list | None = None, search: dict | None = None) -> RunResult:
    """Run a whole fine-tuning job and write its folder.

    Args:
        config: the validated configuration.
        overwrite: replace a non-empty output folder (otherwise that is an error, checked before training).
        resume: continue from the last checkpoint, an error if there is none. Without it a run still continues
            from checkpoints left beside the output by a killed run with the same configuration.
        console: a rich Console for the per-evaluation rows (None: quiet).
        progress: show a progress bar.
        trust_pickle: allow a base model folder that has only pickle weights (can run code: trusted sources only).
        callbacks: extra TrainerCallbacks (e.g. a search's pruning callback); they run after the recorder's. One
            that stops training sets its `stopped_by` to {"reason": ..., ...}: the history, card and doctor say why.
        search: the hyperparameter search this run is a trial of (study, trial, metric, direction, params): kept in
            metrics.json and shown on the card.
    """
    main = is_main_process()  # in a distributed run only rank 0 prints and writes
    run_folder = RunFolder(config.output, overwrite=overwrite, console=console if main else None)
    if main:
        run_folder.clean_stale()  # what a killed run of this output left beside it
    start = find_resume(config, run_folder.checkpoints, resume=resume, overwrite=overwrite)
    run_folder.check(resuming=start is not None)
    if main and config.save_strategy != "no":
        prepare_folder(run_folder.checkpoints, config, start)
    finished = False
    try:
        fitted = run(config, run_folder, start, console=console if main else None, progress=progress,
                     trust_pickle=trust_pickle, callbacks=callbacks, search=search)
        result = write_run(config, run_folder, fitted) if fitted.main_process else \
            RunResult(run_folder.path, fitted.history, {}, main_process=False)
        finished = True
        return result
    finally:
        run_folder.discard_scratch()
        if main and (finished or last_checkpoint(run_folder.checkpoints) is None):
            run_folder.discard_checkpoints()  # kept after a failure only when there is something to resume
        environment.release_memory()


def write_run(config: TrainConfig, run_folder: RunFolder, fitted: Fitted) -> RunResult:
    """The run folder, written beside the output and renamed into place: model, tokenizer, config, history,
    metrics, plots and the card."""
    with run_folder.writing() as folder:
        fitted.model.save_pretrained(folder, safe_serialization=True)
        fitted.tokenizer.save_pretrained(folder)
        config.save(folder)
        _write_json(folder / "history.json", fitted.history)
        _write_json(folder / "metrics.json", fitted.metrics)
        plots = write_plots(folder, fitted.history, fitted.metrics, config.task)
        write_card(folder, config, fitted.history, fitted.metrics, plots)
        _keep_tensorboard_logs(Path(fitted.trainer.args.output_dir), folder)
    wait_for_main()  # the other processes return once the run is in place
    return RunResult(run_folder.path, fitted.history, fitted.metrics)


TENSORBOARD_FOLDER = "tensorboard"


def _keep_tensorboard_logs(output_dir: Path, folder: Path) -> None:
    """report_to tensorboard writes under the Trainer's output_dir/runs/ (a scratch folder removed at the end):
    keep its event files in the run, so `tensorboard --logdir RUN_DIR` finds them."""
    logs = output_dir / "runs"
    if logs.is_dir():
        shutil.copytree(logs, folder / TENSORBOARD_FOLDER)


def _json_safe(value):
    """NaN/inf become null (JSON has no NaN); tuples become lists."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_json(path: Path, data) -> None:
    path.write_text(json.dumps(_json_safe(data), indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
