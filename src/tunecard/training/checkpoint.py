"""Resumable runs: the Trainer's checkpoints, completed with tunecard's own state, in a hidden folder beside the output.

A checkpoint is `.<output>.checkpoints/checkpoint-<step>/`: the Trainer writes the weights (safetensors),
optimizer, scheduler, RNG states and trainer_state.json (the data position); `CheckpointKeeper` then adds the
recorder's history and best weights and, last, `tunecard_state.json`. Only a folder with that file is complete,
so a run killed while saving resumes from the previous checkpoint. The folder holds the run's config, and a
resume with another config is refused. The finished run folder still appears only by one rename at the end.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time
from pathlib import Path

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import SAFE_WEIGHTS_NAME

from tunecard.config import CONFIG_FILE, TrainConfig, load_config_yaml
from tunecard.errors import ConfigError
from tunecard.training.distributed import world_size
from tunecard.training.recorder import RunRecorder

STATE_FILE = "tunecard_state.json"  # written last: its presence marks a complete checkpoint
# The Trainer's torch.save files that a resume loads (optimizer, scheduler, scaler, each process's RNG state):
# read with weights_only=True, which refuses pickled Python objects beyond tensors and plain containers.
TORCH_STATE_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")
OPTIMIZER_LAYOUT = "optimizer_layout"  # in the checkpoint's plan record: how the optimizer state is laid out
DENSE, SPARSE_ROWS = "dense moments", "sparse embedding rows in slot order"


def optimizer_layout(plan) -> str:
    return SPARSE_ROWS if plan.uses("sparse_embedding") else DENSE


BEST_WEIGHTS = "best_model.safetensors"
# Keys a resume may change: `output` (the checkpoint folder's place already ties it to the output: runs/x =
# ./runs/x) and `ddp_timeout` (E225's remedy is to raise it and resume); neither changes what is trained.
RESUMABLE_CHANGES = ("output", "ddp_timeout")


def _step(folder: Path) -> int:
    suffix = folder.name[len(PREFIX_CHECKPOINT_DIR) + 1:]
    return int(suffix) if suffix.isdigit() else -1


def last_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    if not folder.is_dir():
        return None
    complete = [p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if (p / STATE_FILE).is_file() and _step(p) >= 0]
    return max(complete, key=_step, default=None)


def config_differences(saved: Path, config: TrainConfig) -> list[str]:
    """Keys whose values differ between the config saved with the checkpoints and this one."""
    try:
        old = TrainConfig(**(load_config_yaml(saved.read_text(encoding="utf-8")) or {})).model_dump()
    except (OSError, yaml.YAMLError, ValueError):
        return ["(the saved config cannot be read)"]
    new = config.model_dump()
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in new
            if key not in RESUMABLE_CHANGES and old.get(key) != new.get(key)]


def find_resume(config: TrainConfig, folder: Path, *, resume: bool, overwrite: bool) -> Path | None:
    """Decide where a run starts. Read-only, so every process of a distributed run decides alike.

    Args:
        config: the new run's configuration.
        folder: the output's checkpoint folder.
        resume: the user asked to resume (an error if there is nothing to resume).
        overwrite: the user allows replacing things: checkpoints of another configuration are discarded.
    Returns:
        the checkpoint to resume from, or None to start afresh.
    Raises:
        ConfigError: nothing to resume with `resume`, or the checkpoints belong to another config or world size.
    """
    checkpoint = last_checkpoint(folder)
    if checkpoint is None:
        if resume:
            raise ConfigError("E220", "--resume: there is no complete checkpoint to resume from.", path=folder,
                              fix="run without --resume to start afresh.")
        return None
    differences = config_differences(folder / CONFIG_FILE, config)
    if differences:
        if overwrite and not resume:
            return None  # start over: the main process clears the folder
        raise ConfigError(
            "E221", f"the checkpoints here were made with another configuration ({'; '.join(differences[:8])}).",
            path=folder, fix="re-run with the same configuration to resume, or pass --overwrite (without --resume) "
                             f"to discard the checkpoints, or delete {folder}.")
    problem = unsafe_state_file(checkpoint)
    if problem:
        if overwrite and not resume:
            return None  # start over, as for checkpoints of another configuration: the main process clears them
        name, reason = problem
        raise ConfigError(
            "E223", f"the checkpoint's {name} cannot be loaded safely ({reason}): it is read with torch.load("
                    "weights_only=True), which loads tensors and plain values only, and tunecard never unpickles "
                    "other objects, since unpickling can run arbitrary code.", path=checkpoint / name,
            fix=f"if you did not put it there, pass --overwrite (without --resume) to discard the checkpoints and "
                f"train afresh, or delete {folder}.")
    saved_world = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8")).get("world_size", 1)
    if saved_world != world_size():
        raise ConfigError(
            "E222", f"the checkpoint was made by {saved_world} process(es); this run has {world_size()}: the data "
                    "order and random states would not continue.", path=checkpoint,
            fix=f"resume with --nproc_per_node (x nodes) = {saved_world}, or delete {folder} to start afresh.")
    return checkpoint


def unsafe_state_file(checkpoint: Path) -> tuple[str, str] | None:
    """The first of the checkpoint's torch.save files that the resume could not load safely, and why: a pickled
    object weights_only refuses, or a damaged file. None when every one loads (tensors mapped, not read)."""
    from transformers.trainer_pt_utils import safe_globals  # the numpy types the Trainer's RNG files hold

    files = sorted({path for pattern in TORCH_STATE_FILES for path in checkpoint.glob(pattern)})
    for path in files:
        try:
            with safe_globals():
                try:
                    torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError as exc:
                    if "mmap" not in str(exc):  # a file in torch's legacy format cannot be mapped: read it
                        raise
                    torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"GLOBAL (\S+)", str(exc))
            return path.name, f"it holds a pickled Python object{f' ({found.group(1)})' if found else ''}"
        except (RuntimeError, EOFError, ValueError, OSError) as exc:
            return path.name, f"the file is damaged: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}"
    return None


def prepare_folder(folder: Path, config: TrainConfig, checkpoint: Path | None) -> None:
    """Main process only: a fresh run gets an empty folder with its config; a resumed one loses unfinished saves."""
    if checkpoint is None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        config.save(folder)
        return
    for other in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if other != checkpoint:
            shutil.rmtree(other, ignore_errors=True)


def restore(checkpoint: Path, recorder: RunRecorder) -> dict:
    """Load the recorder's history and best weights from a checkpoint; return the saved state."""
    state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
    recorder.load_state_dict(state["recorder"])
    if (checkpoint / BEST_WEIGHTS).is_file():
        recorder.best_state = load_file(checkpoint / BEST_WEIGHTS)
    return state


class CheckpointKeeper(TrainerCallback):
    """Completes each Trainer checkpoint with the recorder's state, then removes the older checkpoints.

    Args:
        folder: the checkpoint folder (the Trainer's output_dir).
        recorder: the run's recorder (history rows, step losses, best weights).
        elapsed_seconds: training time before this process started (from the resumed checkpoint).
    """

    def __init__(self, folder: Path, recorder: RunRecorder, elapsed_seconds: float = 0.0):
        self.folder = Path(folder)
        self.recorder = recorder
        self.prior_seconds = elapsed_seconds
        self._started = time.perf_counter()
        self._best_file: Path | None = None
        self._best_step: int | None = None
        self._plan: dict | None = None

    def check_plan(self, plan, start: Path | None) -> None:
        """Record the run's speed plan for its checkpoints, and refuse to resume one whose optimizer state has
        another layout (sparse embedding rows kept in slot order cannot feed a dense AdamW, nor the reverse)."""
        self._plan = {**plan.record(), OPTIMIZER_LAYOUT: optimizer_layout(plan)}
        if start is None:
            return
        saved = json.loads((start / STATE_FILE).read_text(encoding="utf-8")).get("speed")
        if saved is None:  # checkpoints from before the plan was recorded
            return
        before, now = saved.get(OPTIMIZER_LAYOUT, DENSE), self._plan[OPTIMIZER_LAYOUT]
        if before != now:
            raise ConfigError(
                "E224", f"the checkpoint's optimizer state was saved with {before} (speed plan on {saved.get('device')}"
                f"); this run would train with {now} (on {plan.device}).", path=start,
                fix="resume on the kind of device and with the speed settings the run started with, or pass "
                    "--overwrite to start afresh.")

    def elapsed(self) -> float:
        """Training time of the whole run, this process's part included."""
        return self.prior_seconds + time.perf_counter() - self._started

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_save(self, args, state, control, **kwargs):
        if args.world_size > 1:  # every rank's RNG file must be on disk before the checkpoint is marked complete
            import torch.distributed as dist

            dist.barrier()
        if not state.is_world_process_zero:
            return
        target = self.folder / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        best = self.recorder.best_row
        if self.recorder.best_state is not None:
            best_file = target / BEST_WEIGHTS
            unchanged = self._best_step == best["step"] and _link(self._best_file, best_file)
            if not unchanged and not (best["step"] == state.global_step
                                      and _link_saved_model(target, self.recorder.best_state, best_file)):
                save_file(self.recorder.best_state, best_file)
            self._best_file, self._best_step = best_file, best["step"]
        data = {"global_step": state.global_step, "world_size": args.world_size, "elapsed_seconds": self.elapsed(),
                "recorder": self.recorder.state_dict(), "speed": self._plan}
        partial = target / (STATE_FILE + ".tmp")
        partial.write_text(json.dumps(data), encoding="utf-8")
        os.replace(partial, target / STATE_FILE)  # atomic: the checkpoint is complete from here on
        for other in self.folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
            if other != target:
                shutil.rmtree(other, ignore_errors=True)


# safetensors' header names of the dtypes a state dict holds here; another dtype is written, not linked
_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}


def _link_saved_model(checkpoint: Path, best_state: dict, target: Path) -> bool:
    """Hard-link the checkpoint's own model file as the best weights when they are this step's: the Trainer has
    just written the same tensors (0.13 s of writing saved for MiniLM). Only if the file holds exactly the best
    state's names, shapes and dtypes (read from its header), so loading either gives the same state dict."""
    model_file = checkpoint / SAFE_WEIGHTS_NAME
    try:
        with safe_open(model_file, framework="pt") as saved:
            names = set(saved.keys())
            if names != set(best_state):
                return False
            for name in names:
                piece = saved.get_slice(name)
                tensor = best_state[name]
                if list(piece.get_shape()) != list(tensor.shape) or _DTYPES.get(piece.get_dtype()) != tensor.dtype:
                    return False
    except (OSError, ValueError, RuntimeError):
        return False
    return _link(model_file, target)



def _link(source: Path | None, target: Path) -> bool:
    """Hard-link unchanged best weights into the new checkpoint instead of writing them again."""
    try:
        os.link(source, target)
        return True
    except (OSError, TypeError):  # no earlier file, or a filesystem without hard links
        return False
