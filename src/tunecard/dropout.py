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


def _lanes(shape: torch.Size | tuple[int, ...], device, generator) -> torch.Tensor:
    """int16 lanes of `shape`, uniform over [-32768, 32767], four to one 64-bit draw of torch's generator."""
    count = math.prod(shape)
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # all 64 bits uniform (a plain random_() leaves the sign bit 0)
    return words.view(torch.int16)[:count].view(shape)


def _threshold(keep_probability: float) -> int:
    """A lane is kept below this; LANES // 2 (the int16 end) means keep everything."""
    return round(keep_probability * LANES) - LANES // 2


def keep_mask(shape: torch.Size | tuple[int, ...], keep_probability: float, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean tensor of `shape`, each element True with probability round(keep_probability * 65536) / 65536."""
    threshold = _threshold(keep_probability)
    if threshold >= LANES // 2:  # 32768 does not fit in int16 (it would wrap to -32768 and keep nothing)
        return torch.ones(shape, dtype=torch.bool, device=device)
    return _lanes(shape, device, generator) < threshold


def keep_factors(shape: torch.Size | tuple[int, ...], keep_probability: float, dtype: torch.dtype,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """`keep_mask`'s mask (the same draws) as 1.0 / 0.0 in `dtype`.

    Why not the boolean mask: on CPU a multiply of a float tensor by a boolean one casts element by element
    outside the vectorized loops; torch's dropout backward (x * mask * scale) took 1.26 ms on an attention's
    344k probabilities, against 0.02 ms for a float-by-float multiply (docs/performance.md). Writing the
    comparison straight into a float tensor costs less than producing the booleans.
    """
    threshold = _threshold(keep_probability)
    if threshold >= LANES // 2:
        return torch.ones(shape, dtype=dtype, device=device)
    return torch.lt(_lanes(shape, device, generator), threshold, out=torch.empty(shape, dtype=dtype, device=device))


def kept_fraction(p: float) -> float:
    """The keep probability `keep_mask` really uses for dropout probability p."""
    return round((1.0 - p) * LANES) / LANES


class _MaskedScale(torch.autograd.Function):
    """y = x * mask * scale, with the same mask in the backward pass: torch's dropout backward
    (`native_dropout_backward`: x * mask, then * scale) bit for bit, with `mask` as 1.0 / 0.0 in x's dtype.

    In fp32 and fp64 the scale is folded into the mask (one multiply each way; x * scale rounds once either way);
    in bf16 or fp16 the scale would round in the mask, so the two multiplies stay apart."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factors: torch.Tensor, scale: float) -> torch.Tensor:
        folded = x.dtype in (torch.float32, torch.float64)
        if folded:
            factors = factors.mul_(scale)
        ctx.save_for_backward(factors)
        ctx.scale = None if folded else scale
        return _apply(x, factors, ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (factors,) = ctx.saved_tensors
        return _apply(grad, factors, ctx.scale), None, None


def _apply(x: torch.Tensor, factors: torch.Tensor, scale: float | None) -> torch.Tensor:
    y = x * factors
    return y if scale is None else y.mul_(scale)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Functional form of `FastDropout`."""
    if not training or p == 0.0:
        return x
    if p >= 1.0:
        return x * 0.0
    keep = kept_fraction(p)
    return _MaskedScale.apply(x, keep_factors(x.shape, keep, x.dtype, x.device), 1.0 / keep)


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
