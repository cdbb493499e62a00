"""Attention with tunecard's dropout masks: SDPA's arithmetic and gradients, dropout applied to the attention
probabilities, SDPA itself outside training, and a model switched for training and back."""

from __future__ import annotations

import json
import types

import pytest
import torch
from conftest import quick_ner_values
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from tunecard.config import build_config
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.pipeline import train
from tunecard.speed import attention
from tunecard.speed.attention import NAME, SLOTS, restore_attention, sdpa_with_fast_dropout, use_fast_attention_dropout
from tunecard.speed.packing import PackedCollator

NO_DROP = 1e-9  # rounds to keeping every element (dropout.kept_fraction), yet still takes the dropout path
TRAINING, EVALUATING = (types.SimpleNamespace(training=True, is_causal=False),
                        types.SimpleNamespace(training=False, is_causal=False))


def _inputs(dtype, mask_kind):
    torch.manual_seed(0)
    query, key, value = (torch.randn(3, 4, 10, 8, dtype=dtype, requires_grad=True) for _ in range(3))
    visible = torch.rand(3, 1, 10, 10) > 0.3
    visible[..., 0] = True  # every query sees a key: SDPA gives NaN or zeros otherwise, nothing to compare
    mask = {"none": None, "bool": visible,
            "float": torch.zeros(visible.shape, dtype=dtype).masked_fill(~visible, torch.finfo(dtype).min)}[mask_kind]
    return query, key, value, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_outputs_and_gradients_are_sdpas_math(dtype, mask_kind):
    query, key, value, mask = _inputs(dtype, mask_kind)
    ours, _ = sdpa_with_fast_dropout(TRAINING, query, key, value, mask, dropout=NO_DROP, scaling=0.3)
    with sdpa_kernel(SDPBackend.MATH):
        reference = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=0.3)
    reference = reference.transpose(1, 2)  # transformers' layout: (batch, length, heads, head size)
    assert ours.dtype == dtype and ours.shape == reference.shape
    tolerance = 1e-6 if dtype == torch.float32 else 0.0  # bf16: SDPA's math path computes in fp32 too
    torch.testing.assert_close(ours, reference, rtol=0, atol=tolerance)
    upstream = torch.randn_like(ours)
    for mine, theirs in zip(torch.autograd.grad(ours, (query, key, value), upstream),
                            torch.autograd.grad(reference, (query, key, value), upstream)):
        torch.testing.assert_close(mine.float(), theirs.float(), rtol=0, atol=1e-6 if tolerance else 1e-7)


def _flat_batch(lengths: list[int]) -> dict[str, torch.Tensor]:
    items = [{"input_ids": list(range(1, n + 1)), "attention_mask": [1] * n, "labels": [0] * n} for n in lengths]
    return PackedCollator(0, flat=True)(items)


def _projections(tokens: int, heads: int, size: int, dtype, seed: int):
    """A fused projection's output (1, tokens, 3 * heads * size) and its query, key and value views, as
    transformers' BERT attention hands them over: (1, heads, tokens, size)."""
    generator = torch.Generator().manual_seed(seed)
    fused = torch.randn(1, tokens, 3 * heads * size, generator=generator).to(dtype).requires_grad_(True)
    views = [part.view(1, tokens, heads, size).transpose(1, 2) for part in fused.split(heads * size, dim=-1)]
    return fused, views


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mask_kind", ["bool", "float"])
@pytest.mark.parametrize("fused", [True, False])
def test_padding_free_training_attention_is_the_autograd_arithmetic(dtype, mask_kind, fused):
    """The written-out backward against autograd's on the same arithmetic, within fp32 rounding: the two call
    the same matmuls with other operand layouts, and oneDNN/MKL may block their sums differently for those
    layouts on some CPUs (exactly equal on the AMX Xeon, not on an AVX-512 EPYC). fp32: 1e-5 relative; bf16
    results are fp32 results rounded once to bf16 (8 bits of mantissa): one rounding step apart at most."""
    batch = _flat_batch([7, 30, 3, 18, 25, 1, 12, 9, 40, 5])
    mask = batch["attention_mask"]
    assert mask.dtype == torch.bool and mask.shape[0] > 1 and batch[SLOTS].numel() > 150
    if mask_kind == "float":
        mask = torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    tokens, heads, size = batch["input_ids"].shape[1], 4, 8
    results = []
    for attend in (attention._fast_masks_autograd, attention._padding_free_fast):
        source, (query, key, value) = _projections(tokens, heads, size, dtype, seed=1)
        if not fused:  # three tensors of their own: the function takes a concatenation of them
            query, key, value = (part.detach().clone().requires_grad_(True) for part in (query, key, value))
        torch.manual_seed(7)  # the same dropout masks for both
        output, _ = attend(TRAINING, query, key, value, mask, dropout=0.1, scaling=0.3, packed_slots=batch[SLOTS])
        upstream = torch.randn(output.shape, generator=torch.Generator().manual_seed(2)).to(dtype)
        inputs = (source,) if fused else (query, key, value)
        results.append((output, torch.autograd.grad(output, inputs, upstream)))
    (expected, expected_grads), (ours, our_grads) = results
    assert ours.shape == expected.shape == (1, tokens, heads, size) and ours.dtype == dtype
    rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (2 ** -7, 1e-3)
    torch.testing.assert_close(ours, expected, rtol=rtol, atol=atol)
    for mine, theirs in zip(our_grads, expected_grads):
        torch.testing.assert_close(mine, theirs, rtol=rtol, atol=atol)
        assert mine.abs().sum() > 0


def test_the_fused_projections_output_is_taken_as_it_is():
    tokens, heads, size = 20, 4, 8
    hidden = torch.randn(1, tokens, 16)
    weight = torch.randn(3 * heads * size, 16)
    fused = torch.nn.functional.linear(hidden, weight)  # as fused_qkv.py computes it (a view of a 2-D matmul)
    views = [part.view(1, tokens, heads, size).transpose(1, 2) for part in fused.split(heads * size, dim=-1)]
    side_by_side = attention._side_by_side(*views)
    assert side_by_side.shape == (tokens, 3 * heads * size)
    assert side_by_side.data_ptr() == fused.data_ptr() and torch.equal(side_by_side, fused[0])
    separate = [view.clone() for view in views]  # the same values, three tensors of their own
    concatenated = attention._side_by_side(*separate)
    assert concatenated.data_ptr() != fused.data_ptr() and torch.equal(concatenated, fused[0])
    swapped = attention._side_by_side(views[1], views[0], views[2])  # views of it, but not in its order
    assert swapped.data_ptr() != fused.data_ptr()
    assert torch.equal(swapped, torch.cat([fused[0].split(heads * size, -1)[i] for i in (1, 0, 2)], dim=1))


def test_padding_free_training_attention_goes_through_one_autograd_node():
    batch = _flat_batch([5, 9, 14])
    tokens = batch["input_ids"].shape[1]
    _, (query, key, value) = _projections(tokens, 2, 8, torch.bfloat16, seed=3)
    output, _ = attention._padding_free_fast(TRAINING, query, key, value, batch["attention_mask"], dropout=0.1,
                                             packed_slots=batch[SLOTS])
    node = output.grad_fn
    while type(node).__name__ in ("ViewBackward0", "UnsafeViewBackward0"):
        node = node.next_functions[0][0]
    assert type(node).__name__ == "_PackedRowsAttentionBackward"
    # Training without dropout goes through it too (the speed layer's training-mode check runs so); evaluation
    # is SDPA itself, as without padding-free batches.
    output, _ = attention._padding_free_fast(TRAINING, query, key, value, batch["attention_mask"], dropout=0.0,
                                             packed_slots=batch[SLOTS])
    assert "_PackedRowsAttention" in str(output.grad_fn.next_functions)
    output, _ = attention._padding_free_fast(EVALUATING, query, key, value, batch["attention_mask"], dropout=0.1,
                                             packed_slots=batch[SLOTS])
    assert "_PackedRowsAttention" not in str(output.grad_fn)


def test_dropout_falls_on_the_attention_probabilities_and_keeps_their_expectation():
    torch.manual_seed(3)
    length, p = 64, 0.25
    query = torch.randn(8, 4, length, length)
    key = torch.randn(8, 4, length, length)
    value = torch.eye(length).expand(8, 4, length, length)  # the output is then the dropped probabilities
    probabilities = torch.softmax(query @ key.transpose(-2, -1) * 0.1, dim=-1)
    dropped, _ = sdpa_with_fast_dropout(TRAINING, query, key, value, None, dropout=p, scaling=0.1)
    dropped = dropped.transpose(1, 2)
    zeroed = (dropped == 0).float().mean().item()
    assert zeroed == pytest.approx(p, abs=0.01)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], probabilities[kept] / (1 - p), rtol=1e-5, atol=1e-7)
    assert dropped.sum(-1).mean().item() == pytest.approx(1.0, abs=0.01)  # expectation of each row's sum


def test_a_causal_attention_keeps_sdpas_causal_mask():
    query, key, value, _ = _inputs(torch.float32, "none")
    decoder = types.SimpleNamespace(training=True, is_causal=True)
    ours, _ = sdpa_with_fast_dropout(decoder, query, key, value, None, dropout=NO_DROP, scaling=0.3)
    with sdpa_kernel(SDPBackend.MATH):
        causal = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=True, scale=0.3)
    torch.testing.assert_close(ours, causal.transpose(1, 2), rtol=0, atol=1e-6)


def test_outside_training_or_without_dropout_it_is_sdpa_itself():
    query, key, value, mask = _inputs(torch.float32, "bool")
    for module, p in ((EVALUATING, 0.1), (TRAINING, 0.0)):
        torch.manual_seed(5)  # the same masks if SDPA draws any
        ours, _ = sdpa_with_fast_dropout(module, query, key, value, mask, dropout=p, scaling=0.3)
        torch.manual_seed(5)
        theirs, _ = sdpa_attention_forward(module, query, key, value, mask, dropout=p, scaling=0.3)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_a_switched_model_gets_its_padding_mask_and_switches_back(tiny_bert_cased):
    tokenizer = load_tokenizer(str(tiny_bert_cased))
    torch.manual_seed(0)
    plain = load_model(str(tiny_bert_cased), "token-classification", {0: "O", 1: "B-X"})
    switched = load_model(str(tiny_bert_cased), "token-classification", {0: "O", 1: "B-X"})
    switched.load_state_dict(plain.state_dict())
    for model in (plain, switched):
        model.train()
        for module in model.modules():  # no random drops anywhere, the attention still on its dropout path
            if isinstance(module, torch.nn.Dropout):
                module.p = NO_DROP if "attention.self" in _name_of(model, module) else 0.0
    assert use_fast_attention_dropout(switched)
    assert switched.config._attn_implementation == NAME
    batch = tokenizer(["a short one", "a much longer sentence with padding after the short one"],
                      padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()
    with sdpa_kernel(SDPBackend.MATH):
        expected = plain(**batch).logits
    torch.testing.assert_close(switched(**batch).logits, expected, rtol=0, atol=1e-5)
    restore_attention(switched)
    assert switched.config._attn_implementation == "sdpa"


def _name_of(model, module) -> str:
    return next(name for name, candidate in model.named_modules() if candidate is module)


def test_models_without_transformers_sdpa_are_left_alone(tiny_bert_cased):
    eager = load_model(str(tiny_bert_cased), "token-classification", {0: "O", 1: "B-X"})
    eager.set_attn_implementation("eager")
    assert not use_fast_attention_dropout(eager)
    assert eager.config._attn_implementation == "eager"


def test_training_uses_it_and_saves_a_plain_model(tiny_bert_cased, tmp_path):
    values = quick_ner_values(tiny_bert_cased, tmp_path) | {"save_strategy": "epoch"}  # checkpoints' configs too
    result = train(build_config(None, values), progress=False)
    if torch.cuda.is_available():
        pytest.skip("CUDA keeps SDPA's fused dropout")
    assert "the attention probabilities' too" in result.metrics["speed"]["levers"]["fast_dropout"]["note"]
    for config_file in result.output.rglob("config.json"):
        assert NAME not in config_file.read_text(), config_file
        assert json.loads(config_file.read_text())["model_type"] == "bert"
    assert load_model(str(result.output), "token-classification").config._attn_implementation == "sdpa"
