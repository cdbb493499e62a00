"""Fused query/key/value projections: the same outputs, gradients as close to fp64 as the separate ones,
nothing kept between passes, plain modules back after training."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import quick_ner_values
from torch import nn

from tunecard.config import build_config
from tunecard.encoding.models import load_model
from tunecard.pipeline import train
from tunecard.speed.fused_qkv import FusedProjection, fuse_qkv, unfuse_qkv


def _pair(folder):
    torch.manual_seed(0)
    plain = load_model(str(folder), "token-classification", {0: "O", 1: "B-X", 2: "I-X"})
    for module in plain.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # the same function both ways
    fused = copy.deepcopy(plain)
    assert fuse_qkv(fused) == plain.config.num_hidden_layers
    return plain.train(), fused.train()


def _batch():
    generator = torch.Generator().manual_seed(1)
    return dict(input_ids=torch.randint(1000, 5000, (3, 20), generator=generator),
                attention_mask=torch.tensor([[1] * 20, [1] * 12 + [0] * 8, [1] * 5 + [0] * 15]),
                labels=torch.randint(0, 3, (3, 20), generator=generator))


def _run(model, batch, bf16):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        output = model(**batch)
    output.loss.backward()
    return output.logits.detach(), {name: p.grad.double() for name, p in model.named_parameters()}


@pytest.mark.parametrize("bf16", [False, True])
def test_same_outputs_and_gradients_as_close_to_fp64(tiny_bert_cased, bf16):
    plain, fused = _pair(tiny_bert_cased)
    batch = _batch()
    plain_logits, plain_grads = _run(plain, batch, bf16)
    fused_logits, fused_grads = _run(fused, batch, bf16)
    # The same dot products; one matmul over the three weights may block its sums differently from three on some
    # CPUs' kernels: fp32 within 1e-5, bf16 (outputs rounded to 8 bits of mantissa) within one rounding step.
    tolerance = dict(rtol=2 ** -7, atol=1e-2) if bf16 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused_logits, plain_logits, **tolerance)
    exact = copy.deepcopy(plain).double()
    _, exact_grads = _run(exact, batch, False)
    for name, exact_grad in exact_grads.items():
        if name.endswith("key.bias"):  # zero up to rounding: softmax ignores a shift of every score
            continue
        scale = exact_grad.norm().item() + 1e-30
        plain_error = (plain_grads[name] - exact_grad).norm().item() / scale
        fused_error = (fused_grads[name] - exact_grad).norm().item() / scale
        assert fused_error <= 1.5 * plain_error + (1e-6 if not bf16 else 1e-3), name


def test_outside_training_and_for_other_inputs_each_projection_runs_alone(tiny_bert_cased):
    plain, fused = _pair(tiny_bert_cased)
    attention = fused.bert.encoder.layer[0].attention.self
    reference = plain.bert.encoder.layer[0].attention.self
    x, other = torch.randn(2, 5, plain.config.hidden_size), torch.randn(2, 5, plain.config.hidden_size)
    with torch.no_grad():
        torch.testing.assert_close(attention.query(x), reference.query(x), rtol=1e-5, atol=1e-6)  # fused
        assert torch.equal(attention.key(other), reference.key(other))  # not the tensor query saw: alone
        torch.testing.assert_close(attention.value(x), reference.value(x), rtol=1e-5, atol=1e-6)  # its part
        assert attention.query._shared.input is None  # value took its part: nothing kept
        fused.eval()
        assert torch.equal(attention.query(x), reference.query(x))
        assert attention.query._shared.input is None


def test_parameters_stay_and_unfuse_gives_plain_linears(tiny_bert_cased):
    plain, fused = _pair(tiny_bert_cased)
    names = list(dict(fused.named_parameters()))
    assert names == list(dict(plain.named_parameters()))
    weight = fused.bert.encoder.layer[0].attention.self.key.weight
    unfuse_qkv(fused)
    key = fused.bert.encoder.layer[0].attention.self.key
    assert type(key) is nn.Linear and key.weight is weight
    assert not any(isinstance(module, FusedProjection) for module in fused.modules())


@pytest.mark.parametrize("fuse", [True, False])
def test_training_records_it_and_saves_plain_modules(tiny_bert_cased, tmp_path, fuse):
    values = quick_ner_values(tiny_bert_cased, tmp_path, speed_options={"fuse_qkv": fuse})
    result = train(build_config(None, values), progress=False)
    assert result.metrics["speed"]["levers"]["fuse_qkv"]["used"] is fuse
    model = load_model(str(result.output), "token-classification")
    assert not any(isinstance(module, FusedProjection) for module in model.modules())


class _InPlaceSelfAttention(nn.Module):
    """An attention that edits its projections in place, as Longformer's does (`query_vectors /= sqrt(d)`)."""

    def __init__(self):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(8, 8) for _ in range(3))

    def forward(self, x):
        query, key, value = self.query(x), self.key(x), self.value(x)
        query /= 2.0
        return (torch.softmax(query @ key.transpose(-1, -2), dim=-1) @ value).square().sum()


def test_a_projection_the_model_modifies_in_place_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = _InPlaceSelfAttention().train()
    fused = copy.deepcopy(plain)
    assert fuse_qkv(fused) == 1
    x = torch.randn(2, 5, 8)
    plain(x).backward()
    fused(x).backward()
    for (name, expected), found in zip(plain.named_parameters(), fused.parameters()):
        torch.testing.assert_close(found.grad, expected.grad, rtol=1e-5, atol=1e-6, msg=name)
