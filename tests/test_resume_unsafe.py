"""A resume checkpoint whose optimizer.pt or rng_state.pth holds a pickled object (issue 29, item 6): refused with
E223 naming the file and the way forward, never torch's UnpicklingError suggesting weights_only=False."""

from __future__ import annotations

import json
import random
import sys

import numpy as np
import pytest
import torch
from conftest import WNUT_SAMPLE

from tunecard.config import build_config
from tunecard.errors import ConfigError, OutputError
from tunecard.pipeline import train
from tunecard.training.checkpoint import STATE_FILE, find_resume
from tunecard.training.outputs import RunFolder

RAN = []


def _ran(text):
    RAN.append(text)


class Payload:
    """What an attacker would pickle: unpickling it calls a function."""

    def __reduce__(self):
        return (_ran, ("unpickled",))


def _config(model, tmp_path, **overrides):
    return build_config(None, dict(task="ner", model=str(model), train=str(WNUT_SAMPLE / "train.conll"),
                                   validation=str(WNUT_SAMPLE / "dev.conll"), output=str(tmp_path / "run"),
                                   num_epochs=1, max_train_examples=16, max_eval_examples=8, train_batch_size=8,
                                   precision="fp32", **overrides))


def _checkpoint(tmp_path, config):
    folder = RunFolder(config.output).checkpoints
    folder.mkdir(parents=True)
    config.save(folder)
    checkpoint = folder / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / STATE_FILE).write_text(json.dumps({"world_size": 1}))
    # What the Trainer writes: numpy's state needs transformers' allowlist under weights_only.
    torch.save({"python": random.getstate(), "numpy": np.random.get_state(), "cpu": torch.random.get_rng_state()},
               checkpoint / "rng_state.pth")
    torch.save({"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
               checkpoint / "optimizer.pt")
    return folder, checkpoint


@pytest.mark.parametrize("name", ["optimizer.pt", "rng_state.pth"])
def test_a_pickled_object_in_a_state_file_is_E223_with_a_way_forward(tmp_path, name):
    config = _config(tmp_path / "model", tmp_path)
    folder, checkpoint = _checkpoint(tmp_path, config)
    assert find_resume(config, folder, resume=False, overwrite=False) == checkpoint  # the Trainer's own files load
    torch.save({"python": Payload()}, checkpoint / name)
    for resume, overwrite in ((False, False), (True, False), (True, True)):
        with pytest.raises(ConfigError) as caught:
            find_resume(config, folder, resume=resume, overwrite=overwrite)
        error = caught.value
        assert error.code == "E223" and error.path == str(checkpoint / name)
        assert f"{name} cannot be loaded safely (it holds a pickled Python object (" in error.message
        assert "weights_only=True" in error.message and "weights_only=False" not in str(error)
        assert "--overwrite (without --resume)" in error.fix and str(folder) in error.fix
    assert find_resume(config, folder, resume=False, overwrite=True) is None  # --overwrite: train afresh
    assert RAN == []


def test_a_damaged_state_file_is_E223(tmp_path):
    config = _config(tmp_path / "model", tmp_path)
    folder, checkpoint = _checkpoint(tmp_path, config)
    data = (checkpoint / "optimizer.pt").read_bytes()
    (checkpoint / "optimizer.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError) as caught:
        find_resume(config, folder, resume=False, overwrite=False)
    assert caught.value.code == "E223" and "the file is damaged" in caught.value.message


def test_the_rerun_refuses_a_planted_rng_state_and_overwrite_trains_afresh(tiny_bert_cased, tmp_path, monkeypatch):
    config = _config(tiny_bert_cased, tmp_path)
    monkeypatch.setattr(sys.modules["tunecard.pipeline"], "write_card",  # fails after the last checkpoint
                        lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OutputError):
        train(config, progress=False)
    monkeypatch.undo()
    [checkpoint] = RunFolder(config.output).checkpoints.glob("checkpoint-*")
    torch.save({"python": Payload()}, checkpoint / "rng_state.pth")
    with pytest.raises(ConfigError) as caught:  # not torch's UnpicklingError from inside the Trainer
        train(config, progress=False)
    assert caught.value.code == "E223" and "rng_state.pth" in caught.value.message
    result = train(config, overwrite=True, progress=False)
    assert result.metrics["training"]["resumed_from_step"] is None and (result.output / "README.md").is_file()
    assert RAN == []
