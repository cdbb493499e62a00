"""bf16 copies of the Linear weights, cast once per optimizer step, for CPU training under bf16 autocast.

Under autocast every Linear casts its fp32 weight and bias to bf16 in each forward pass, into newly allocated
memory, and backward casts each bf16 weight gradient back to fp32 into more new memory: about 75 casts a step.
Cast one tensor at a time into fresh memory, MiniLM's weights take 8 ms; into one preallocated buffer, 1.4 ms
(docs/performance.md). Here the bf16 copies live in one buffer and are cast again only after an optimizer step
has changed the weights; after each backward pass the bf16 gradients autograd hands over are copied (or added,
with gradient accumulation) into fp32 gradient tensors kept from step to step. The arithmetic is autocast's:
the same rounding of each weight to bf16, the same bf16 matmuls, the same widening of each bf16 gradient to fp32
and fp32 sums across gradient-accumulation steps. Written by hand because autocast re-casts by design (its cast
cache lives for one autocast region) and no library keeps bf16 working copies for CPU training.

Only for one CPU process: the fp32 gradients are written after backward, where DDP's gradient hooks would not
see them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tunecard.encoding.batching import cpu_bf16_autocast
from tunecard.speed.fused_qkv import FusedProjection


class Bf16Linear(nn.Linear):
    """nn.Linear that, training under CPU bf16 autocast, multiplies with the bf16 copies of `Bf16Weights`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and cpu_bf16_autocast():
            return F.linear(x, self._bf16_weight, self._bf16_bias)
        return super().forward(x)


def eligible_units(model: nn.Module) -> list[list[nn.Linear]]:
    """The Linears to give bf16 copies, a fused projection's three as one unit. Left out: frozen or non-fp32
    weights, and parameters used in more than one place (tied weights), whose gradients autograd sums."""
    uses: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        uses[id(p)] = uses.get(id(p), 0) + 1
    units, fused_seen = [], set()
    for module in model.modules():
        if type(module) is FusedProjection:
            if id(module._shared) not in fused_seen:
                fused_seen.add(id(module._shared))
                units.append(list(module._shared.parts))
        elif type(module) is nn.Linear:
            units.append([module])

    def eligible(p: torch.Tensor | None) -> bool:
        return p is None or (p.dtype == torch.float32 and p.requires_grad and uses.get(id(p), 0) == 1)

    return [unit for unit in units if all(eligible(linear.weight) and eligible(linear.bias) for linear in unit)]


class Bf16Weights:
    """The bf16 copies of a model's trainable fp32 Linear weights and biases, and their gradients.

    `watch(optimizer)` once, `before_forward()` before each training forward pass, `after_backward()` after each
    backward pass; `remove()` puts the plain modules back. A fused query/key/value projection (`fused_qkv.py`) gets
    its three weights side by side in the buffer, so the fused weight is a view instead of a concatenation.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.stale = True  # the copies are cast before the first forward pass
        self._hook = None
        units = eligible_units(model)
        self.buffer = torch.empty(sum(p.numel() for unit in units for linear in unit
                                      for p in (linear.weight, linear.bias) if p is not None), dtype=torch.bfloat16)
        # Per bf16 leaf: the index of its first fp32 parameter in self.params and the rows each one holds.
        self.leaves: list[tuple[torch.Tensor, int, list[int]]] = []
        self.params: list[nn.Parameter] = []
        self.copies: list[torch.Tensor] = []  # per parameter, its view of the buffer
        offset = 0
        for unit in units:
            leaves = []
            for kind in ("weight", "bias"):
                parts = [getattr(linear, kind) for linear in unit]
                if parts[0] is None:
                    leaves.append(None)
                    continue
                rows = [p.shape[0] for p in parts]
                size = sum(p.numel() for p in parts)
                leaf = self.buffer[offset:offset + size].view(sum(rows), *parts[0].shape[1:])
                leaf = leaf.detach().requires_grad_(True)
                self.leaves.append((leaf, len(self.params), rows))
                self.params.extend(parts)
                self.copies.extend(leaf.detach().split(rows))
                leaves.append(leaf)
                offset += size
            self._attach(unit, *leaves)
        self.grads = [torch.empty_like(p) for p in self.params]  # the fp32 gradients, reused every step

    @staticmethod
    def _attach(unit: list[nn.Linear], weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        if type(unit[0]) is FusedProjection:
            unit[0]._shared.bf16 = (weight, bias)
            return
        linear = unit[0]
        linear.__class__ = Bf16Linear  # same parameters and state dict; only forward differs
        linear._bf16_weight, linear._bf16_bias = weight, bias

    def watch(self, optimizer: torch.optim.Optimizer) -> None:
        """Refresh the copies before the first forward pass after each of this optimizer's steps."""
        self._hook = optimizer.register_step_post_hook(lambda *_: setattr(self, "stale", True))

    def before_forward(self) -> None:
        """Cast the fp32 weights into the bf16 copies if they changed since the last cast."""
        if self.stale:
            with torch.no_grad():
                torch._foreach_copy_(self.copies, self.params)
            self.stale = False

    def after_backward(self) -> None:
        """Move the bf16 gradients into the fp32 ones: copied where a parameter has none yet (the first
        backward since the gradients were reset), added where it has (gradient accumulation). Autograd hands the
        bf16 gradients over as new tensors; adding them into a kept bf16 buffer in place measured slower."""
        fresh, added = [], []  # (index in self.params, bf16 gradient)
        for leaf, first, rows in self.leaves:
            if leaf.grad is None:  # not used in this forward pass: its fp32 parameters get no gradient either
                continue
            for index, source in enumerate(leaf.grad.split(rows), start=first):
                (fresh if self.params[index].grad is None else added).append((index, source))
            leaf.grad = None
        with torch.no_grad():
            if fresh:
                torch._foreach_copy_([self.grads[index] for index, _ in fresh], [source for _, source in fresh])
            for index, _ in fresh:
                self.params[index].grad = self.grads[index]
            for index, source in added:
                self.params[index].grad.add_(source)  # fp32 += bf16 widened, as autograd adds autocast's gradients

    def remove(self) -> None:
        """Put plain modules back and free the copies, their gradients and the optimizer hook."""
        for module in self.model.modules():
            if type(module) is Bf16Linear:
                module.__class__ = nn.Linear
                del module._bf16_weight, module._bf16_bias
            elif type(module) is FusedProjection:
                module._shared.bf16 = None
        if self._hook is not None:
            self._hook.remove()
        self.buffer = self._hook = None
        self.leaves, self.params, self.copies, self.grads = [], [], [], []


def applies(model: nn.Module, *, bf16: bool, cpu: bool, processes: int) -> bool:
    """One CPU process training under bf16 autocast, with at least one trainable fp32 Linear."""
    return bf16 and cpu and processes == 1 and bool(eligible_units(model))
