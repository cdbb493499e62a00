"""Resume after a kill, the rules for resuming, and run folders that are never half-written or lost."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest
from conftest import WNUT_SAMPLE

from tunecard.config import build_config
from tunecard.errors import ConfigError, OutputError
from tunecard.pipeline import train
from tunecard.training.checkpoint import STATE_FILE, find_resume
from tunecard.training.outputs import RunFolder

# 32 examples in batches of 8: 4 optimizer steps per epoch, 8 in all.
SMALL = dict(task="ner", train=str(WNUT_SAMPLE / "train.conll"), validation=str(WNUT_SAMPLE / "dev.conll"),
             num_epochs=2, max_train_examples=32, max_eval_examples=24, train_batch_size=8, learning_rate=1e-3,
             precision="fp32")


def _values(model: Path, output: Path, **overrides) -> dict:
    return {**SMALL, "model": str(model), "output": str(output), **overrides}


def _fake_checkpoint(folder: Path, config, step: int, complete: bool = True, world_size: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config.save(folder)
    checkpoint = folder / f"checkpoint-{step}"
    checkpoint.mkdir()
    if complete:
        (checkpoint / STATE_FILE).write_text(json.dumps({"world_size": world_size}))
    return checkpoint


def test_resume_point_is_the_last_complete_checkpoint(tmp_path):
    config = build_config(None, _values(tmp_path / "model", tmp_path / "run"))
    folder = RunFolder(config.output).checkpoints
    assert find_resume(config, folder, resume=False, overwrite=False) is None
    with pytest.raises(ConfigError) as error:
        find_resume(config, folder, resume=True, overwrite=False)
    assert error.value.code == "E220"
    done = _fake_checkpoint(folder, config, 3)
    _fake_checkpoint(folder, config, 6, complete=False)  # killed while saving: not a resume point
    assert find_resume(config, folder, resume=False, overwrite=False) == done
    assert find_resume(config, folder, resume=True, overwrite=True) == done


def test_resume_refuses_another_config_or_world_size(tmp_path, monkeypatch):
    config = build_config(None, _values(tmp_path / "model", tmp_path / "run"))
    folder = RunFolder(config.output).checkpoints
    _fake_checkpoint(folder, config, 3)
    changed = build_config(None, _values(tmp_path / "model", tmp_path / "run", learning_rate=3e-5))
    with pytest.raises(ConfigError) as error:
        find_resume(changed, folder, resume=False, overwrite=False)
    assert error.value.code == "E221" and "learning_rate: 0.001 -> 3e-05" in error.value.message
    with pytest.raises(ConfigError):  # --resume never silently starts over
        find_resume(changed, folder, resume=True, overwrite=True)
    assert find_resume(changed, folder, resume=False, overwrite=True) is None  # --overwrite: start afresh
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError) as error:
        find_resume(config, folder, resume=False, overwrite=False)
    assert error.value.code == "E222"


def test_resume_flag_without_checkpoints_fails_before_reading_data(tmp_path):
    config = build_config(None, _values(tmp_path / "model", tmp_path / "run", train=str(tmp_path / "missing.conll")))
    with pytest.raises(ConfigError) as error:
        train(config, resume=True, progress=False)
    assert error.value.code == "E220"


def test_failed_rename_restores_the_old_output(tmp_path, monkeypatch):
    output = tmp_path / "run"
    output.mkdir()
    (output / "old.txt").write_text("keep me")
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".run.partial-"):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OutputError) as error:
        with RunFolder(output, overwrite=True).writing() as folder:
            (folder / "new.txt").write_text("new")
    assert error.value.code == "E404"
    assert (output / "old.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "a temporary folder was left behind"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write in read-only folders")
def test_unwritable_parent_fails_before_training(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        config = build_config(None, _values(tmp_path / "model", parent / "run"))
        with pytest.raises(OutputError) as error:
            train(config, progress=False)
        assert error.value.code == "E403"
    finally:
        parent.chmod(0o755)


def test_disk_full_keeps_the_old_output_and_the_rerun_resumes(tiny_bert_cased, tmp_path, monkeypatch):
    output = tmp_path / "run"
    output.mkdir()
    (output / "train_config.yaml").write_text("an earlier run's config")  # a run folder: --overwrite may replace it
    (output / "README.md").write_text("keep me")
    config = build_config(None, _values(tiny_bert_cased, output, num_epochs=1))

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sys.modules["tunecard.pipeline"], "write_card", disk_full)  # tunecard.pipeline is the function
    with pytest.raises(OutputError) as error:
        train(config, overwrite=True, progress=False)
    assert error.value.code == "E404" and "No space left on device" in error.value.message
    assert sorted(p.name for p in output.iterdir()) == ["README.md", "train_config.yaml"]
    assert (output / "README.md").read_text() == "keep me"
    checkpoints = RunFolder(output).checkpoints
    assert (checkpoints / "checkpoint-4" / STATE_FILE).is_file(), "the finished training is kept for a re-run"
    assert not (checkpoints / "checkpoint-4" / "optimizer.pt").exists(), "no step is left to read the moments"
    # The best weights are this step's: the checkpoint's model file, hard-linked instead of written again.
    best, saved = (os.stat(checkpoints / "checkpoint-4" / name)
                   for name in ("best_model.safetensors", "model.safetensors"))
    assert best.st_ino == saved.st_ino

    monkeypatch.undo()
    # Re-running the same command continues from the checkpoint (no --resume, no --overwrite needed): the
    # training is not redone, the run is written, and the checkpoints go.
    result = train(config, progress=False)
    assert result.metrics["training"]["resumed_from_step"] == 4
    assert result.metrics["training"]["global_steps"] == 4 and len(result.history["steps"]) == 4
    assert (output / "README.md").read_text() != "keep me" and (output / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    uninterrupted = train(build_config(None, _values(tiny_bert_cased, tmp_path / "uninterrupted", num_epochs=1)),
                          progress=False)
    for key in ("loss", "accuracy", "f1"):  # the weights written after the resume are the trained ones
        assert result.metrics["validation"][key] == pytest.approx(uninterrupted.metrics["validation"][key], rel=1e-6)


def test_unquoted_yaml_no_turns_checkpoints_off(tmp_path):
    """YAML 1.1 reads `save_strategy: no` as false; it must mean "no", as the user wrote."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text("train: x.conll\nsave_strategy: no\n", encoding="utf-8")
    assert build_config(config_file).save_strategy == "no"
    assert build_config(None, set_pairs=["train=x.conll", "save_strategy=no"]).save_strategy == "no"
    with pytest.raises(ConfigError):
        build_config(None, set_pairs=["train=x.conll", "save_strategy=yes"])


def test_yaml_words_stay_words_and_booleans_still_read(tmp_path):
    """Only true/false are booleans in a config (YAML 1.2): a label called `yes` stays a label; `packing: off`
    still turns a lever off, as pydantic reads the word for a boolean field."""
    config_file = tmp_path / "config.yaml"
    config_file.write_text("task: text-classification\ntrain: x.tsv\npositive_label: yes\nspeed_options:\n  packing: off\n"
                           "eval_on_start: true\n", encoding="utf-8")
    config = build_config(config_file)
    assert config.positive_label == "yes"
    assert config.speed_options.packing is False and config.eval_on_start is True


def test_best_weights_link_the_model_file_only_when_it_holds_the_same_tensors(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from tunecard.training.checkpoint import _link_saved_model

    state = {"encoder.weight": torch.randn(4, 3), "classifier.bias": torch.zeros(2)}
    save_file(state, tmp_path / "model.safetensors")
    others = {"a name more": {**state, "pooler.weight": torch.ones(3)},
              "another shape": {**state, "classifier.bias": torch.zeros(3)},
              "another dtype": {**state, "classifier.bias": torch.zeros(2, dtype=torch.float64)}}
    for why, other in others.items():
        assert not _link_saved_model(tmp_path, other, tmp_path / "best.safetensors"), why
        assert not (tmp_path / "best.safetensors").exists()
    assert _link_saved_model(tmp_path, state, tmp_path / "best.safetensors")
    assert os.stat(tmp_path / "best.safetensors").st_ino == os.stat(tmp_path / "model.safetensors").st_ino
    assert all(torch.equal(load_file(tmp_path / "best.safetensors")[k], v) for k, v in state.items())
    assert not _link_saved_model(tmp_path / "missing", state, tmp_path / "other.safetensors")
