"""Dropout with cheaper random masks for CPU training.

Written by hand because no maintained library offers it: torch's CPU dropout draws one 32-bit Mersenne
Twister number per element (`bernoulli_`), single-threaded, and that took about a sixth of a packed
bf16 training step here (docs/performance.md). One 64-bit draw gives four 16-bit lanes, and a lane below
a threshold keeps its element: the same Bernoulli masks from a quarter of the random numbers. The keep
probability is rounded to a multiple of 1/65536 (0.9 becomes 0.899994) and the scale is its exact inverse,
so every output still has the input's expectation. The masks come from torch's seeded generator, so a run
is as reproducible as before; only the stream of masks differs from torch's, as with another seed.

Measured gain (docs/performance.md): 290.1 against 303.3 ms a packed step, 7% on average over 16 paired
rounds (AMX Xeon, `benchmarks/dropout_ab.py --rounds 16`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

LANES = 65536  # values of one 16-bit lane


def keep_mask(shape: torch.Size | tuple[int, ...], keep_probability: float, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean tensor of `shape`, each element True with probability round(keep_probability * 65536) / 65536."""
    return keep_factors(shape, keep_probability, torch.bool, device, generator)


def keep_factors(shape: torch.Size | tuple[int, ...], keep_probability: float, dtype: torch.dtype,
                 device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """`keep_mask`'s mask (the same draws) as 1.0 / 0.0 in `dtype` (or True / False for torch.bool).

    Why not the boolean mask for dropout itself: on CPU, arithmetic that mixes a boolean tensor with a float one
    converts element by element outside the vectorized loops. Measured alone: torch's dropout backward
    (x * mask * scale) took 1.26 ms on (84, 64, 64) fp32 probabilities and 0.11 ms on (336, 384) bf16 hidden
    states, against 0.03 and 0.02 ms for a multiply by a float; converting 344k booleans to float 113 us, the
    comparison written straight into a float tensor 36 us (docs/performance.md).
    """
    threshold = round(keep_probability * LANES) - LANES // 2  # an int16 lane is kept below this
    if threshold >= LANES // 2:  # 32768 does not fit in int16 (it would wrap to -32768 and keep nothing)
        return torch.ones(shape, dtype=dtype, device=device)
    count = math.prod(shape)
    words = torch.empty((count + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # all 64 bits uniform (a plain random_() leaves the sign bit 0)
    lanes = words.view(torch.int16)[:count].view(shape)  # int16 lanes, uniform over [-32768, 32767]
    return torch.lt(lanes, threshold, out=torch.empty(shape, dtype=dtype, device=device))


def kept_fraction(p: float) -> float:
    """The keep probability `keep_mask` really uses for dropout probability p."""
    return round((1.0 - p) * LANES) / LANES


def scaled_keep_factors(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype = torch.float32,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """Dropout's multipliers for probability p in fp32 or fp64: the scale where an element is kept, 0 where it is
    dropped, all 0 when p rounds to keeping nothing. x * these is x * mask * scale bit for bit, since the scale
    rounds once either way (in bf16 or fp16 it would round in the multipliers: `dropout` keeps it apart there)."""
    keep = kept_fraction(p)
    if keep <= 0.0:
        return torch.zeros(shape, dtype=dtype, device=device)
    return keep_factors(shape, keep, dtype, device).mul_(1.0 / keep)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Functional form of `FastDropout`: x * mask * scale, bit for bit what torch's dropout backward
    (`native_dropout_backward`) computes for the same mask, forward and backward.

    Plain tensor operations, so autograd records its own C++ nodes (a Python autograd.Function cost about 40 us
    a call each way). In fp32 and fp64 the scale is folded into the mask: x * scale rounds once either way. In
    bf16 or fp16 the scale would round in the mask, so the multiplies stay apart; backward then scales before it
    masks, which changes no bit (a dropped element is a zero of the gradient's sign either way)."""
    if not training or p == 0.0:
        return x
    keep = kept_fraction(p)
    if keep <= 0.0:  # p >= 1, or so close to 1 that no 16-bit lane keeps its element
        return x * 0.0
    if x.dtype in (torch.float32, torch.float64):
        return x * scaled_keep_factors(x.shape, p, x.dtype, x.device)
    return (x * keep_factors(x.shape, keep, x.dtype, x.device)).mul_(1.0 / keep)


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


def restore_dropout(model: nn.Module) -> None:
    """Put plain nn.Dropout modules back where `use_fast_dropout` swapped them."""
    for module in model.modules():
        for name, child in list(module.named_children()):
            if type(child) is FastDropout:
                setattr(module, name, nn.Dropout(child.p, child.inplace).train(child.training))
