"""`head_learning_rate`: the new classification head trains at its own peak learning rate, on the same schedule."""

from __future__ import annotations

import pytest
from conftest import WNUT_SAMPLE
from transformers import TrainerCallback

from tunecard.config import build_config
from tunecard.pipeline import train


class LearningRates(TrainerCallback):
    """Records (parameter names' kinds, lr) of every optimizer group after each step."""

    def __init__(self):
        self.per_step: list[list[float]] = []
        self.group_sizes: list[int] = []

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.per_step.append([group["lr"] for group in optimizer.param_groups])
        self.group_sizes = [len(group["params"]) for group in optimizer.param_groups]


def _run(model, output, set_pairs=(), **overrides):
    config = build_config(None, dict(
        task="ner", model=str(model), train=str(WNUT_SAMPLE / "train.conll"), output=str(output),
        max_train_examples=64, train_batch_size=16, max_steps=4, precision="fp32", learning_rate=1e-4,
        **overrides), list(set_pairs))
    rates = LearningRates()
    train(config, progress=False, callbacks=[rates])
    return rates


def test_head_gets_its_own_learning_rate_on_the_same_schedule(tiny_bert_cased, tmp_path):
    rates = _run(tiny_bert_cased, tmp_path / "run", head_learning_rate=2e-3)
    # weight-decay and no-decay groups of the encoder, then the head's own group(s) with 20x the rate
    first = rates.per_step[0]
    assert max(first) == pytest.approx(20 * min(first))
    head_groups = [i for i, lr in enumerate(first) if lr == max(first)]
    assert sum(rates.group_sizes[i] for i in head_groups) == 2  # classifier weight and bias
    for step_rates in rates.per_step:  # the linear decay scales both rates alike
        assert max(step_rates) == pytest.approx(20 * min(step_rates))
    assert rates.per_step[-1][0] < rates.per_step[0][0]


def test_null_trains_the_head_at_the_encoders_rate(tiny_bert_cased, tmp_path):
    rates = _run(tiny_bert_cased, tmp_path / "run", set_pairs=["head_learning_rate=null"])  # as documented
    assert len(set(rates.per_step[0])) == 1


def test_default_head_rate_is_in_the_saved_config_and_the_card(tiny_bert_cased, tmp_path):
    config = build_config(None, dict(task="ner", model=str(tiny_bert_cased), train=str(WNUT_SAMPLE / "train.conll"),
                                     output=str(tmp_path / "run"), max_train_examples=32, max_steps=1,
                                     precision="fp32"))
    assert config.head_learning_rate == 1e-3
    result = train(config, progress=False)
    assert "- head_learning_rate: 0.001" in (result.output / "README.md").read_text()
    saved = build_config(result.output / "train_config.yaml", {})
    assert saved.head_learning_rate == 1e-3
