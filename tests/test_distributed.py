"""Data-parallel training under torchrun: two CPU processes (gloo), different shards, one complete run folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import WNUT_SAMPLE
from test_kill_matrix import BASE as KILL_BASE
from test_kill_matrix import STEPS as KILL_STEPS
from test_kill_matrix import _assert_same_run, _kill_and_resume, _run_uninterrupted

torch_distributed = pytest.importorskip("torch.distributed")
PROBE = Path(__file__).with_name("distributed_probe.py")
KILL_PROBE = Path(__file__).with_name("kill_probe.py")
EXAMPLES, PER_DEVICE_BATCH, EPOCHS = 32, 4, 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(not torch_distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_processes_train_on_different_shards_and_write_once(tiny_bert_cased, tmp_path):
    output, logs = tmp_path / "runs" / "ddp", tmp_path / "logs"
    logs.mkdir()
    values = dict(task="ner", model=tiny_bert_cased, train=WNUT_SAMPLE / "train.conll",
                  validation=WNUT_SAMPLE / "dev.conll", output=output, num_epochs=EPOCHS,
                  max_train_examples=EXAMPLES, max_eval_examples=24, train_batch_size=PER_DEVICE_BATCH,
                  learning_rate=1e-3, precision="fp32", train_sampling="bucketed")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", str(PROBE), str(logs), "train", "--quiet"]
    command += [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.count("wrote ") == 1, "only rank 0 reports (and writes) the run"

    # Each rank saw every epoch's examples it was given once; the two ranks' shards are disjoint and cover all.
    per_epoch = EXAMPLES // 2
    seen = [[int(i) for i in (logs / f"rank{rank}.txt").read_text().split()] for rank in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == per_epoch * EPOCHS
    for epoch in range(EPOCHS):
        shards = [set(indices[epoch * per_epoch:(epoch + 1) * per_epoch]) for indices in seen]
        assert len(shards[0]) == len(shards[1]) == per_epoch
        assert not shards[0] & shards[1]
        assert shards[0] | shards[1] == set(range(EXAMPLES))

    # One run folder, complete; no scratch, staging or checkpoint folder left beside it.
    assert [p.name for p in output.parent.iterdir()] == ["ddp"]
    for name in ("README.md", "model.safetensors", "config.json", "tokenizer.json", "history.json", "metrics.json"):
        assert (output / name).is_file(), name
    metrics = json.loads((output / "metrics.json").read_text())
    history = json.loads((output / "history.json").read_text())
    training = metrics["training"]
    steps_per_epoch = EXAMPLES // (PER_DEVICE_BATCH * 2)
    assert training["world_size"] == 2 and training["distributed_backend"] == "gloo"
    assert training["total_train_batch_size"] == PER_DEVICE_BATCH * 2
    assert training["global_steps"] == len(history["steps"]) == steps_per_epoch * EPOCHS
    assert [row["step"] for row in history["rows"]] == [steps_per_epoch, 2 * steps_per_epoch]
    card = (output / "README.md").read_text()
    assert "- num_devices: 2" in card and f"- total_train_batch_size: {PER_DEVICE_BATCH * 2}" in card
    assert "- distributed_type: multi-CPU" in card


# The same global batch of 4 examples a step, taken as 4 by one process, 2 + 2 by two processes, or 2 + 2 by
# gradient accumulation. The model has no dropout, so the losses differ only by the order of float sums: padded
# and packed batches of other sizes. Stated tolerance: 1e-4 relative.
SAME_BATCH = dict(task="ner", train=str(WNUT_SAMPLE / "train.conll"), num_epochs=2, max_train_examples=16,
                  learning_rate=1e-3, precision="fp32", save_strategy="no")
LOSS_TOLERANCE = 1e-4


def _same_steps(got: list[dict], want: list[dict]) -> None:
    assert [s["step"] for s in got] == [s["step"] for s in want] == list(range(1, len(want) + 1))
    for mine, theirs in zip(got, want):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=LOSS_TOLERANCE), mine["step"]
        assert mine["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=LOSS_TOLERANCE), mine["step"]


def test_gradient_accumulation_records_the_loss_of_the_whole_batch(no_dropout_bert, tmp_path):
    """The model returns each micro-batch's mean; the Trainer added them up (and so did the gradient): 2 steps
    of accumulation recorded twice the loss and the gradient norm of one batch of their size."""
    from tunecard.config import build_config
    from tunecard.pipeline import train

    values = {**SAME_BATCH, "model": str(no_dropout_bert)}
    whole = train(build_config(None, {**values, "output": str(tmp_path / "whole"), "train_batch_size": 4}),
                  progress=False)
    accumulated = train(build_config(None, {**values, "output": str(tmp_path / "accumulated"), "train_batch_size": 2,
                                            "gradient_accumulation_steps": 2}), progress=False)
    _same_steps(accumulated.history["steps"], whole.history["steps"])


# Two processes of 2 examples (4 a step), the kill matrix's steps config: the run the two-process kill matrix must
# resume to, and whose losses one process of 4 must record.
@pytest.fixture(scope="module")
def two_process_run(no_dropout_bert, tmp_path_factory):
    values = {**KILL_BASE, **KILL_STEPS, "model": str(no_dropout_bert), "train_batch_size": 2}
    reference = _run_uninterrupted({**values, "output": str(tmp_path_factory.mktemp("two-processes") / "run")},
                                   processes=2)
    return values, reference


@pytest.mark.slow
@pytest.mark.skipif(not torch_distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_processes_record_the_loss_of_one_process_on_the_same_batch(two_process_run, tmp_path):
    """average_tokens_across_devices multiplied the model's local mean by the world size: the first step's loss
    was 4.655 on two processes for 2.319 on one."""
    from tunecard.config import build_config
    from tunecard.pipeline import train

    values, two = two_process_run
    one = train(build_config(None, {**values, "output": str(tmp_path / "one"), "train_batch_size": 4}),
                progress=False).history
    assert two["metrics"]["training"]["world_size"] == 2
    _same_steps(two["history"]["steps"], one["steps"])
    # the card's Training Loss column: the mean of the steps since the previous evaluation
    assert [row["training_loss"] for row in two["history"]["rows"]][1:] == pytest.approx(
        [row["training_loss"] for row in one["rows"]][1:], rel=LOSS_TOLERANCE)


@pytest.mark.slow
@pytest.mark.skipif(not torch_distributed.is_gloo_available(), reason="torch built without gloo")
def test_kill_matrix_two_processes(two_process_run, tmp_path):
    """torchrun, two CPU processes over gloo: a rank killed with SIGKILL (the launcher then ends the other)
    resumes to the uninterrupted two-process run (tests/test_kill_matrix.py)."""
    values, reference = two_process_run
    resumed = _kill_and_resume({**values, "output": str(tmp_path / "killed" / "run")}, [
        ("mid-epoch@3:1", 2),  # rank 1 dies; rank 0 waits for it in step 3's loss gather and is ended
        ("after-checkpoint@4:0", 4),
        ("final-write", 7),
    ], processes=2)
    _assert_same_run(resumed, reference)


@pytest.mark.slow
@pytest.mark.skipif(not torch_distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_processes_with_class_weights_record_one_processs_weighted_loss(no_dropout_bert, tmp_path):
    """The run's own loss (class weights): each process's summed weighted loss over the step's summed weights of
    both processes, so two processes of 2 record one process of 4's weighted mean (not the mean of their means)."""
    from tunecard.config import build_config
    from tunecard.pipeline import train

    values = {**SAME_BATCH, "model": str(no_dropout_bert), "class_weights": "balanced"}
    one = train(build_config(None, {**values, "output": str(tmp_path / "one"), "train_batch_size": 4}),
                progress=False)
    two = _run_uninterrupted({**values, "output": str(tmp_path / "two"), "train_batch_size": 2}, processes=2)
    assert two["metrics"]["training"]["world_size"] == 2 and two["metrics"]["class_weights"]["setting"] == "balanced"
    _same_steps(two["history"]["steps"], one.history["steps"])


@pytest.mark.slow
@pytest.mark.skipif(not torch_distributed.is_gloo_available(), reason="torch built without gloo")
def test_a_frozen_rank_stops_the_run_after_ddp_timeout_with_its_rank_named(tiny_bert_cased, tmp_path):
    """Rank 1 stops itself (SIGSTOP) after step 2; rank 0 waits ddp_timeout (10 s), not the Trainer's 30 minutes,
    then stops with E225 naming rank 1."""
    pid_file = tmp_path / "stopped.pid"
    values = {**SAME_BATCH, "model": tiny_bert_cased, "output": tmp_path / "run", "train_batch_size": 2,
              "ddp_timeout": 10}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", str(KILL_PROBE), "stop@2:1", "train", "--quiet"]
    command += [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "KILL_PROBE_PID_FILE": str(pid_file)})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 400
        while not any("[E225]" in line for line in lines):
            assert process.poll() is None, "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "no E225 within 400 s: " + "".join(lines)[-4000:]
            time.sleep(0.2)
    finally:
        if pid_file.is_file():  # the stopped rank: the launcher would wait 30 s before it kills it
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        process.wait(timeout=120)
        reader.join(timeout=10)
    output = "".join(lines)
    assert process.returncode != 0
    error = next(line for line in output.splitlines() if "[E225]" in line)
    assert "rank 1 of 2 processes stopped answering: rank 0 waited ddp_timeout (10 s)" in " ".join(output.split())
    assert "Traceback" not in output.split("[E225]")[0].splitlines()[-1], error
    assert "raise ddp_timeout" in " ".join(output.split())
    assert not (tmp_path / "run").exists()


def test_ddp_timeout_is_validated_passed_to_the_trainer_and_may_change_on_resume(tmp_path):
    from tunecard.config import build_config
    from tunecard.errors import ConfigError
    from tunecard.training.arguments import training_arguments
    from tunecard.training.checkpoint import config_differences

    flags = ["train=x.conll", f"output={tmp_path / 'run'}"]
    config = build_config(None, set_pairs=flags)
    assert config.ddp_timeout == 600  # not the Trainer's 30 minutes
    for bad in ("5", "true", "1e9", "-1"):
        with pytest.raises(ConfigError) as error:
            build_config(None, set_pairs=[*flags, f"ddp_timeout={bad}"])
        assert error.value.code == "E206" and "ddp_timeout" in error.value.message
        if bad == "5":  # docs/bad-input.md's row quotes the message
            doc = (Path(__file__).resolve().parents[1] / "docs" / "bad-input.md").read_text(encoding="utf-8")
            row = next(line for line in doc.splitlines() if line.startswith("| `ddp_timeout: 5`"))
            assert f"**E206** `{error.value.message.split('from flags: ')[-1].rstrip('.')}`" in row
    longer = build_config(None, set_pairs=[*flags, "ddp_timeout=1800"])
    assert training_arguments(longer, tmp_path / "checkpoints", bf16=False, has_validation=False).ddp_timeout == 1800
    config.save(tmp_path)  # E225's remedy is a longer ddp_timeout on the resume: not another configuration
    assert config_differences(tmp_path / "train_config.yaml", longer) == []


def test_timeout_message_names_the_silent_rank_or_says_why_it_cannot():
    from tunecard.training.distributed import is_timeout, timeout_error

    gloo = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting "
                        "600000ms for recv operation to complete")
    assert is_timeout(gloo) and not is_timeout(RuntimeError("CUDA out of memory")) and not is_timeout(OSError("x"))
    named = timeout_error(gloo, 600, [3], rank=0, world=4)
    assert named.code == "E225"
    assert named.message.startswith("rank 3 of 4 processes stopped answering: rank 0 waited ddp_timeout (600 s) in "
                                    "an operation all processes take part in (Timed out waiting 600000ms for recv")
    assert "raise ddp_timeout (e.g. --set ddp_timeout=1800)" in named.fix and "resumes" in named.fix
    assert "ranks 1, 2 of 4 processes" in timeout_error(gloo, 600, [1, 2], rank=0, world=4).message
    assert "slower than ddp_timeout rather than stopped" in timeout_error(gloo, 600, [], rank=0, world=4).message
    assert "cannot be told from rank 2" in timeout_error(gloo, 600, None, rank=2, world=4).message
