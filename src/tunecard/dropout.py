"""Dropout with cheaper random masks for CPU training.

Written by hand because no maintained library offers it: torch's CPU dropout draws one 32-bit Mersenne
Twister number per element (`bernoulli_`), single-threaded, and that took about a sixth of a packed
bf16 training step here (docs/performance.md). One 64-bit draw gives four 16-bit lanes, and a lane below
a threshold keeps its element: the same Bernoulli masks from a quarter of the random numbers. The keep
probability is rounded to a multiple of 1/65536 (0.9 becomes 0.899994) and the scale is its exact inverse,
so every output still has the input's expectation. The masks come from torch's seeded generator, so a run
is as reproducible as before; only the stream of masks differs from torch's, as with another seed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LANES = 65536  # values of one 16-bit lane


def keep_mask(shape: torch.Size | tuple[int, ...], keep_probability: float, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean tensor of `shape`, each element True with probability round(keep_probability * 65536) / 65536."""
    threshold = round(keep_probability * LANES) - LANES // 2  # an int16 lane is kept below this
    if threshold >= LANES // 2:  # 32768 does not fit in int16 (it would wrap to -32768 and keep nothing)
        return torch.ones(shape, dtype=torch.bool, device=device)
    count = math.prod(shape)
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # all 64 bits uniform (a plain random_() leaves the sign bit 0)
    lanes = words.view(torch.int16)[:count].view(shape)  # int16 lanes, uniform over [-32768, 32767]
    return lanes < threshold


def kept_fraction(p: float) -> float:
    """The keep probability `keep_mask` really uses for dropout probability p."""
    return round((1.0 - p) * LANES) / LANES


class _MaskedScale(torch.autograd.Function):
    """y = x * mask * scale, with the same mask in the backward pass (one fused kernel each way)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(mask)
        ctx.scale = scale
        return torch.ops.aten.native_dropout_backward(x, mask, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (mask,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, mask, ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Functional form of `FastDropout`."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    keep = kept_fraction(p)
    return _MaskedScale.apply(x, keep_mask(x.shape, keep, x.device), 1.0 / keep)


class FastDropout(nn.Dropout):
    """nn.Dropout with `keep_mask` masks; a drop-in replacement (no parameters, same `p`, same eval behaviour)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:  # keep nn.Dropout's contract for the rare in-place user
            return super().forward(x)
        return dropout(x, self.p, self.training)


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every plain nn.Dropout in `model` for FastDropout in place; returns how many were swapped.

    Subclasses (DeBERTa's StableDropout and the like) are left alone: they may do more than drop.
    SDPA's attention-probability dropout is not a module: `attention.py` gives it these masks.
    """
    swapped = 0
    for module in model.modules():
        for name, child in list(module.named_children()):
            if type(child) is nn.Dropout:
                setattr(module, name, FastDropout(child.p).train(child.training))
                swapped += 1
    return swapped
