"""bf16 weight copies cast once per optimizer step: autocast's arithmetic to the bit, plain modules afterwards."""

from __future__ import annotations

import pytest
import torch
from conftest import quick_ner_values
from torch import nn

from tunecard.config import build_config
from tunecard.encoding.models import load_model
from tunecard.environment import cpu_supports_bf16
from tunecard.pipeline import train
from tunecard.speed.bf16_weights import Bf16Linear, Bf16Weights, applies
from tunecard.speed.fused_qkv import fuse_qkv


def _model(folder, fused: bool):
    torch.manual_seed(0)
    model = load_model(str(folder), "token-classification", {0: "O", 1: "B-X", 2: "I-X"})
    if fused:
        fuse_qkv(model)
    return model.train()


def _batches(n: int):
    generator = torch.Generator().manual_seed(1)
    mask = torch.tensor([[1] * 20, [1] * 12 + [0] * 8, [1] * 5 + [0] * 15])
    return [dict(input_ids=torch.randint(1000, 5000, (3, 20), generator=generator), attention_mask=mask,
                 labels=torch.randint(0, 3, (3, 20), generator=generator)) for _ in range(n)]


def _train(model, batches, accumulation: int, copies: Bf16Weights | None):
    """AdamW steps under bf16 autocast, `accumulation` batches each; dropout on (the same seed both ways)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    if copies is not None:
        copies.watch(optimizer)
    torch.manual_seed(2)
    losses = []
    for start in range(0, len(batches), accumulation):
        for batch in batches[start:start + accumulation]:
            if copies is not None:
                copies.before_forward()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = model(**batch).loss
            loss.backward()
            if copies is not None:
                copies.after_backward()
            losses.append(loss.item())
        grads = {name: p.grad.clone() for name, p in model.named_parameters()}
        optimizer.step()
        model.zero_grad()
    return losses, grads


@pytest.mark.parametrize("fused", [False, True])  # plain Linears, and fused query/key/value projections
@pytest.mark.parametrize("accumulation", [1, 2])  # gradients summed over two backward passes in fp32
def test_the_same_losses_gradients_and_weights_as_autocast(tiny_bert_cased, fused, accumulation):
    plain, with_copies = _model(tiny_bert_cased, fused), _model(tiny_bert_cased, fused)
    copies = Bf16Weights(with_copies)
    assert len(copies.params) == sum(isinstance(m, nn.Linear) for m in plain.modules()) * 2  # weights and biases
    batches = _batches(6)
    plain_losses, plain_grads = _train(plain, batches, accumulation, None)
    losses, grads = _train(with_copies, batches, accumulation, copies)
    assert losses == plain_losses
    for name, grad in plain_grads.items():
        assert torch.equal(grads[name], grad), name
    for (name, p), q in zip(plain.named_parameters(), with_copies.parameters()):
        assert torch.equal(q, p), name


def test_outside_autocast_and_in_evaluation_the_fp32_weights_are_used(tiny_bert_cased):
    plain, with_copies = _model(tiny_bert_cased, True), _model(tiny_bert_cased, True)
    copies = Bf16Weights(with_copies)
    copies.before_forward()
    batch = _batches(1)[0]
    for mode in ("eval", "fp32 training"):
        if mode == "eval":
            plain.eval(), with_copies.eval()
        else:
            plain.train(), with_copies.train()
            for model in (plain, with_copies):
                for module in model.modules():
                    if isinstance(module, nn.Dropout):
                        module.p = 0.0
        with torch.no_grad():
            assert torch.equal(with_copies(**batch).logits, plain(**batch).logits), mode


def test_tied_and_frozen_weights_are_left_to_autocast():
    torch.manual_seed(0)
    embedding = nn.Embedding(10, 4)
    tied = nn.Linear(4, 10, bias=False)
    tied.weight = embedding.weight  # an output layer tied to the input embedding: autograd sums two uses
    frozen, trained = nn.Linear(4, 4), nn.Linear(4, 4)
    frozen.requires_grad_(False)
    model = nn.ModuleDict(dict(embedding=embedding, tied=tied, frozen=frozen, trained=trained))
    assert applies(model, bf16=True, cpu=True, processes=1)
    assert not applies(model, bf16=True, cpu=True, processes=2)  # DDP's hooks would not see the gradients
    assert not applies(model, bf16=False, cpu=True, processes=1)
    assert not applies(nn.ModuleDict(dict(embedding=embedding, tied=tied, frozen=frozen)), bf16=True, cpu=True,
                       processes=1)
    copies = Bf16Weights(model)
    assert [id(p) for p in copies.params] == [id(trained.weight), id(trained.bias)]
    assert type(trained) is Bf16Linear and type(tied) is nn.Linear and type(frozen) is nn.Linear


def test_remove_gives_back_plain_modules_and_the_same_state_dict(tiny_bert_cased):
    model = _model(tiny_bert_cased, True)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    copies = Bf16Weights(model)
    copies.before_forward()
    assert list(model.state_dict()) == list(before)  # the copies are not part of the model's state
    copies.remove()
    assert not any(isinstance(module, Bf16Linear) for module in model.modules())
    assert all(module._shared.bf16 is None for module in model.modules() if hasattr(module, "_shared"))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


@pytest.mark.skipif(not cpu_supports_bf16() or torch.cuda.is_available(), reason="CPU bf16 autocast only")
def test_training_with_copies_takes_autocasts_steps(tiny_bert_cased, tmp_path):
    runs = {}
    for use in (True, False):
        values = {**quick_ner_values(tiny_bert_cased, tmp_path / str(use), bf16_weights=use), "precision": "bf16",
                  "num_epochs": 2}
        runs[use] = train(build_config(None, values), progress=False)
    assert runs[True].metrics["training"]["bf16_weights"] == "copies cast once per optimizer step"
    assert runs[False].metrics["training"]["bf16_weights"] == "cast by autocast in every forward pass"
    assert [s["loss"] for s in runs[True].history["steps"]] == [s["loss"] for s in runs[False].history["steps"]]
    model = load_model(str(runs[True].output), "token-classification")
    assert not any(isinstance(module, Bf16Linear) for module in model.modules())
    reference = load_model(str(runs[False].output), "token-classification")
    for (name, p), q in zip(reference.named_parameters(), model.parameters()):
        assert torch.equal(q, p), name
