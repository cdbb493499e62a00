"""One matmul for a self-attention's query, key and value projections in CPU training.

BERT-family self-attention projects the same hidden states three times. Under CPU autocast each projection
casts the fp32 hidden states to bf16 on its own and runs a matmul whose fixed cost (oneDNN reorders the weight
on every call) is a large share at a few hundred tokens; backward, three bf16 input gradients are cast to fp32
and added. One matmul over the three weights side by side gives the same outputs (within fp32 rounding,
tested; equal bit for bit on the AMX Xeon) and sums the
input gradient inside the matmul (measured against fp64: as close as the separate sums, or closer). Written by
hand because transformers computes the three separately and nothing fuses them for training short of compiling
the model. The parameters stay where they are, so optimizers, state dicts and saved models do not change.

Measured gain (docs/performance.md): 220.4 against 232.0 ms a step, median paired speedup 1.054 over 50
alternating steps (AMX Xeon).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PARTS = ("query", "key", "value")


class _Shared:
    """The three projections of one attention: the input last seen by `query` and the three outputs."""

    def __init__(self, parts: list[nn.Linear]):
        self.parts = parts
        self.input: torch.Tensor | None = None
        self.outputs: tuple[torch.Tensor, ...] | None = None


class FusedProjection(nn.Linear):
    """nn.Linear that, in training, computes all three projections when `query` is called and hands `key` and
    `value` their part when they are called with the same tensor (anything else is computed on its own)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared: _Shared = self._shared
        if self._part > 0 and shared.input is x:
            output = shared.outputs[self._part]
            if self._part == len(PARTS) - 1:
                shared.input = shared.outputs = None  # nothing kept between forward passes
            return output
        if self._part > 0 or not self.training:
            return super().forward(x)
        weights = torch.cat([part.weight for part in shared.parts])
        bias = None if self.bias is None else torch.cat([part.bias for part in shared.parts])
        fused = F.linear(x, weights, bias)
        shared.input = x
        # narrow, not split: a view of a single-view op can be modified in place (Longformer divides its queries
        # in place; split's views refuse that), and autograd then gives the base's gradient as without the edit
        starts = [0]
        for part in shared.parts[:-1]:
            starts.append(starts[-1] + part.out_features)
        shared.outputs = tuple(fused.narrow(-1, start, part.out_features)
                               for start, part in zip(starts, shared.parts))
        return shared.outputs[0]


def _projections(module: nn.Module) -> list[nn.Linear] | None:
    parts = [getattr(module, name, None) for name in PARTS]
    if not type(module).__name__.endswith("SelfAttention") or not all(type(p) is nn.Linear for p in parts):
        return None
    if len({p.in_features for p in parts}) != 1 or len({p.bias is None for p in parts}) != 1:
        return None
    return parts


def fusable(model: nn.Module) -> int:
    """How many self-attention modules of `model` `fuse_qkv` would fuse."""
    return sum(_projections(module) is not None for module in model.modules())


def fuse_qkv(model: nn.Module) -> int:
    """Swap the query/key/value Linears of BERT-style self-attention modules for `FusedProjection`s sharing
    their parameters; returns how many attention modules were fused (0: the model has none of that shape)."""
    fused = 0
    for module in list(model.modules()):
        parts = _projections(module)
        if parts is None:
            continue
        replacements = []
        for index, (name, linear) in enumerate(zip(PARTS, parts)):
            projection = FusedProjection(linear.in_features, linear.out_features, bias=linear.bias is not None,
                                         device="meta")
            projection.weight, projection.bias = linear.weight, linear.bias
            projection.train(linear.training)
            projection._part = index
            setattr(module, name, projection)
            replacements.append(projection)
        shared = _Shared(replacements)
        for projection in replacements:
            projection._shared = shared
        fused += 1
    return fused


def unfuse_qkv(model: nn.Module) -> None:
    """Put plain nn.Linear modules back, with the same parameters."""
    for module in list(model.modules()):
        for name in PARTS:
            projection = getattr(module, name, None)
            if type(projection) is FusedProjection:
                linear = nn.Linear(projection.in_features, projection.out_features, bias=projection.bias is not None,
                                   device="meta")
                linear.weight, linear.bias = projection.weight, projection.bias
                linear.train(projection.training)
                setattr(module, name, linear)
