"""TunecardTrainer's overrides of the Hugging Face Trainer that must keep the Trainer's own numbers."""

from __future__ import annotations

import types

import torch
from transformers import Trainer

from tunecard.encoding.models import load_model
from tunecard.training.trainer import TunecardTrainer


def test_floating_point_ops_are_the_trainers_count(tiny_bert_cased):
    model = load_model(str(tiny_bert_cased), "token-classification", {0: "O", 1: "B-X"})
    trainer = types.SimpleNamespace(model=model)  # both methods read only the model
    for tokens in (32, 96, 7):
        inputs = {"input_ids": torch.ones(1, tokens, dtype=torch.long)}
        expected = Trainer.floating_point_ops(trainer, inputs)
        assert expected == 6 * tokens * model.num_parameters(exclude_embeddings=True) > 0
        assert TunecardTrainer.floating_point_ops(trainer, inputs) == expected
    assert TunecardTrainer.floating_point_ops(trainer, {"inputs_embeds": torch.ones(1, 4, 8)}) == 0


def test_training_runs_with_the_objects_before_it_frozen_and_hands_them_back(tiny_bert_cased, tmp_path):
    """What existed before training is out of the collector's sight during it (the Trainer's full collection
    would walk it all) and back in sight afterwards, so cycles dropped by then are still collected."""
    import gc

    from conftest import quick_ner_values
    from transformers import TrainerCallback

    from tunecard.config import build_config
    from tunecard.pipeline import train

    class Frozen(TrainerCallback):
        counts = []

        def on_step_end(self, args, state, control, **kwargs):
            self.counts.append(gc.get_freeze_count())

    before = gc.get_freeze_count()
    train(build_config(None, quick_ner_values(tiny_bert_cased, tmp_path)), progress=False, callbacks=[Frozen()])
    assert Frozen.counts and min(Frozen.counts) > before + 10_000
    assert gc.get_freeze_count() == before
