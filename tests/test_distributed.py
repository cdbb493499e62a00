"""Data-parallel training under torchrun: two CPU processes (gloo), different shards, one complete run folder."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WNUT_SAMPLE

torch_distributed = pytest.importorskip("torch.distributed")
PROBE = Path(__file__).with_name("distributed_probe.py")
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


@pytest.mark.slow
@pytest.mark.skipif(not torch_distributed.is_gloo_available(), reason="torch built without gloo")
def test_two_processes_record_the_loss_of_one_process_on_the_same_batch(no_dropout_bert, tmp_path):
    """average_tokens_across_devices multiplied the model's local mean by the world size: the first step's loss
    was 4.655 on two processes for 2.319 on one."""
    values = {**SAME_BATCH, "model": str(no_dropout_bert), "validation": str(WNUT_SAMPLE / "dev.conll"),
              "max_eval_examples": 8}
    one = _torchrun(tmp_path, 1, {**values, "output": tmp_path / "one", "train_batch_size": 4})
    two = _torchrun(tmp_path, 2, {**values, "output": tmp_path / "two", "train_batch_size": 2})
    _same_steps(two["steps"], one["steps"])
    # the card's Training Loss column: the mean of the steps since the previous evaluation
    assert [row["training_loss"] for row in two["rows"]] == pytest.approx(
        [row["training_loss"] for row in one["rows"]], rel=LOSS_TOLERANCE)


def _torchrun(tmp_path: Path, processes: int, values: dict) -> dict:
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "tunecard", "train", "--quiet"]
    command += [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((Path(values["output"]) / "history.json").read_text())

