"""Tracking: the config's report_to reaches the Trainer, and TensorBoard's event files end up in the run folder."""

from __future__ import annotations

import pytest
from conftest import WNUT_SAMPLE

from tunecard.config import build_config
from tunecard.errors import ConfigError
from tunecard.pipeline import TENSORBOARD_FOLDER, train


@pytest.mark.parametrize("pair, expected", [
    ("report_to=tensorboard", ["tensorboard"]),
    ("report_to=[tensorboard, mlflow]", ["tensorboard", "mlflow"]),
    ("report_to=tensorboard,mlflow", ["tensorboard", "mlflow"]),
    ("report_to=none", []),
])
def test_set_report_to_accepts_a_name_a_list_or_none(pair, expected, monkeypatch):
    import tunecard.config

    monkeypatch.setattr(tunecard.config, "_importable", lambda module: True)  # as if both were installed
    assert build_config(None, {}, [pair]).report_to == expected


def test_unknown_integration_is_a_config_error_naming_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        build_config(None, {}, ["report_to=tensorbored"])
    assert caught.value.code == "E206"
    assert "tensorbored" in caught.value.message and "tensorboard" in caught.value.message


def test_tensorboard_events_are_written_inside_the_run_folder(tiny_bert_cased, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output = tmp_path / "run"
    config = build_config(None, dict(
        task="ner", model=str(tiny_bert_cased), train=str(WNUT_SAMPLE / "train.conll"),
        validation=str(WNUT_SAMPLE / "dev.conll"), output=str(output), max_steps=3, eval_strategy="steps",
        eval_steps=3, max_train_examples=32, max_eval_examples=16, train_batch_size=8, precision="fp32",
    ), ["report_to=tensorboard"])
    train(config, progress=False)

    events = list((output / TENSORBOARD_FOLDER).rglob("events.out.tfevents*"))
    assert events, "no TensorBoard event file in the run folder"
    assert not list(tmp_path.glob(".run.*")), "the scratch folder was left behind"
    # The events hold the training loss of every step and the evaluation, not just an empty file.
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    assert "train/loss" in scalars and "eval/f1" in scalars
    assert [event.step for event in accumulator.Scalars("train/loss")] == [1, 2, 3]
