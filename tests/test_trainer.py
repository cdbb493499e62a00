"""TunecardTrainer's overrides of the Hugging Face Trainer that must keep the Trainer's own numbers."""

from __future__ import annotations

import types

import torch
from transformers import Trainer

from tunecard.modeling import load_model
from tunecard.train import TunecardTrainer


def test_floating_point_ops_are_the_trainers_count(tiny_bert_cased):
    model = load_model(str(tiny_bert_cased), "token-classification", {0: "O", 1: "B-X"})
    trainer = types.SimpleNamespace(model=model)  # both methods read only the model
    for tokens in (32, 96, 7):
        inputs = {"input_ids": torch.ones(1, tokens, dtype=torch.long)}
        expected = Trainer.floating_point_ops(trainer, inputs)
        assert expected == 6 * tokens * model.num_parameters(exclude_embeddings=True) > 0
        assert TunecardTrainer.floating_point_ops(trainer, inputs) == expected
    assert TunecardTrainer.floating_point_ops(trainer, {"inputs_embeds": torch.ones(1, 4, 8)}) == 0
