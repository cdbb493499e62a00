"""The kill matrix: a run killed with SIGKILL at each point that matters resumes to the run it would have been.

Each test runs the real command line in subprocesses (tests/kill_probe.py kills the process at a chosen point),
resumes with `--resume`, and compares the finished run with an uninterrupted one: history.json and metrics.json
equal (but for the timings and the resume marker listed below) and model.safetensors byte for byte the same.

The points (tests/kill_probe.py): mid-epoch, during a checkpoint write, after a checkpoint and before anything
else (where the Trainer used to save an epoch's last step before that epoch's evaluation), during an evaluation,
during the final write of the run folder. The slow tests chain the points: each run is killed at the next point
after the one before it was resumed, so every kill's leftovers (an incomplete checkpoint, a staging folder) are
what the next resume starts from, and the finished run must still be the uninterrupted one. The two-process matrix is in tests/test_distributed.py.
"""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WNUT_SAMPLE

from tunecard.training.checkpoint import last_checkpoint
from tunecard.training.outputs import RunFolder

PROBE = Path(__file__).with_name("kill_probe.py")
# metrics.json's keys that may differ after a resume: how long things took, and where the run resumed from
TIMINGS = ("runtime_seconds", "evaluation_seconds", "samples_per_second", "words_per_second")
RESUME_MARKERS = ("resumed_from_step",)

# 16 examples in batches of 4: 4 optimizer steps an epoch. metric_for_best_model: loss (the case): a
# lost last evaluation saves an earlier model, which the model hash shows.
BASE = dict(task="ner", train=str(WNUT_SAMPLE / "train.conll"), validation=str(WNUT_SAMPLE / "dev.conll"),
            max_train_examples=16, max_eval_examples=8, train_batch_size=4, learning_rate=1e-3, precision="fp32",
            metric_for_best_model="loss")
# save_strategy epoch: checkpoints at 4 and 8, evaluations at 4 and 8.
EPOCHS = dict(num_epochs=2)
# save_strategy steps: checkpoints at 2, 4, 6 and 7 (the end, inside epoch 2); evaluations of the untrained model
# (0: not repeated on a resume), at the epoch's end (4) and where training stops (7). The Trainer wrote
# checkpoints 4 and 7 before their evaluations.
STEPS = dict(num_epochs=1.75, save_strategy="steps", save_steps=2, eval_on_start=True)


def _flags(values: dict) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(values: dict, point: str, processes: int, *extra: str) -> subprocess.CompletedProcess:
    if processes == 1:
        command = [sys.executable, str(PROBE), point]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(PROBE), point]
    command += ["train", "--quiet", *_flags(values), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def _finished(output: Path) -> dict:
    """What a finished run folder must reproduce: history, metrics (less timings and resume markers), model."""
    metrics = json.loads((output / "metrics.json").read_text())
    for key in (*TIMINGS, *RESUME_MARKERS):
        metrics["training"].pop(key)
    return {"history": json.loads((output / "history.json").read_text()), "metrics": metrics,
            "model sha256": hashlib.sha256((output / "model.safetensors").read_bytes()).hexdigest()}


def _run_uninterrupted(values: dict, processes: int = 1) -> dict:
    result = _launch(values, "none", processes)
    assert result.returncode == 0, result.stderr[-3000:]
    return _finished(Path(values["output"]))


def _kill_and_resume(values: dict, stages: list[tuple[str, int]], processes: int = 1) -> dict:
    """Kill a run at each (point, the checkpoint it must leave as the last complete one) in turn, each time
    resuming the previous run; then resume to the end. Returns the finished run."""
    output = Path(values["output"])
    checkpoints = RunFolder(output).checkpoints
    for index, (point, expected_checkpoint) in enumerate(stages):
        result = _launch(values, point, processes, *(["--resume"] if index else []))
        if processes == 1:
            assert result.returncode == -signal.SIGKILL, f"{point}: {result.stderr[-3000:]}"
        else:
            assert result.returncode != 0, f"{point}: the run was not killed"
        assert not output.exists(), f"{point}: a killed run left a folder that looks like a finished run"
        last = last_checkpoint(checkpoints)
        assert last is not None and last.name == f"checkpoint-{expected_checkpoint}", (point, last)
    result = _launch(values, "none", processes, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["training"]["resumed_from_step"] == stages[-1][1]
    assert not checkpoints.exists() and sorted(p.name for p in output.parent.iterdir()) == [output.name]
    return _finished(output)


def _assert_same_run(resumed: dict, reference: dict) -> None:
    assert resumed["history"] == reference["history"]
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["model sha256"] == reference["model sha256"]


@pytest.fixture(scope="module")
def steps_reference(tiny_bert_cased, tmp_path_factory):
    values = {**BASE, **STEPS, "model": str(tiny_bert_cased),
              "output": str(tmp_path_factory.mktemp("steps-reference") / "run")}
    return _run_uninterrupted(values)


def test_kill_after_a_checkpoint_before_its_evaluation_resumes_the_evaluation(tiny_bert_cased, tmp_path,
                                                                           steps_reference):
    """The issue's reproducer: save_strategy steps wrote the checkpoint of an epoch's last step before that
    epoch's evaluation; killed between the two, the resume skipped the evaluation."""
    values = {**BASE, **STEPS, "model": str(tiny_bert_cased), "output": str(tmp_path / "run")}
    resumed = _kill_and_resume(values, [("after-checkpoint@4", 4)])
    assert [row["step"] for row in resumed["history"]["rows"]] == [0, 4, 7]
    _assert_same_run(resumed, steps_reference)


@pytest.mark.slow
def test_kill_matrix_save_strategy_steps(tiny_bert_cased, tmp_path, steps_reference):
    values = {**BASE, **STEPS, "model": str(tiny_bert_cased), "output": str(tmp_path / "run")}
    resumed = _kill_and_resume(values, [
        ("mid-epoch@3", 2),  # the checkpoint of step 2 is the last one
        ("checkpoint-write@4", 2),  # checkpoint-4 has weights but no state file: not complete
        ("evaluation@7", 6),  # the last evaluation (training stops inside epoch 2), before checkpoint 7
        ("after-checkpoint@7", 7),  # the last checkpoint, complete: it must hold the last evaluation
        ("final-write", 7),  # nothing left to train: the resume writes the run from checkpoint 7
    ])
    _assert_same_run(resumed, steps_reference)


@pytest.mark.slow
def test_kill_matrix_save_strategy_epoch(tiny_bert_cased, tmp_path):
    values = {**BASE, **EPOCHS, "model": str(tiny_bert_cased)}
    reference = _run_uninterrupted({**values, "output": str(tmp_path / "reference" / "run")})
    resumed = _kill_and_resume({**values, "output": str(tmp_path / "killed" / "run")}, [
        ("after-checkpoint@4", 4),
        ("mid-epoch@6", 4),
        ("evaluation@8", 4),
        ("checkpoint-write@8", 4),
        ("final-write", 8),
    ])
    _assert_same_run(resumed, reference)

