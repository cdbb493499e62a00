"""Fast dropout masks: the Bernoulli distribution and expectation of torch's dropout, gradients through the same
mask, seeded reproducibility, and a drop-in swap that leaves the model's inference outputs alone."""

from __future__ import annotations

import pytest
import torch
from conftest import quick_ner_values
from torch import nn

from tunecard.config import build_config
from tunecard.encoding.models import load_model
from tunecard.pipeline import train
from tunecard.speed.dropout import (
    FastDropout,
    dropout,
    keep_factors,
    keep_mask,
    kept_fraction,
    scaled_keep_factors,
    use_fast_dropout,
)

N = 1_000_003  # not a multiple of 4: the last 64-bit word is only partly used


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masks_keep_the_asked_fraction_and_lanes_are_independent(p):
    torch.manual_seed(0)
    keep = kept_fraction(p)
    assert keep == pytest.approx(1 - p, abs=1 / 65536)
    mask = keep_mask((N,), keep).float()
    sigma = (keep * (1 - keep) / N) ** 0.5
    assert abs(mask.mean().item() - keep) < 5 * sigma
    # the four lanes of one 64-bit word must not move together
    groups = mask[: N - N % 4].view(-1, 4)
    both = (groups[:, 0] * groups[:, 1]).mean().item()
    assert abs(both - keep * keep) < 5 * (keep * keep * (1 - keep * keep) / groups.shape[0]) ** 0.5
    across = (groups[:, 3] * groups[:, 0]).mean().item()
    assert abs(across - keep * keep) < 5 * (keep * keep * (1 - keep * keep) / groups.shape[0]) ** 0.5


def test_output_keeps_the_input_expectation_and_the_gradient_uses_the_same_mask():
    torch.manual_seed(1)
    x = torch.rand(N, dtype=torch.float64) + 0.5
    x.requires_grad_(True)
    y = dropout(x, 0.1)
    kept = y != 0
    scale = 1 / kept_fraction(0.1)
    torch.testing.assert_close(y[kept], x[kept] * scale)
    assert (y.detach().sum() / x.detach().sum()).item() == pytest.approx(1.0, abs=3e-3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.double() * scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_outputs_and_gradients_are_torchs_dropout_arithmetic_bit_for_bit(dtype):
    # The float mask replaced a boolean one for speed; it must change no bit of x * mask * scale either way.
    torch.manual_seed(5)
    x = (torch.randn(3, 257, 33) * 4).to(dtype).requires_grad_(True)
    upstream = torch.randn(3, 257, 33).to(dtype)
    p = 0.1
    scale = 1 / kept_fraction(p)
    torch.manual_seed(11)
    y = dropout(x, p)
    (gradient,) = torch.autograd.grad(y, x, upstream)
    torch.manual_seed(11)
    mask = keep_mask(x.shape, kept_fraction(p))
    expected = torch.ops.aten.native_dropout_backward(x.detach(), mask, scale)
    assert y.dtype == dtype and torch.equal(y, expected)
    assert torch.equal(y.signbit(), expected.signbit())  # dropped negatives stay -0.0, as torch's give them
    assert torch.equal(gradient, torch.ops.aten.native_dropout_backward(upstream, mask, scale))


def test_keep_factors_are_the_keep_mask_of_the_same_draws():
    for keep in (0.9, 0.5, 1.0, 0.0):
        torch.manual_seed(2)
        factors = keep_factors((1001,), keep, torch.bfloat16)
        torch.manual_seed(2)
        assert factors.dtype == torch.bfloat16 and torch.equal(factors, keep_mask((1001,), keep).bfloat16())


@pytest.mark.parametrize("p", [1.0, 1 - 2**-18])
def test_a_probability_that_keeps_no_lane_drops_everything(p):
    # 1 - 2**-18 rounds to keeping 0 of 65536 lanes: all dropped, not a division by zero
    assert kept_fraction(p) == 0.0
    x = torch.randn(4, 8, requires_grad=True)
    y = dropout(x, p)
    assert torch.equal(y, torch.zeros_like(y))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.equal(scaled_keep_factors((4, 8), p), torch.zeros(4, 8))


def test_scaled_keep_factors_are_the_mask_times_the_scale():
    p = 0.1
    torch.manual_seed(3)
    factors = scaled_keep_factors((2, 500), p)
    torch.manual_seed(3)
    mask = keep_mask((2, 500), kept_fraction(p))
    assert torch.equal(factors, mask.float() * (1 / kept_fraction(p)))


def test_bf16_inputs_stay_bf16():
    x = torch.ones(64, 64, dtype=torch.bfloat16, requires_grad=True)
    y = dropout(x, 0.1)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_seeded_masks_repeat_and_successive_masks_differ():
    torch.manual_seed(7)
    first, second = keep_mask((4096,), 0.9), keep_mask((4096,), 0.9)
    torch.manual_seed(7)
    assert torch.equal(keep_mask((4096,), 0.9), first)
    assert not torch.equal(first, second)


def test_keep_probabilities_at_the_ends_of_the_lane_range():
    assert keep_mask((1000,), 1.0).all()
    assert keep_mask((1000,), 1 - 1e-9).all()  # rounds to 65536/65536; must not wrap round to "keep nothing"
    assert not keep_mask((1000,), 0.0).any()
    x = torch.rand(50, 50) + 0.1
    assert torch.equal(dropout(x, 1e-9), x)


def test_edges_follow_nn_dropout():
    x = torch.randn(5, 7)
    assert dropout(x, 0.0) is x
    assert dropout(x, 0.5, training=False) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module = FastDropout(0.3).eval()
    assert torch.equal(module(x), x)


def test_swap_replaces_plain_dropouts_and_leaves_inference_alone(tiny_bert_cased):
    model = load_model(str(tiny_bert_cased), "token-classification", {0: "O", 1: "B-x"}).eval()
    plain = sum(type(m) is nn.Dropout for m in model.modules())
    inputs = {"input_ids": torch.tensor([[101, 2000, 2001, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        before = model(**inputs).logits
    assert plain > 0 and use_fast_dropout(model) == plain
    assert not any(type(m) is nn.Dropout for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, before, rtol=0, atol=0)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(**inputs).logits, before)  # dropout is on while training


@pytest.mark.parametrize("fast", [True, False])
def test_training_records_its_dropout_masks_and_false_keeps_torchs(tiny_bert_cased, tmp_path, fast):
    values = quick_ner_values(tiny_bert_cased, tmp_path, speed_options={"fast_dropout": fast})
    result = train(build_config(None, values), progress=False)
    lever = result.metrics["speed"]["levers"]["fast_dropout"]
    assert lever["used"] is fast
    if fast:
        assert "the attention probabilities' too" in lever["note"]
    else:
        assert lever["note"] == "speed_options.fast_dropout: false"
